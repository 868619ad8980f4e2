"""The command line: `musiclib prepare | train | generate | evaluate | compare | quickstart | curves | demo`, the library seen from a shell.

Every user error ends in one line on stderr that names the option or file and the fix, with
exit status 2. Options are checked before any work; ``musiclib --help`` imports no model.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

STARTED = time.monotonic()
"""When this command started: a time budget (``--minutes``) covers the whole command, imports included."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the problem and where to read more), not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive(unit: str):
    """A parser of positive finite numbers whose error names ``unit`` (e.g. "minutes")."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number{' of ' + unit if unit else ''}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive number{' of ' + unit if unit else ''}, got {text}")
        return value
    return parse


_minutes = _positive("minutes")
_seconds = _positive("seconds")


def _sample_rate(text: str) -> int:
    value = _positive_int(text)
    if not 1000 <= value <= 384000:
        raise argparse.ArgumentTypeError(f"must be between 1000 and 384000 Hz, got {value}")
    return value


def _settings(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}); write e.g. '{{\"learning_rate\": 0.0005}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of setting: value, e.g. '{{\"learning_rate\": 0.0005}}', got {text}")
    return value


def _prepare(args) -> int:
    from musiclib.config import AudioConfig
    from musiclib.datasets.prepare import prepare_folder

    dataset = prepare_folder(args.src, args.out, AudioConfig(sample_rate=args.sample_rate), clip_seconds=args.clip_seconds,
                             workers=args.workers)
    print(dataset)
    skipped = dataset.manifest["skipped"]
    if skipped:
        print(f"skipped {len(skipped)} file(s); reasons in {dataset.root / 'skipped.txt'}")
    return 0


def _train(args) -> int:
    from musiclib import budget, distributed, runs

    if args.nproc > 1 and not distributed.launched_by_torchrun():
        return _launch_torchrun(args)
    world = distributed.init_from_environment()
    try:
        out = runs.train(args.model, args.data, args.out, steps=args.steps, seed=args.seed, overrides=args.set,
                         minutes=args.minutes, started=STARTED)
    finally:
        distributed.shutdown()
    if not world.is_main:
        return 0
    sessions = budget.sessions(out) if args.minutes else []
    if sessions:
        last = sessions[-1]
        how = "stopped by the budget" if last["stopped_by"] == "budget" else "as planned"
        print(f"trained {args.model} to step {last['reached_step']} in {last['seconds'] / 60:.1f} of {args.minutes:g} minutes "
              f"({how}; {last['seconds_per_step']:.3f} s per step); details in {out / budget.RECORD}")
    print(f"trained {args.model} into {out}")
    return 0


def _launch_torchrun(args) -> int:
    """``musiclib train ... --nproc N``: the same command under ``torchrun`` on this machine, checked first."""
    import os
    import subprocess

    from musiclib import runs

    if args.minutes is not None:
        raise ValueError("--minutes plans a run in one process; give --steps with --nproc")
    runs.check_distributed_train(args.model, args.data, args.out, args.nproc, steps=args.steps, seed=args.seed,
                                 overrides=args.set)
    command = ["train", args.model, "--data", str(args.data), "--out", str(args.out), "--seed", str(args.seed)]
    command += ["--steps", str(args.steps)] if args.steps is not None else []
    command += ["--set", json.dumps(args.set)] if args.set is not None else []
    env = dict(os.environ)
    # Threads per process: the cores shared out (torchrun would set 1, and say so).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    print(f"starting {args.nproc} processes: torchrun --standalone --nproc_per_node {args.nproc} -m musiclib "
          + " ".join(command), flush=True)
    return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={args.nproc}", "-m", "musiclib", *command], env=env)


def _generate(args) -> int:
    from musiclib import models, runs

    labels = {name: value for name, value in (("pitch", args.pitch), ("instrument", args.instrument)) if value is not None}
    path, prime_seconds = runs.generate(args.run_dir, args.seconds, args.out, seed=args.seed, vocoder=args.vocoder,
                                        mode=args.mode, **labels)
    if models.get(runs.read_config(args.run_dir)["model"]).family == "vocoder":
        print(f"wrote {path}: 0-{prime_seconds:.2f} s is a held-out clip, then the vocoder's rendering of its log-mel")
    elif prime_seconds:
        print(f"wrote {path}: 0-{prime_seconds:.2f} s is the held-out prime, {prime_seconds:.2f}-{prime_seconds + args.seconds:.2f} s is generated")
    else:
        print(f"wrote {args.seconds} s to {path}")
    return 0


def _evaluate(args) -> int:
    from musiclib import runs

    print(json.dumps(runs.evaluate(args.run_dir, n_clips=args.n_clips, vocoder=args.vocoder), indent=1))
    return 0


def _compare(args) -> int:
    from musiclib import compare, report

    report.check_outputs(args.out, args.readme)
    plan = compare.ComparePlan(models=tuple(args.models or ()), seeds=args.seeds, fast=args.fast, n_clips=args.n_clips,
                               work=args.work, vocoder=not args.no_vocoder, steps=args.steps, jobs=args.jobs)
    command = "musiclib compare" + (" --fast" if args.fast else "") + (f" --models {' '.join(args.models)}" if args.models else "") \
        + f" --seeds {args.seeds}" + (f" --steps {args.steps}" if args.steps else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    print(report.write(compare.run(plan), args.out, readme=args.readme, command=command), end="")
    print(f"wrote {args.out}, {Path(args.out).with_suffix('.json')} and the scored audio under {args.work}")
    return 0


def _quickstart(args) -> int:
    from musiclib.quickstart import quickstart

    quickstart(args.src, args.out, minutes=args.minutes, model=args.model, seed=args.seed, started=STARTED)
    return 0


def _curves(args) -> int:
    from musiclib import curves

    command = "musiclib curves" + (f" --models {' '.join(args.models)}" if args.models else "") \
        + f" --points {args.points} --until {args.until:g}"
    curves.run(args.out, args.models, points=args.points, n_clips=args.n_clips, work=args.work, command=command,
               log=lambda line: print(f"[curves] {line}", flush=True), until=args.until)
    print(f"wrote {args.out}, its figure and its data beside it")
    return 0


def _demo(args) -> int:
    from musiclib.demo import run_demo

    run_demo(args.out)
    return 0


def build_parser(model_names: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; ``model_names`` (importing the models, hence torch) only when ``train`` needs them."""
    parser = _Parser(prog="musiclib", description="Generate music from raw audio: data, models, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("prepare", help="turn a folder of mp3/wav/flac/ogg into a dataset",
                       description="Turn any folder of audio (nested folders too) into a dataset of mono clips. "
                                   "Never modifies the source folder; unreadable files are listed in skipped.txt.")
    p.add_argument("src", help="folder of audio files")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--clip-seconds", type=_seconds, default=1.0, help="clip length in seconds (default 1.0)")
    p.add_argument("--sample-rate", type=_sample_rate, default=22050, help="resample to this rate in Hz (default 22050)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes decoding files at once (default 1); the dataset is the same for any number")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", help="train a registered model", description="Train (or resume) a model into a run folder.")
    p.add_argument("model", choices=model_names, metavar="MODEL" if model_names is None else None,
                   help="which model (`musiclib train --help` lists them)")
    p.add_argument("--data", default="chorales", help="dataset folder, or a bundled set: chorales (sampled instruments), chorales-synth, notes (default chorales)")
    p.add_argument("--out", required=True, help="run folder (resumes if it holds a checkpoint)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=None,
                        help="optimiser steps (default: the model's, smaller with MUSICLIB_FAST=1; a resumed run keeps its own)")
    length.add_argument("--minutes", type=_minutes, default=None,
                        help="train to this wall-clock budget instead: the steps are chosen from the measured step time, "
                             "the bar shows the ETA, and the run stops cleanly at the budget (resume with more minutes to go on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", type=_settings, default=None,
                   help='JSON of model settings to override, e.g. \'{"learning_rate": 0.0005}\'; unknown settings are refused '
                        "with the list of valid ones")
    p.add_argument("--nproc", type=_positive_int, default=1,
                   help="train with this many processes on this machine (torchrun and DistributedDataParallel; one GPU "
                        "each where there are GPUs); the batch size must split into equal slices")
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", help="generate audio from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--seconds", type=_seconds, default=5.0)
    p.add_argument("--out", required=True, help="output file: .wav, .flac or .ogg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocoder", default=None, help="a trained melgan run folder to render spectrograms with (default: Griffin-Lim, 32 iterations)")
    p.add_argument("--mode", choices=("autonomous", "continue", "condition"), default=None,  # musiclib.models.Model.MODES
                   help="autonomous: new music from nothing; continue: go on from a held-out clip (played first); condition: "
                        "ask a conditional model (cvae) for --pitch/--instrument. Default: new music if the model makes it, "
                        "else a continuation")
    p.add_argument("--pitch", type=int, default=None, help="MIDI pitch for --mode condition (a pitch of the training notes)")
    p.add_argument("--instrument", default=None, help="instrument for --mode condition (e.g. organ, flute, reed, pluck)")
    p.set_defaults(func=_generate)

    p = sub.add_parser("evaluate", help="score a run against held-out music and noise; writes eval.json")
    p.add_argument("run_dir")
    p.add_argument("--n-clips", type=_positive_int, default=None,
                   help="generated clips to score (default: one per held-out prime, or as many as training clips for unprimed models)")
    p.add_argument("--vocoder", default=None, help="a trained melgan run folder to render spectrograms with (default: Griffin-Lim)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("compare", help="train every registered model with several seeds and score them on one table",
                       description="Train (or reuse) every generative model with several seeds on the bundled sets, score "
                                   "every run the same way beside real music, its inversions and noise, and write one table. "
                                   "Resumable: run it again to continue.")
    p.add_argument("--fast", action="store_true", help="each model's fast configuration on the fast bundled sets (minutes, not hours)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL", help="only these models (default: every generative model)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="training seeds per model (default 3)")
    p.add_argument("--n-clips", type=_positive_int, default=32,
                   help="clips per scored row (default 32; at most the data's held-out test clips)")
    p.add_argument("--work", default="outputs/compare", help="folder for the runs and scored audio; resumed if it holds them")
    p.add_argument("--steps", type=_positive_int, default=None, help="train every model this many steps (a quick look; "
                                                                    "default: each model's own)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="training processes at once, sharing the CPU (default 1)")
    p.add_argument("--no-vocoder", action="store_true", help="skip the vocoder column (and training the vocoder)")
    p.add_argument("--out", default="docs/results.md", help="the Markdown table to write (default docs/results.md; "
                                                              "the raw results go beside it as .json)")
    p.add_argument("--readme", default=None, help="also fill this file's <!-- results:start --> ... <!-- results:end --> block")
    p.set_defaults(func=_compare)

    p = sub.add_parser("quickstart", help="your folder of recordings → a trained model, new music and a page, to a time budget",
                       description="Prepare a folder of your recordings, train the model the comparison table ranks best "
                                   "for the budget, score its music against your held-out recordings beside noise, and "
                                   "write OUT/index.html with players, pictures and the scores.")
    p.add_argument("src", help="folder of audio files (mp3/wav/flac/ogg, nested folders too; about 2 minutes or more)")
    p.add_argument("out", help="new folder for the data, the run and the page (must not exist)")
    p.add_argument("--minutes", type=_minutes, default=10.0, help="wall-clock budget for the whole command (default 10)")
    p.add_argument("--model", default=None, help="a registered model (default: the comparison table's best for the budget)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("curves", help="each model's loss and scores against training steps and minutes (how long must I train?)",
                       description="Train every registered model with its recipe, scoring it at evenly spaced steps, and "
                                   "write a page of curves (MUSICLIB_FAST=1: the fast recipes). Resumable.")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL", help="only these models (default: every registered model)")
    p.add_argument("--points", type=_positive_int, default=4, help="scored stops per model (default 4)")
    p.add_argument("--until", type=_positive(""), default=1.0, help="train on to this many times the recipe's steps (default 1)")
    p.add_argument("--n-clips", type=_positive_int, default=16, help="clips scored per stop (default 16)")
    p.add_argument("--work", default="outputs/curves", help="folder for the runs (reused when run again)")
    p.add_argument("--out", default="docs/curves.md", help="the page to write (default docs/curves.md)")
    p.set_defaults(func=_curves)

    p = sub.add_parser("demo", help="train tiny models on the bundled music; write audio and pictures")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    model_names = None
    if argv[:1] == ["train"]:
        from musiclib import models

        model_names = models.names()
    args = build_parser(model_names).parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, KeyError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"musiclib {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
