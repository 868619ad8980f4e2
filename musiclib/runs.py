"""A run folder: train, generate from and evaluate any registered model (what the CLI calls).

A model class (:mod:`musiclib.models.base`) says what to build and how to train and sample it; this module
does the rest the same way for every model: checks the settings, trains or loads the model it is built on,
runs the :class:`~musiclib.training.Trainer`, and writes and reads run folders.

``RUN_DIR/config.json`` names the model, its configuration, the audio
configuration and the data; ``checkpoint.pt`` holds the weights; ``samples/``
the audio previews; ``eval.json`` the scores.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from musiclib import audio, baselines, budget, cache, distributed, metrics, models, training
from musiclib.config import AudioConfig
from musiclib.datasets import AudioDataset, DatasetError
from musiclib.models import Model, Settings, make_audio
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


def train(model_name: str, data: str | Path, out: str | Path, steps: int | None = None, seed: int = 0,
          overrides: dict | None = None, progress: bool = True, minutes: float | None = None,
          started: float | None = None, fast: bool | None = None) -> Path:
    """Train (or resume) ``model_name`` on ``data`` into run folder ``out``; writes a preview sample.

    Every setting is checked before anything is written: an unknown or mistyped setting, or a
    resume whose settings differ from the run's, raises ``ValueError`` and leaves ``out`` as it was.
    A resumed run keeps its own length (steps, and the settings that go with it) unless ``steps`` or the
    settings are given again. A model built on another (:attr:`Model.upstream`) gets it trained into
    ``out/<setting>``, or the run its setting names, loaded and handed to its constructor.

    Args:
        minutes: Train to a wall-clock budget instead of a step count (:mod:`musiclib.budget`): the step time is
            measured on the first steps, the number of steps (and the recipe's warm-up lengths,
            ``Settings.scales_with_steps``) chosen to end by the budget, and training stops cleanly at the budget
            whatever the estimate said. A model's upstream run trained here gets its ``budget_share``. Resuming with
            more minutes continues the run; resuming without ``steps`` or ``minutes`` continues to the steps its budget
            chose. Each session is recorded in ``out/budget.json``.
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
    model_class, overrides, settings, dataset, run_config, previous = _setup(model_name, data, out, steps, seed, overrides,
                                                                             minutes, fast)
    out = Path(out)
    config_path = out / "config.json"
    fresh = not out.exists()
    distributed.barrier()  # every rank has seen the folder as it was before rank 0 writes to it
    deadline = None if minutes is None else started + 60.0 * minutes
    plan = None
    try:
        upstream = None
        if model_class.upstream is not None:  # e.g. a token prior's tokenizer: trained into out/, or a given run checked
            upstream, settings = upstream_run(model_class, settings, data, out, seed, progress, minutes=minutes,
                                              started=started, fast=fast)
        settings = model_class.settle(settings, dataset)
        set_seed(seed)
        model = build(model_class, settings, dataset.config, upstream)
        with distributed.main_first():  # rank 0 fills the feature cache; the others read it
            model.fit(dataset)
            train_array, val_array = model.features(dataset, "train"), model.features(dataset, "val")
        preview_prime = heldout_primes(dataset, model_class, 1, seed)

        def preview_audio(model_now) -> np.ndarray:
            return make_audio(model_now, 1, 2.0, seed, preview_prime)[0]

        if deadline is not None:
            initial = copy.deepcopy(model.state_dict())
            start_step = int(load_checkpoint(out / CHECKPOINT)["step"]) if (out / CHECKPOINT).exists() else 0
            plan = budget.plan(model, dataset, train_array, val_array, _train_config(settings, seed, progress=False),
                               preview_audio, deadline, start_step, minutes)
            scaled = {}
            if previous is None:
                factor = plan["planned_steps"] / settings.steps
                recipe = settings.to_dict()
                scaled = {key: int(round(recipe[key] * factor))
                          for key in settings.scales_with_steps if key not in overrides}
            settings = settings.replace(steps=plan["planned_steps"], **scaled)
            set_seed(seed)  # the measured copy trained: start again from the same initial weights
            model = build(model_class, settings, dataset.config, upstream)
            model.load_state_dict(initial)
    except BaseException:
        if fresh and world.is_main:  # only an upstream run can have been written: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    run_config["model_config"] = model_config = settings.to_dict()
    try:
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomically(config_path, json.dumps(run_config, indent=1) + "\n")

        def preview(trainer, step):
            audio.save(out / "samples" / f"step_{step:06d}.wav", preview_audio(trainer.model), dataset.config.sample_rate)

        def record_plan(steps):  # a budgeted run's pace, measured again at each checkpoint, moved its end
            write_text_atomically(config_path, json.dumps(run_config, indent=1) + "\n")

        trainer = Trainer(model, train_array, out, _train_config(settings, seed, progress), dataset.config, model_config,
                          val_array, preview, deadline=None if plan is None else deadline - plan["seconds_to_finish"],
                          on_replan=None if plan is None else record_plan)
        trainer.fit()
    except BaseException:
        if fresh and world.is_main and not (out / CHECKPOINT).exists():  # a run that never reached a checkpoint leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if model_class.fits_after_training():
        state = trainer.state()  # (every rank: it gathers their RNG states)
        if world.is_main:
            trainer.model.finish(dataset)
            save_checkpoint(trainer.checkpoint_path, {**state, "model": trainer.model.state_dict()})
            preview(trainer, trainer.step)
    distributed.barrier()  # the run is complete on disk before any rank reads it (a model trained on top of it)
    if plan is not None:
        budget.record(out, {**plan, "first_planned_steps": plan["planned_steps"], "planned_steps": trainer.config.steps,
                            "reached_step": trainer.step, "stopped_by": "budget" if trainer.stopped_by_budget else "plan",
                            "seconds": round(training.clock() - started, 2)})
    return out


