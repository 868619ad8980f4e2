"""A run folder: train, generate from and evaluate any registered model (what the CLI calls).

``RUN_DIR/config.json`` names the model, its configuration, the audio
configuration and the data; ``checkpoint.pt`` holds the weights; ``samples/``
the audio previews; ``eval.json`` the scores.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import copy
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from musiclib import audio, baselines, cache, distributed, metrics, models, training
from musiclib.config import AudioConfig
from musiclib.datasets import AudioDataset, DatasetError
from musiclib.training import CHECKPOINT, Trainer, TrainConfig, load_checkpoint, save_checkpoint
from musiclib.utils import evenly_spaced, fast_mode, set_seed, write_text_atomically



def open_dataset(data: str | Path) -> AudioDataset:
    """A dataset folder, or the name of a bundled set (:data:`musiclib.datasets.bundled.SETS`), built on first use.

    A bundled set's name never silently stands for a folder of that name in the working
    directory, nor the reverse: that case is refused, and ``./NAME`` picks the folder.
    """
    from musiclib.datasets import bundled

    if str(data) in bundled.SETS:
        if Path(data).exists():
            raise ValueError(f"--data {data}: names both the bundled set and the folder ./{data}; "
                             f"write ./{data} for the folder, or run from another folder for the bundled set.")
        return bundled.load(str(data))
    return AudioDataset(data)


def run_dataset(run_dir: str | Path, run_config: dict) -> AudioDataset:
    """The dataset a run was trained on, with a message that says what to do if it has moved."""
    data = run_config["data"]
    try:
        return open_dataset(data)
    except DatasetError as err:
        raise DatasetError(f"{run_dir}: was trained on the dataset {data}, which is no longer there ({err}). "
                           f"Move it back, or edit \"data\" in {Path(run_dir) / 'config.json'}.") from err


BUDGET_RECORD = "budget.json"
"""A run folder's record of its time-budgeted sessions (``musiclib train --minutes``)."""


