"""The command line: `musiclib prepare | train | generate | evaluate | demo`, the library seen from a shell."""
from __future__ import annotations

import argparse
import json
import sys


def _prepare(args) -> int:
    from musiclib.config import AudioConfig
    from musiclib.datasets.prepare import prepare_folder

    dataset = prepare_folder(args.src, args.out, AudioConfig(sample_rate=args.sample_rate), clip_seconds=args.clip_seconds)
    print(dataset)
    skipped = dataset.manifest["skipped"]
    if skipped:
        print(f"skipped {len(skipped)} file(s); reasons in {dataset.root / 'skipped.txt'}")
    return 0


def _train(args) -> int:
    from musiclib import runs

    overrides = json.loads(args.set) if args.set else None
    out = runs.train(args.model, args.data, args.out, steps=args.steps, seed=args.seed, overrides=overrides)
    print(f"trained {args.model} into {out}")
    return 0


def _generate(args) -> int:
    from musiclib import models, runs

    labels = {name: value for name, value in (("pitch", args.pitch), ("instrument", args.instrument)) if value is not None}
    path, prime_seconds = runs.generate(args.run_dir, args.seconds, args.out, seed=args.seed, vocoder=args.vocoder,
                                        mode=args.mode, **labels)
    if models.get(runs.read_config(args.run_dir)["model"]).vocoder:
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


def _demo(args) -> int:
    from musiclib.demo import run_demo

    run_demo(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from musiclib import models

    parser = argparse.ArgumentParser(prog="musiclib", description="Generate music from raw audio: data, models, evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="turn a folder of mp3/wav/flac/ogg into a dataset",
                       description="Turn any folder of audio (nested folders too) into a dataset of mono clips. "
                                   "Never modifies the source folder; unreadable files are listed in skipped.txt.")
    p.add_argument("src", help="folder of audio files")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--clip-seconds", type=float, default=1.0, help="clip length in seconds (default 1.0)")
    p.add_argument("--sample-rate", type=int, default=22050, help="resample to this rate in Hz (default 22050)")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", help="train a registered model", description="Train (or resume) a model into a run folder.")
    p.add_argument("model", choices=models.names(), help="which model")
    p.add_argument("--data", default="chorales", help="dataset folder, or a bundled set: chorales, notes (default chorales)")
    p.add_argument("--out", required=True, help="run folder (resumes if it holds a checkpoint)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the model's; smaller with MUSICLIB_FAST=1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", default=None, help='JSON of model settings to override, e.g. \'{"hidden": 128}\'')
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", help="generate audio from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--out", required=True, help="output .wav file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocoder", default=None, help="a trained melgan run folder to render spectrograms with (default: Griffin-Lim, 32 iterations)")
    p.add_argument("--mode", choices=("autonomous", "continue", "condition"), default=None,
                   help="VAE generation mode: sample the prior, vary a held-out clip, or ask a cvae for --pitch/--instrument")
    p.add_argument("--pitch", type=int, default=None, help="MIDI pitch for --mode condition (a pitch of the training notes)")
    p.add_argument("--instrument", default=None, help="instrument for --mode condition (e.g. organ, flute, reed, pluck)")
    p.set_defaults(func=_generate)

    p = sub.add_parser("evaluate", help="score a run against held-out music and noise; writes eval.json")
    p.add_argument("run_dir")
    p.add_argument("--n-clips", type=int, default=None,
                   help="generated clips to score (default: one per held-out prime, or as many as training clips for unprimed models)")
    p.add_argument("--vocoder", default=None, help="a trained melgan run folder to render spectrograms with (default: Griffin-Lim)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="train tiny models on the bundled music; write audio and pictures")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"musiclib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