def build(model_class: type[Model], settings: Settings, audio_config: AudioConfig, upstream: Model | None = None) -> Model:
    """A model of ``settings``. A model built on another gets a shell of it made from its recorded settings (what a
    checkpoint fills), with the trained ``upstream`` model's weights copied in when one is given."""
    if model_class.upstream is None:
        return model_class(settings, audio_config)
    shell = model_class.upstream.model(model_class.upstream.settings_of(settings), audio_config)
    if upstream is not None:
        shell.load_state_dict(upstream.state_dict())
    return model_class(settings, audio_config, shell)


def _setup(model_name: str, data, out, steps: int | None, seed: int, overrides: dict | None, minutes: float | None,
           fast: bool | None) -> tuple:
    """Everything :func:`train` checks before it writes: ``(model_class, overrides, settings, dataset, run_config, previous)``.

    Raises:
        ValueError: a setting, a length or a resume that cannot be trained; nothing has been written.
    """
    model_class = models.get(model_name)
    out = Path(out)
    overrides = dict(overrides or {}) if isinstance(overrides, dict) or overrides is None else overrides
    model_class.Settings.from_dict(overrides, model_name)  # unknown settings and wrong types, named
    if steps is not None and minutes is not None:
        raise ValueError("give a number of steps or of minutes, not both")
    if minutes is not None and not (isinstance(minutes, (int, float)) and 0 < minutes < float("inf")):
        raise ValueError(f"--minutes must be a positive number, got {minutes!r}")
    if steps is not None:
        overrides["steps"] = steps
    fast = fast_mode() if fast is None else fast
    values = {**model_class.Settings.recipe(fast).to_dict(), **overrides}
    config_path = out / "config.json"
    previous = json.loads(config_path.read_text()) if config_path.exists() else None
    if previous is not None:  # the run's length is its own (a budget's plan, an earlier --steps) unless given again
        for key in _length_settings(model_class):
            if key not in overrides and key in previous["model_config"]:
                values[key] = previous["model_config"][key]
    settings = model_class.Settings.from_dict(values, model_name)
    settings.check()
    with distributed.main_first():  # rank 0 builds a bundled set on first use; the others read it
        dataset = open_dataset(data)
    run_config = {"model": model_name, "model_config": settings.to_dict(), "audio_config": dataset.config.to_dict(),
                  "data": dataset_reference(data, dataset), "data_fingerprint": cache.fingerprint(dataset), "seed": seed}
    if previous is not None:
        _check_resume(config_path, previous, run_config, _recorded_settings(model_class))
    elif out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder for the run.")
    return model_class, overrides, settings, dataset, run_config, previous


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
    model_class, _, settings, _, _, _ = _setup(model_name, data, out, steps, seed, overrides, None, None)
    sizes = {model_name: settings.batch_size}
    upstream = model_class.upstream
    if upstream is not None and not upstream.given_run(settings):
        sizes[upstream.model.name] = upstream.settings_of(settings).batch_size
    for name, batch_size in sizes.items():
        if batch_size % nproc:
            raise ValueError(f"--nproc {nproc}: {name}'s batch of {batch_size} examples does not split into {nproc} equal "
                             f"slices; give a number of processes that divides {batch_size}"
                             + (", or --set '{\"batch_size\": ...}'" if name == model_name else "") + ".")