def train(model_name: str, data: str | Path, out: str | Path, steps: int | None = None, seed: int = 0,
          overrides: dict | None = None, progress: bool = True, minutes: float | None = None,
          started: float | None = None, fast: bool | None = None) -> Path:
    """Train (or resume) ``model_name`` on ``data`` into run folder ``out``; writes a preview sample.

    Every setting is checked before anything is written: an unknown or mistyped setting, or a
    resume whose settings differ from the run's, raises ``ValueError`` and leaves ``out`` as it was.
    A resumed run keeps its own length (steps, and the settings that go with it) unless ``steps`` or the
    settings are given again.

    Args:
        minutes: Train to a wall-clock budget instead of a step count: the step time is measured on the
            first steps, the number of steps (and the recipe's warm-up lengths, ``spec.step_settings``) chosen
            to end by the budget, and training stops cleanly at the budget whatever the estimate said. A model's
            upstream run trained here gets its ``budget_share``. Resuming with more minutes continues the run;
            resuming without ``steps`` or ``minutes`` continues to the steps its budget chose. Each session is
            recorded in ``out/budget.json``.
        started: The :func:`musiclib.training.clock` time the budget counts from (default: now; the CLI
            gives its start, so that the budget covers the whole command).
        fast: Start from the model's fast recipe (the comparison table's; default: ``MUSICLIB_FAST``), its
            upstream run's too.
    """
    started = training.clock() if started is None else started
    world = distributed.world()
    if world.distributed and minutes is not None:
        raise ValueError("--minutes plans a run in one process; give --steps to train with several processes")
    fast = fast_mode() if fast is None else fast
    spec, overrides, model_config, dataset, run_config, previous = _setup(model_name, data, out, steps, seed, overrides,
                                                                          minutes, fast)
    out = Path(out)
    config_path = out / "config.json"
    fresh = not out.exists()
    distributed.barrier()  # every rank has seen the folder as it was before rank 0 writes to it
    deadline = None if minutes is None else started + 60.0 * minutes
    plan = None
    try:
        if spec.upstream is not None:  # e.g. a token prior's tokenizer: trained into out/, or a given run checked
            upstream_run(spec.upstream, data, out, model_config, seed, progress,
                         minutes=None if minutes is None else minutes * spec.upstream.budget_share, started=started, fast=fast)
        # A model may record facts about its data in model_config here (e.g. a CVAE's label vocabulary).
        with distributed.main_first():  # rank 0 fills the feature cache; the others read it
            train_array, val_array = spec.training_arrays(dataset, model_config)
        set_seed(seed)
        model = spec.build(model_config, dataset.config)
        if spec.prepare is not None:
            with distributed.main_first():
                spec.prepare(model, dataset, model_config)
        preview_prime = heldout_primes(dataset, spec, 1, seed)
        if deadline is not None:
            initial = copy.deepcopy(model.state_dict())
            start_step = int(load_checkpoint(out / CHECKPOINT)["step"]) if (out / CHECKPOINT).exists() else 0
            plan = _budget_plan(spec, model, model_config, dataset, train_array, val_array, preview_prime, seed, deadline,
                                start_step, minutes)
            if previous is None:
                factor = plan["planned_steps"] / model_config["steps"]
                for key in spec.step_settings:
                    if key not in overrides:
                        model_config[key] = int(round(model_config[key] * factor))
            model_config["steps"] = plan["planned_steps"]
            set_seed(seed)  # the measured copy trained: start again from the same initial weights
            model = spec.build(model_config, dataset.config)
            model.load_state_dict(initial)
    except BaseException:
        if fresh and world.is_main:  # only an upstream run can have been written: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    train_config = _train_config(model_config, seed, progress)
    try:
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomically(config_path, json.dumps(run_config, indent=1) + "\n")

        def preview(trainer, step):
            y = spec.generate(trainer.model, 1, 2.0, seed, dataset.config, preview_prime)[0]
            audio.save(out / "samples" / f"step_{step:06d}.wav", y, dataset.config.sample_rate)

        def record_plan(steps):  # a budgeted run's pace, measured again at each checkpoint, moved its end
            write_text_atomically(config_path, json.dumps(run_config, indent=1) + "\n")

        trainer = Trainer(model, spec.loss, train_array, out, train_config, dataset.config, model_config, val_array, preview,
                          deadline=None if plan is None else deadline - plan["seconds_to_finish"],
                          on_replan=None if plan is None else record_plan)
        trainer.fit()
    except BaseException:
        if fresh and world.is_main and not (out / CHECKPOINT).exists():  # a run that never reached a checkpoint leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if spec.after_training is not None:
        state = trainer.state()  # (every rank: it gathers their RNG states)
        if world.is_main:
            spec.after_training(trainer.model, dataset, model_config)
            save_checkpoint(trainer.checkpoint_path, {**state, "model": trainer.model.state_dict()})
            preview(trainer, trainer.step)
    distributed.barrier()  # the run is complete on disk before any rank reads it (a model trained on top of it)
    if plan is not None:
        _record_budget(out, {**plan, "first_planned_steps": plan["planned_steps"], "planned_steps": trainer.config.steps,
                             "reached_step": trainer.step, "stopped_by": "budget" if trainer.stopped_by_budget else "plan",
                             "seconds": round(training.clock() - started, 2)})
    return out


def _setup(model_name: str, data, out, steps: int | None, seed: int, overrides: dict | None, minutes: float | None,
           fast: bool | None) -> tuple:
    """Everything :func:`train` checks before it writes: ``(spec, overrides, model_config, dataset, run_config, previous)``.

    Raises:
        ValueError: a setting, a length or a resume that cannot be trained; nothing has been written.
    """
    spec = models.get(model_name)
    out = Path(out)
    overrides = dict(models.check_settings(spec, overrides or {}))
    if steps is not None and minutes is not None:
        raise ValueError("give a number of steps or of minutes, not both")
    if minutes is not None and not (isinstance(minutes, (int, float)) and 0 < minutes < float("inf")):
        raise ValueError(f"--minutes must be a positive number, got {minutes!r}")
    if steps is not None:
        overrides["steps"] = steps
    fast = fast_mode() if fast is None else fast
    model_config = {**spec.default_config(fast), **overrides}
    config_path = out / "config.json"
    previous = json.loads(config_path.read_text()) if config_path.exists() else None
    if previous is not None:  # the run's length is its own (a budget's plan, an earlier --steps) unless given again
        for key in _length_settings(spec):
            if key not in overrides and key in previous["model_config"]:
                model_config[key] = previous["model_config"][key]
    if spec.check_config is not None:
        spec.check_config(model_config)
    with distributed.main_first():  # rank 0 builds a bundled set on first use; the others read it
        dataset = open_dataset(data)
    run_config = {"model": model_name, "model_config": model_config, "audio_config": dataset.config.to_dict(),
                  "data": dataset_reference(data, dataset), "data_fingerprint": cache.fingerprint(dataset), "seed": seed}
    if previous is not None:
        _check_resume(config_path, previous, run_config)
    elif out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder for the run.")
    return spec, overrides, model_config, dataset, run_config, previous