def _train_config(settings: Settings, seed: int, progress: bool) -> TrainConfig:
    """The training loop's settings (four checkpoints unless ``checkpoint_every`` says otherwise)."""
    return TrainConfig(steps=settings.steps, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                       optimizer=settings.optimizer, betas=tuple(settings.betas), seed=seed,
                       checkpoint_every=settings.checkpoint_every or max(1, settings.steps // 4),
                       learning_rate_schedule=settings.learning_rate_schedule, progress=progress)


def _length_settings(model_class: type[Model]) -> tuple[str, ...]:
    """The settings that say how long a run trains: its steps, its warm-ups, its upstream run's steps."""
    upstream = () if model_class.upstream is None else (f"{model_class.upstream.setting}_steps",)
    return ("steps", *model_class.Settings.scales_with_steps, *upstream)


def _recorded_settings(model_class: type[Model]) -> tuple[str, ...]:
    """The settings a run records once its upstream run is known (not given: never compared on a resume)."""
    upstream = model_class.upstream
    return () if upstream is None else (f"{upstream.setting}_run", f"{upstream.setting}_config")


def upstream_run(model_class: type[Model], settings: Settings, data: str | Path, run_dir: str | Path, seed: int,
                 progress: bool, minutes: float | None = None, started: float | None = None,
                 fast: bool | None = None) -> tuple[Model, Settings]:
    """Train or reuse the run a model builds on (a token prior's tokenizer, a latent flow's autoencoder): the trained
    upstream model, and the settings with the run and its settings recorded.

    Reuses the run folder the setting ``<setting>`` names, after checking that it holds a run of the upstream model on
    the same features as ``data``; with the setting empty, trains one into ``RUN_DIR/<setting>`` with the settings
    ``<setting>_config`` for ``<setting>_steps`` steps, or, given ``minutes`` and not trained yet, to its
    ``budget_share`` of that budget counted from ``started`` (its steps are then recorded as ``<setting>_steps``);
    ``fast`` as in :func:`train`. Records the run's absolute path as ``<setting>_run`` and its settings as
    ``<setting>_config``.

    Raises:
        ValueError: naming the setting and the fix, when the given run is missing, of another model, or on other features.
    """
    upstream = model_class.upstream
    name, setting = upstream.model.name, upstream.setting
    given, budget_steps = upstream.given_run(settings), None
    if not given and upstream.data:
        run = shared_upstream_run(upstream, settings, progress, fast_mode() if fast is None else fast)
    elif not given:
        target = Path(run_dir) / setting
        wanted = upstream.overrides(settings)
        if minutes is not None and not (target / CHECKPOINT).exists():
            run = train(name, data, target, seed=seed, overrides=wanted, progress=progress,
                        minutes=minutes * upstream.budget_share, started=started, fast=fast)
            budget_steps = read_config(run)["model_config"]["steps"]
        else:
            run = train(name, data, target, steps=upstream.steps(settings), seed=seed, overrides=wanted,
                        progress=progress, fast=fast)
    else:
        run = Path(given).expanduser()
        try:
            run_config = read_config(run)
        except FileNotFoundError as err:
            raise ValueError(f"setting {setting}: {err}") from err
        if run_config["model"] != name:
            article = "an" if setting[0] in "aeiou" else "a"
            raise ValueError(f"setting {setting}: {run} holds a {run_config['model']} run, not {article} {setting} ({name}); "
                             f"train one with `musiclib train {name}`, or leave the setting out to train one here.")
        if not upstream.data and run_config["audio_config"] != open_dataset(data).config.to_dict():
            raise ValueError(f"setting {setting}: {run} was trained on other features than {data} has; "
                             f"train a {name} on this data, or leave the setting out to train one here.")
    _, trained, _, _ = load(run)
    return trained, settings.replace(**upstream.recorded(str(run.resolve()), trained.settings, budget_steps))


def shared_upstream_path(upstream, settings: Settings, fast: bool) -> Path:
    """Where :func:`shared_upstream_run` keeps the run ``settings`` ask for (it may not be trained yet)."""
    from musiclib.cache import cache_root
    from musiclib.datasets import bundled

    wanted = upstream.overrides(settings)
    identity = {"model": upstream.model.name, "data": upstream.data, "build": bundled.BUILD_VERSIONS[upstream.data],
                "fast": fast, "settings": wanted, "steps": upstream.steps(settings)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "runs" / f"{upstream.model.name}-{digest}"


def shared_upstream_trained(model_class: type[Model], fast: bool) -> bool:
    """Whether the shared upstream run that ``model_class``'s recipe builds on is in the cache already."""
    settings = model_class.Settings.recipe(fast)
    return _complete(shared_upstream_path(model_class.upstream, settings, fast))


def shared_upstream_run(upstream, settings: Settings, progress: bool, fast: bool) -> Path:
    """The run of an upstream model that learns from its own bundled set (:attr:`Upstream.data`): trained once per
    machine into the cache (``runs/`` beside the bundled sets), named by what decides it (model, set, fast or full,
    settings, steps), and reused by every run that asks for the same, whatever its seed: like a pretrained part, it
    is trained with seed 0 (the seeds of the models built on it vary only what they train). ``fast`` picks both the
    recipe and the size of the set, as ``musiclib compare --fast`` does. A lock keeps two processes from training it
    at once; the ranks of one distributed run train it together, rank 0 holding the lock."""
    from contextlib import nullcontext

    from musiclib.datasets import bundled

    wanted = upstream.overrides(settings)
    target = shared_upstream_path(upstream, settings, fast)
    if distributed.broadcast_object(_complete(target)):  # rank 0 decides for every rank, here and below
        return target
    here = distributed.world()
    with bundled.build_lock(target) if here.is_main else nullcontext():
        if distributed.broadcast_object(not _complete(target)):  # another process may have finished it meanwhile
            with distributed.main_first():
                data = bundled.load(upstream.data, fast=fast).root  # the set's folder: its size follows ``fast``, not the environment
                if here.is_main:
                    shutil.rmtree(target, ignore_errors=True)
            train(upstream.model.name, data, target, steps=upstream.steps(settings), seed=0, overrides=wanted,
                  progress=progress, fast=fast)
            if here.is_main:
                write_text_atomically(target / "complete", "\n")
        distributed.barrier()
    return target


def _complete(run: Path) -> bool:
    return (run / "complete").exists()


def _check_resume(config_path: Path, previous: dict, run_config: dict, recorded: tuple[str, ...] = ()) -> None:
    """Refuse to resume the run ``previous`` describes with another model, data, seed or settings (``steps`` may grow),
    or on changed data."""
    if previous["model"] != run_config["model"] or previous["audio_config"] != run_config["audio_config"]:
        raise ValueError(f"{config_path.parent}: holds a {previous['model']} run with another setup; choose a new --out folder.")
    changed = [key for key, value in run_config["model_config"].items()
               if key != "steps" and key not in recorded and previous["model_config"].get(key) != value]
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


def excerpts(dataset: AudioDataset, split: str, n: int, seconds: float) -> np.ndarray:
    """``(≤ n, samples)``: windows of ``seconds`` from a split's recordings (their clips joined), evenly spread.

    Each recording's windows start a third of ``seconds`` apart; a recording shorter than ``seconds`` gives none.
    These are what the musical measures (:mod:`musiclib.musicality`) listen to: a clip of one second
    holds no pulse or key.
    """
    clip, samples = dataset.clip_samples, int(round(seconds * dataset.sample_rate))
    windows = []
    for source in dataset.manifest["sources"]:
        if source["split"] != split or source["n_clips"] * clip < samples:
            continue
        length, step = source["n_clips"] * clip, max(1, samples // 3)
        windows += [(source["first_clip"], start) for start in range(0, length - samples + 1, step)]
    picked = [windows[i] for i in evenly_spaced(len(windows), n)] if windows else []
    out = []
    for first_clip, start in picked:
        first, last = first_clip + start // clip, first_clip + (start + samples - 1) // clip
        joined = dataset.read_clips(split, np.arange(first, last + 1)).reshape(-1)
        out.append(joined[start % clip: start % clip + samples])
    return np.stack(out) if out else np.zeros((0, samples), np.float32)


MUSICAL_EXCERPTS = 8
"""Excerpts (of :data:`musiclib.musicality.EXCERPT_SECONDS`) a scored set makes for the musical measures."""
CALIBRATION_EXCERPTS = 16
"""Training excerpts that set the musical measures' 1 (the music), beside as much pink noise (their 0)."""


def musical_scorer(dataset: AudioDataset):
    """The :class:`musiclib.musicality.MusicalScorer` of a dataset (its training music is 1, pink noise 0), and its
    held-out test excerpts; ``(None, None)`` where the recordings are too short to hold an excerpt."""
    from musiclib import musicality

    calibration = excerpts(dataset, "train", CALIBRATION_EXCERPTS, musicality.EXCERPT_SECONDS)
    real = excerpts(dataset, "test", MUSICAL_EXCERPTS, musicality.EXCERPT_SECONDS)
    if not len(calibration) or not len(real):
        return None, None
    noise = baselines.pink_noise_clips(len(calibration), calibration.shape[1], baselines.rms(calibration), dataset.sample_rate, seed=1000)
    return musicality.MusicalScorer(calibration, noise, dataset.sample_rate), real


def heldout_primes(dataset: AudioDataset, model_class: type[Model], n: int, seed: int = 0) -> np.ndarray | None:
    """``(n, samples)``: the first ``prime_seconds`` of held-out clips, or ``None`` for models that need no prime."""
    if model_class.prime_seconds <= 0:
        return None
    return heldout_audio(dataset, n, model_class.prime_seconds, seed)


def generation_prime(model_class: type[Model], dataset: AudioDataset | None, n: int, seed: int,
                     mode: str | None = None) -> np.ndarray | None:
    """The held-out audio a model generates from in ``mode``: a whole held-out clip to continue, a primed model's
    ``prime_seconds``, or ``None``; a mode the model does not have is refused."""
    if mode is not None and mode not in model_class.modes():
        hint = "; a conditional model does: `musiclib train cvae --data notes`" if mode == "condition" else ""
        raise ValueError(f"{model_class.name} generates in modes {list(model_class.modes())}, not {mode!r}{hint}")
    if mode == "continue":
        return heldout_audio(dataset, n, dataset.clip_samples / dataset.sample_rate, seed)
    return heldout_primes(dataset, model_class, n, seed)


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


def load(run_dir: str | Path) -> tuple[type[Model], Model, AudioConfig, dict]:
    """``(model_class, model, audio_config, run_config)`` of a trained run folder, the model in eval mode.

    A run folder whose settings or weights the current model cannot take (trained by an older musiclib) is refused
    with one line that says why and what to do.
    """
    run_dir = Path(run_dir)
    run_config = read_config(run_dir)
    model_class = models.get(run_config["model"])
    audio_config = AudioConfig.from_dict(run_config["audio_config"])
    state = load_checkpoint(run_dir / CHECKPOINT)
    older = "(trained by an older musiclib?); retrain it into a new --out folder. Details:"
    try:
        settings = model_class.Settings.from_dict(state["model_config"], model_class.name)
        model = build(model_class, settings, audio_config)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{run_dir / CHECKPOINT}: its settings do not fit the current {model_class.name} model {older} {error}") from error
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(f"{run_dir / CHECKPOINT}: its weights do not fit the current {model_class.name} model {older} {error}") from error
    model.eval()
    return model_class, model, audio_config, run_config


def load_inverter(inverter_dir: str | Path | None, model_class: type[Model], audio_config: AudioConfig) -> Model | None:
    """The trained inverter (vocoder) of a run folder, checked against the model it will speak for (``None`` → Griffin-Lim)."""
    if inverter_dir is None:
        return None
    if model_class.output != "log-mel":
        raise ValueError(f"{model_class.name} does not produce log-mel spectrograms; --vocoder applies to spectrogram models "
                         f"({', '.join(name for name in models.names() if models.get(name).output == 'log-mel')})")
    inverter_class, inverter, inverter_config, _ = load(inverter_dir)
    if inverter_class.family != "vocoder":
        raise ValueError(f"{inverter_dir}: holds a {inverter_class.name} run, not a vocoder; train one with `musiclib train melgan`")
    if inverter_config != audio_config:
        raise ValueError(f"{inverter_dir}: the vocoder was trained on features {inverter_config}, "
                         f"but the model makes {audio_config}; train the vocoder on data with the model's AudioConfig")
    return inverter


def generate(run_dir: str | Path, seconds: float, out: str | Path, seed: int = 0, vocoder: str | Path | None = None,
             mode: str | None = None, **labels) -> tuple[Path, float]:
    """Generate ``seconds`` of audio from a run and write it to ``out``.

    A primed model's file starts with its held-out prime, so it can be heard in context;
    a vocoder's file holds a held-out clip and then the vocoder's rendering of it.
    ``vocoder`` is a vocoder run folder that renders a spectrogram model's output instead of Griffin-Lim.
    ``mode`` (and ``pitch=``, ``instrument=`` labels) pick a generation mode of models that have
    several (:meth:`Model.modes`); ``"continue"`` starts from a held-out clip, which the file plays first.

    Returns:
        ``(path, prime_seconds)``: the file and how many of its first seconds are the prime (0 for none).
    """
    audio.check_output_path(out)
    if not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    model_class, model, audio_config, run_config = load(run_dir)
    inverter = load_inverter(vocoder, model_class, audio_config)
    # Models that make music from nothing need no data: a run folder moved without its dataset still generates.
    needs_data = model_class.prime_seconds > 0 or mode == "continue"
    dataset = run_dataset(run_dir, run_config) if needs_data else None
    prime = generation_prime(model_class, dataset, 1, seed, mode)
    set_seed(seed)
    y = make_audio(model, 1, seconds, seed, prime, mode, inverter, **labels)[0]
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


def scored_clips(model: Model, dataset: AudioDataset, n: int, seed: int = 0, inverter: Model | None = None,
                 seconds: float | None = None) -> tuple[np.ndarray, float]:
    """``(n, samples)`` clips generated the way every score sees them, and the real-time factor.

    A primed model continues held-out primes (its clips hold only the new audio); a spectrogram
    model is inverted by Griffin-Lim (32 iterations) unless ``inverter`` is given. The clips are
    ``seconds`` long (default: the dataset's clip length).

    Returns:
        ``(clips, rtf)``: the clips and the seconds of computing per second of audio (below 1: faster than real time).
    """
    seconds = dataset.clip_samples / dataset.sample_rate if seconds is None else seconds
    samples = int(round(seconds * dataset.sample_rate))
    primes = heldout_primes(dataset, type(model), n, seed)
    set_seed(seed)
    started = time.perf_counter()
    clips = make_audio(model, n, seconds, seed, primes, inverter=inverter)[:, :samples]
    return clips, (time.perf_counter() - started) / (n * seconds)


def round_trip_clips(model: Model, clips: np.ndarray, seed: int = 0, inverter: Model | None = None) -> np.ndarray:
    """``clips`` through the model's representation and back (:meth:`Model.round_trip`), as long as they were
    (zero-padded where a representation keeps fewer frames)."""
    set_seed(seed)
    made = make_audio(model, len(clips), clips.shape[1] / model.audio.sample_rate, seed, np.asarray(clips), mode="round-trip",
                      inverter=inverter)
    return np.pad(made, ((0, 0), (0, clips.shape[1] - made.shape[1])))


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
    time and generation speed (real-time factor). Where the recordings are long enough, each row adds the musical
    measures of :mod:`musiclib.musicality` on excerpts of a few seconds, and a model that generates in a
    representation of its own adds its ``ceiling``: the held-out excerpts through it and back. A model's own
    held-out scores beside their baselines (one-step error against persistence, a vocoder against
    Griffin-Lim, an autoencoder against PCA, a CVAE's pitch accuracy, a GAN's images before
    inversion) are added under ``heldout_scores``.
    """
    model_class, model, audio_config, run_config = load(run_dir)
    inverter = load_inverter(vocoder, model_class, audio_config)
    dataset = run_dataset(run_dir, run_config)
    counts = dataset.manifest["counts"]
    if counts["test"] == 0 or counts["val"] == 0:
        raise DatasetError(f"{dataset.root}: evaluation needs clips in both the val and the test split "
                           f"(has {counts['val']} and {counts['test']}); rebuild it with `musiclib prepare`.")
    n = n_clips or EVAL_CLIPS
    if model_class.prime_seconds > 0:
        n = min(n, counts["test"] + counts["val"])
    train_reference = spread_clips(dataset, "train", TRAIN_REFERENCE)
    generated, rtf = scored_clips(model, dataset, n, seed, inverter)
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
    musical, real_excerpts = musical_scorer(dataset)
    if musical is not None:  # on excerpts of a few seconds: notes, a pulse and a key
        from musiclib import musicality

        made, _ = scored_clips(model, dataset, MUSICAL_EXCERPTS, seed, inverter, seconds=musicality.EXCERPT_SECONDS)
        results["excerpt_seconds"] = musicality.EXCERPT_SECONDS
        results["generated"].update(musical(made))
        results["heldout_real"].update(musical(real_excerpts))
        results["white_noise"].update(musical(baselines.white_noise_clips(len(real_excerpts), real_excerpts.shape[1],
                                                                          baselines.rms(real_excerpts), seed=seed)))
        if model_class.has_round_trip():
            results["ceiling"] = musical(round_trip_clips(model, real_excerpts, seed, inverter), real_excerpts)
    heldout_scores = model.heldout_scores(dataset)
    if heldout_scores:
        results["heldout_scores"] = heldout_scores
    Path(run_dir, "eval.json").write_text(json.dumps(results, indent=1) + "\n")
    return results