def check_distributed_train(model_name: str, data, out, nproc: int, steps: int | None = None, seed: int = 0,
                            overrides: dict | None = None) -> None:
    """Refuse, before any process starts, a run that :func:`train` would refuse, or whose batches do not split
    into ``nproc`` equal slices (a model's upstream run's included). Builds a bundled dataset if it is not yet built.

    Raises:
        ValueError: naming the setting or folder and the fix; nothing has been written.
    """
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} GPU(s), one per process; "
                         f"give --nproc {torch.cuda.device_count()} or fewer.")
    spec, _, model_config, _, _, _ = _setup(model_name, data, out, steps, seed, overrides, None, None)
    sizes = {model_name: model_config["batch_size"]}
    if spec.upstream is not None and not model_config.get(spec.upstream.setting):
        upstream_spec = models.get(spec.upstream.model)
        sizes[spec.upstream.model] = upstream_spec.default_config(fast_mode())["batch_size"]
    for name, batch_size in sizes.items():
        if batch_size % nproc:
            raise ValueError(f"--nproc {nproc}: {name}'s batch of {batch_size} examples does not split into {nproc} equal "
                             f"slices; give a number of processes that divides {batch_size}"
                             + (", or --set '{\"batch_size\": ...}'" if name == model_name else "") + ".")


def _train_config(model_config: dict, seed: int, progress: bool) -> TrainConfig:
    """The training loop's settings in a model configuration (four checkpoints unless it says otherwise)."""
    return TrainConfig(steps=model_config["steps"], batch_size=model_config["batch_size"],
                       learning_rate=model_config["learning_rate"], optimizer=model_config.get("optimizer", "adam"),
                       betas=tuple(model_config.get("betas", (0.9, 0.999))), seed=seed,
                       checkpoint_every=model_config.get("checkpoint_every") or max(1, model_config["steps"] // 4),
                       learning_rate_schedule=model_config.get("learning_rate_schedule", ()), progress=progress)


def _length_settings(spec: models.ModelSpec) -> tuple[str, ...]:
    """The settings that say how long a run trains: its steps, its warm-ups, its upstream run's steps."""
    upstream = () if spec.upstream is None else (f"{spec.upstream.setting}_steps",)
    return ("steps", *spec.step_settings, *upstream)


CALIBRATION_SECONDS = 5.0
"""At most this long (and at most 2 % of a budget) is spent measuring the step time before a budgeted run."""


def _budget_plan(spec: models.ModelSpec, model, model_config: dict, dataset: AudioDataset, train_array, val_array,
                 preview_prime, seed: int, deadline: float, start_step: int, minutes: float) -> dict:
    """How many steps fit before ``deadline``, measured on ``model`` (which this trains: restore it afterwards).

    Measures one training step, one checkpoint (validation, a 2-s preview, the write) and the work after the
    last step (``spec.after_training``, a last checkpoint); plans the run's four checkpoints (or its
    ``checkpoint_every``) and that work into the budget.

    Raises:
        ValueError: when the budget does not hold even one step, naming the minutes that would.
    """
    probe = Trainer(model, spec.loss, train_array, ".", _train_config(model_config, seed, progress=False), dataset.config,
                    model_config, val_array)
    # A model whose steps change with the step (a warm-up before an adversarial game) is timed in each of its
    # regimes, weighted by their share of the steps still to take (the plan scales warm-ups with the run).
    end = max(model_config["steps"], start_step + 1)
    positions = np.linspace(start_step, end - 1, 8).round().astype(int)
    regimes = [tuple(model.active_phases(int(step))) if hasattr(model, "active_phases") else () for step in positions]
    calibration = min(CALIBRATION_SECONDS, 0.02 * (deadline - training.clock())) / len(set(regimes))
    regime_seconds = {}
    for regime, step in zip(regimes, positions):
        if regime not in regime_seconds:
            probe.step = int(step)
            regime_seconds[regime] = probe.seconds_per_step(calibration)
    seconds_per_step = float(np.mean([regime_seconds[regime] for regime in regimes]))
    tick = training.clock()
    probe.validate()
    spec.generate(probe.model, 1, 2.0, seed, dataset.config, preview_prime)
    torch.save(probe.state(), io.BytesIO())
    seconds_per_checkpoint = training.clock() - tick
    tick = training.clock()
    if spec.after_training is not None:
        spec.after_training(probe.model, dataset, model_config)
    seconds_to_finish = training.clock() - tick + seconds_per_checkpoint
    # 3 % of what is left is kept free: a step's time varies, and a run that ends by its plan is a whole run.
    available = 0.97 * (deadline - training.clock() - seconds_to_finish)
    if "checkpoint_every" in model_config:
        n_steps = int(available / (seconds_per_step + seconds_per_checkpoint / model_config["checkpoint_every"]))
    else:
        n_steps = int((available - 4 * seconds_per_checkpoint) / seconds_per_step)
    if n_steps < 1:
        needed = (training.clock() - (deadline - 60 * minutes) + seconds_to_finish + 4 * seconds_per_checkpoint
                  + 10 * seconds_per_step) / 60
        raise ValueError(f"--minutes {minutes:g}: too short to train {spec.name} here (one step takes {seconds_per_step:.2f} s, "
                         f"one checkpoint {seconds_per_checkpoint:.1f} s); give at least {max(needed, 0.1):.1f} minutes.")
    return {"minutes": minutes, "from_step": start_step, "planned_steps": start_step + n_steps,
            "seconds_per_step": round(seconds_per_step, 4), "seconds_per_checkpoint": round(seconds_per_checkpoint, 3),
            "seconds_to_finish": round(seconds_to_finish, 3)}


def _record_budget(run_dir: Path, session: dict) -> None:
    path = run_dir / BUDGET_RECORD
    sessions = json.loads(path.read_text()) if path.exists() else []
    write_text_atomically(path, json.dumps([*sessions, session], indent=1) + "\n")


def budget_sessions(run_dir: str | Path) -> list[dict]:
    """A run's time-budgeted sessions (``musiclib train --minutes``), oldest first; empty if it never had one."""
    path = Path(run_dir) / BUDGET_RECORD
    return json.loads(path.read_text()) if path.exists() else []


def upstream_run(upstream: models.Upstream, data: str | Path, run_dir: str | Path, model_config: dict, seed: int,
                 progress: bool, minutes: float | None = None, started: float | None = None, fast: bool | None = None) -> None:
    """Train or reuse the run a model builds on (a token prior's tokenizer, a latent flow's autoencoder), and record it
    in that model's ``model_config``.

    Reuses the run folder the setting ``upstream.setting`` names, after checking that it holds a
    ``upstream.model`` run on the same features as ``data``; with the setting empty, trains one into
    ``RUN_DIR/<setting>`` for ``model_config[setting + "_steps"]`` steps, or, given ``minutes`` and not
    trained yet, to that budget counted from ``started`` (its steps are then recorded as ``<setting>_steps``);
    ``fast`` as in :func:`train`.
    Records the run's absolute path as ``<setting>_run`` and its settings ``upstream.keys`` as ``<setting>_config``.

    Raises:
        ValueError: naming the setting and the fix, when the given run is missing, of another model, or on other features.
    """
    model_name, setting = upstream.model, upstream.setting
    given = model_config[setting]
    if not given:
        target = Path(run_dir) / setting
        if minutes is not None and not (target / CHECKPOINT).exists():
            run = train(model_name, data, target, seed=seed, progress=progress, minutes=minutes, started=started, fast=fast)
            model_config[f"{setting}_steps"] = read_config(run)["model_config"]["steps"]
        else:
            run = train(model_name, data, target, steps=model_config[f"{setting}_steps"], seed=seed, progress=progress, fast=fast)
        run_config = read_config(run)
    else:
        run = Path(given).expanduser()
        try:
            run_config = read_config(run)
        except FileNotFoundError as err:
            raise ValueError(f"setting {setting}: {err}") from err
        if run_config["model"] != model_name:
            article = "an" if setting[0] in "aeiou" else "a"
            raise ValueError(f"setting {setting}: {run} holds a {run_config['model']} run, not {article} {setting} ({model_name}); "
                             f"train one with `musiclib train {model_name}`, or leave the setting out to train one here.")
        if run_config["audio_config"] != open_dataset(data).config.to_dict():
            raise ValueError(f"setting {setting}: {run} was trained on other features than {data} has; "
                             f"train a {model_name} on this data, or leave the setting out to train one here.")
    model_config[f"{setting}_run"] = str(run.resolve())
    model_config[f"{setting}_config"] = {key: run_config["model_config"][key] for key in upstream.keys}


def upstream_model(model_config: dict, setting: str):
    """The trained model :func:`upstream_run` recorded under ``setting``."""
    return load(model_config[f"{setting}_run"])[1]


def _check_resume(config_path: Path, previous: dict, run_config: dict) -> None:
    """Refuse to resume the run ``previous`` describes with another model, data, seed or settings (``steps`` may grow),
    or on changed data."""
    if previous["model"] != run_config["model"] or previous["audio_config"] != run_config["audio_config"]:
        raise ValueError(f"{config_path.parent}: holds a {previous['model']} run with another setup; choose a new --out folder.")
    changed = [key for key, value in run_config["model_config"].items()
               if key != "steps" and previous["model_config"].get(key) != value]
    changed += [key for key in ("seed", "data") if previous.get(key) != run_config[key]]
    if not changed and previous.get("data_fingerprint") != run_config["data_fingerprint"]:
        raise ValueError(f"{config_path.parent}: the dataset {run_config['data']} has changed since this run started "
                         "(rebuilt, or made by another musiclib version); train into a new --out folder.")
    if changed:
        raise ValueError(f"{config_path.parent}: resuming with other settings ({', '.join(sorted(changed))}) than the run was "
                         "started with; give the same settings to resume, or a new --out folder.")


def dataset_reference(data: str | Path, dataset: AudioDataset) -> str:
    """How a run folder names its data: a bundled set by name (found in any cache), a folder by absolute path."""
    from musiclib.datasets import bundled

    return str(data) if str(data) in bundled.SETS else str(Path(dataset.root).resolve())


def heldout_audio(dataset: AudioDataset, n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """``(n, samples)``: the first ``seconds`` of held-out clips (test split, then val), starting at clip ``seed``."""
    test, val = dataset.clips("test"), dataset.clips("val")
    total = len(test) + len(val)
    if total == 0:
        raise ValueError(f"{dataset.root}: no held-out clips to start from; prepare the data with val/test splits.")
    n_samples = min(dataset.clip_samples, int(round(seconds * dataset.sample_rate)))
    # Read only the clips used, from the memory maps (held-out splits can be large).
    picked = [test[i] if i < len(test) else val[i - len(test)] for i in (seed + np.arange(n)) % total]
    return np.stack([np.asarray(clip[:n_samples]) for clip in picked])


def heldout_primes(dataset: AudioDataset, spec: models.ModelSpec, n: int, seed: int = 0) -> np.ndarray | None:
    """``(n, samples)``: the first ``spec.prime_seconds`` of held-out clips, or ``None`` for models that need no prime."""
    if spec.prime_seconds <= 0:
        return None
    return heldout_audio(dataset, n, spec.prime_seconds, seed)


def generation_options(spec: models.ModelSpec, dataset: AudioDataset | None, n: int, seed: int, mode: str | None = None,
                       **labels) -> tuple[np.ndarray | None, dict]:
    """``(prime, keyword arguments)`` for ``spec.generate``: the held-out prime and the mode a model supports."""
    if mode is not None and mode not in spec.modes:
        hint = "; a conditional model does: `musiclib train cvae --data notes`" if mode == "condition" else ""
        raise ValueError(f"{spec.name} generates in modes {list(spec.modes) or ['(one mode only)']}, not {mode!r}{hint}")
    options = {"mode": mode, **labels} if mode else {}
    if mode == "continue":
        return heldout_audio(dataset, n, dataset.clip_samples / dataset.sample_rate, seed), options
    return heldout_primes(dataset, spec, n, seed), options


def read_config(run_dir: str | Path) -> dict:
    """A trained run folder's ``config.json`` (model, settings, audio configuration, data)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists() or not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"{run_dir}: not a trained run (needs config.json and {CHECKPOINT}). Run `musiclib train` first.")
    return json.loads(config_path.read_text())


def history(run_dir: str | Path) -> list[dict]:
    """A run's ``history.json``: one record per checkpoint (step, losses, validation loss, diagnostics)."""
    path = Path(run_dir) / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no history.json. Run `musiclib train` first.")
    return json.loads(path.read_text())


def load(run_dir: str | Path):
    """``(spec, model, audio_config, run_config)`` of a trained run folder."""
    run_dir = Path(run_dir)
    run_config = read_config(run_dir)
    spec = models.get(run_config["model"])
    audio_config = AudioConfig.from_dict(run_config["audio_config"])
    state = load_checkpoint(run_dir / CHECKPOINT)
    model = spec.build(state["model_config"], audio_config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(f"{run_dir / CHECKPOINT}: its weights do not fit the current {spec.name} model (trained by an "
                         f"older musiclib?); retrain it into a new --out folder. Details: {error}") from error
    model.eval()
    return spec, model, audio_config, run_config


def load_vocoder(vocoder_dir: str | Path | None, spec: models.ModelSpec, audio_config: AudioConfig):
    """The trained inverter (vocoder) of a run folder, checked against the model it will speak for (``None`` → Griffin-Lim)."""
    if vocoder_dir is None:
        return None
    if not spec.accepts_vocoder:
        raise ValueError(f"{spec.name} does not produce log-mel spectrograms; --vocoder applies to spectrogram models "
                         f"({', '.join(name for name in models.names() if models.get(name).accepts_vocoder)})")
    vocoder_spec, vocoder, vocoder_config, _ = load(vocoder_dir)
    if not vocoder_spec.vocoder:
        raise ValueError(f"{vocoder_dir}: holds a {vocoder_spec.name} run, not a vocoder; train one with `musiclib train melgan`")
    if vocoder_config != audio_config:
        raise ValueError(f"{vocoder_dir}: the vocoder was trained on features {vocoder_config}, "
                         f"but the model makes {audio_config}; train the vocoder on data with the model's AudioConfig")
    return vocoder


def generate(run_dir: str | Path, seconds: float, out: str | Path, seed: int = 0, vocoder: str | Path | None = None,
             mode: str | None = None, **labels) -> tuple[Path, float]:
    """Generate ``seconds`` of audio from a run and write it to ``out``.

    A sequence model's file starts with its held-out prime, so it can be heard in context;
    a vocoder's file holds a held-out clip and then the vocoder's rendering of it.
    ``vocoder`` is a vocoder run folder that renders a spectrogram model's output instead of Griffin-Lim.
    ``mode`` (and ``pitch=``, ``instrument=`` labels) pick a generation mode of models that have
    several (the VAEs); ``"continue"`` starts from a held-out clip, which the file plays first.

    Returns:
        ``(path, prime_seconds)``: the file and how many of its first seconds are the prime (0 for none).
    """
    audio.check_output_path(out)
    if not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    spec, model, audio_config, run_config = load(run_dir)
    vocode = load_vocoder(vocoder, spec, audio_config)
    # Models that make music from nothing need no data: a run folder moved without its dataset still generates.
    needs_data = spec.prime_seconds > 0 or mode == "continue"
    dataset = run_dataset(run_dir, run_config) if needs_data else None
    prime, options = generation_options(spec, dataset, 1, seed, mode, **labels)
    set_seed(seed)
    extra = {"vocoder": vocode} if vocode is not None else {}
    y = spec.generate(model, 1, seconds, seed, audio_config, prime, **extra, **options)[0]
    if not np.all(np.isfinite(y)):
        raise FloatingPointError(f"{run_dir}: the model produced NaN or infinite samples")
    if prime is not None:
        y = np.concatenate([prime[0], y])
    prime_seconds = 0.0 if prime is None else prime.shape[1] / audio_config.sample_rate
    return audio.save(out, y, audio_config.sample_rate), prime_seconds


EVAL_CLIPS = 160
"""Generated clips ``evaluate`` scores by default (and at most as many real held-out clips)."""
TRAIN_REFERENCE = 500
"""Training clips, evenly spread over the split, that the set-level scores compare against."""


def spread_clips(dataset: AudioDataset, split: str, n: int) -> np.ndarray:
    """``(≤ n, clip_samples)``: ``n`` clips evenly spread over a split (all of them if it has fewer), read alone."""
    total = dataset.manifest["counts"][split]
    return dataset.read_clips(split, evenly_spaced(total, n))


def n_parameters(model) -> int:
    """How many numbers a model learns (a GAN's critic and generator together)."""
    return int(sum(p.numel() for p in model.parameters()))


def train_seconds(run_dir: str | Path) -> float | None:
    """Wall-clock seconds a run trained for, over all its resumes (``None`` for runs trained before it was recorded).

    A run trained inside it for it (a token prior's tokenizer in ``RUN_DIR/tokenizer``) counts too.
    """
    records = history(run_dir)
    own = records[-1].get("train_seconds") if records else None
    if own is None:
        return None
    return own + sum(train_seconds(path.parent) or 0.0 for path in sorted(Path(run_dir).glob("*/history.json")))


def scored_clips(spec: models.ModelSpec, model, dataset: AudioDataset, n: int, seed: int = 0, vocode=None) -> tuple[np.ndarray, float]:
    """``(n, clip_samples)`` clips generated the way every score sees them, and the real-time factor.

    A primed model continues held-out primes (its clips hold only the new audio); a spectrogram
    model is inverted by Griffin-Lim (32 iterations) unless ``vocode`` is given.

    Returns:
        ``(clips, rtf)``: the clips and the seconds of computing per second of audio (below 1: faster than real time).
    """
    clip_seconds = dataset.clip_samples / dataset.sample_rate
    primes = heldout_primes(dataset, spec, n, seed)
    set_seed(seed)
    extra = {"vocoder": vocode} if vocode is not None else {}
    started = time.perf_counter()
    clips = spec.generate(model, n, clip_seconds, seed, dataset.config, primes, **extra)[:, : dataset.clip_samples]
    return clips, (time.perf_counter() - started) / (n * clip_seconds)


def evaluate(run_dir: str | Path, n_clips: int | None = None, seed: int = 0, vocoder: str | Path | None = None) -> dict:
    """Score generated clips against the training clips, beside real held-out music and white noise.

    The work is bounded whatever the dataset's size: ``n_clips`` generated clips
    (default :data:`EVAL_CLIPS`; a primed model continues one held-out prime per clip, so at most
    as many as there are held-out clips), compared against at most :data:`TRAIN_REFERENCE`
    training clips spread evenly over the split, read one at a time from the memory maps.
    ``vocoder`` as in :func:`generate`.

    The real-music row scores test clips; the memorisation ratio's yardstick is the
    validation clips, a disjoint set, so real music's own ratio is a measurement (near 1) and
    not 1 by construction.

    Writes and returns ``eval.json``: the set scores of :class:`musiclib.metrics.SetScorer` for the model,
    for held-out real clips (the target) and for noise (the floor), and the model's size, training
    time and generation speed (real-time factor). A model's own
    held-out scores beside their baselines (one-step error against persistence, a vocoder against
    Griffin-Lim, an autoencoder against PCA, a CVAE's pitch accuracy, a GAN's images before
    inversion) are added under ``heldout_scores``.
    """
    spec, model, audio_config, run_config = load(run_dir)
    vocode = load_vocoder(vocoder, spec, audio_config)
    dataset = run_dataset(run_dir, run_config)
    counts = dataset.manifest["counts"]
    if counts["test"] == 0 or counts["val"] == 0:
        raise DatasetError(f"{dataset.root}: evaluation needs clips in both the val and the test split "
                           f"(has {counts['val']} and {counts['test']}); rebuild it with `musiclib prepare`.")
    n = n_clips or EVAL_CLIPS
    if spec.prime_seconds > 0:
        n = min(n, counts["test"] + counts["val"])
    train_reference = spread_clips(dataset, "train", TRAIN_REFERENCE)
    generated, rtf = scored_clips(spec, model, dataset, n, seed, vocode)
    noise = baselines.white_noise_clips(n, dataset.clip_samples, baselines.rms(train_reference), seed=seed)
    scorer = metrics.SetScorer(train_reference, spread_clips(dataset, "val", n), audio_config)
    results = {
        "model": run_config["model"],
        "inverter": "griffin_lim_32" if vocoder is None else str(vocoder),
        "n_clips": n,
        "n_train_reference": len(train_reference),
        "parameters": n_parameters(model),
        "train_seconds": train_seconds(run_dir),
        "generation_rtf": rtf,
        "generated": scorer(generated),
        "heldout_real": scorer(spread_clips(dataset, "test", n)),
        "white_noise": scorer(noise),
    }
    if spec.heldout_scores is not None:
        results["heldout_scores"] = spec.heldout_scores(model, dataset, run_config["model_config"])
    Path(run_dir, "eval.json").write_text(json.dumps(results, indent=1) + "\n")
    return results
