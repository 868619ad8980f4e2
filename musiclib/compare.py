"""`musiclib compare`: every registered model trained and scored the same way, on one table.

For each bundled set that some model trains on (:attr:`musiclib.models.Model.data`), every
generative model in the registry is trained at its fast (or full) configuration with several seeds,
and each run makes the same number of clips of the same length, continuing the same held-out primes
where it continues music, inverted by the same Griffin-Lim (32 iterations), and optionally by the
registered vocoder too. Every set of clips is scored by one :class:`musiclib.metrics.SetScorer` against
the same training reference, beside reference rows: held-out real music (scored against a disjoint
yardstick, so its own scores are measurements), real music passed through Griffin-Lim and through
the vocoder, white and pink noise, and persistence for continuing models.

The work is resumable: each run folder resumes its training, and each scored run or reference set
keeps its scores (``scores.json``) and the audio it scored, reused while the budget is unchanged.
A model joins the table by registering itself; nothing here names a model.

The tables and pages made from the results are :mod:`musiclib.report`'s.

Notebook: 15_comparison.ipynb
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from musiclib.utils import write_text_atomically

@dataclasses.dataclass(frozen=True)
class ComparePlan:
    """What ``musiclib compare`` trains and how it scores; refused with the option's name when a value is bad.

    Attributes:
        models: Registered model names; empty means every generative model (all but vocoders).
        seeds: Training seeds per model (0, 1, ...).
        fast: Train at each model's fast configuration on the fast bundled sets.
        n_clips: Clips per scored set (at most the held-out test clips of the set, the real-music row's size); also the
            excerpts each row makes for the musical measures, up to :data:`musiclib.runs.MUSICAL_EXCERPTS`.
        work: Folder for the runs, the scores and the scored audio (resumed when it holds them).
        vocoder: Also score the spectrogram models of the vocoder's data set through the registered vocoder
            (trained with seed 0).
        steps: Train every model (and the vocoder, and any model a model trains first) for this many steps instead of its
            configuration's (quick looks, tests).
        jobs: Training processes at once, sharing the CPU's threads (results are reproducible for a given ``jobs``).
    """

    models: tuple[str, ...] = ()
    seeds: int = 3
    fast: bool = True
    n_clips: int = 32
    work: str = "outputs/compare"
    vocoder: bool = True
    steps: int | None = None
    jobs: int = 1

    def __post_init__(self):
        from musiclib import models

        for name in self.models:
            model_class = models.get(name) if name in models.names() else None
            if model_class is None or model_class.family == "vocoder":
                raise ValueError(f"--models: {name!r} is not a generative model; choose from "
                                 f"{', '.join(s.name for s in models.generative_models())}")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"--seeds must be a whole number of at least 1, got {self.seeds!r}")
        if not isinstance(self.n_clips, int) or self.n_clips < 2:
            raise ValueError(f"--n-clips must be at least 2 (the distances need two clips), got {self.n_clips!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"--steps must be a whole number of at least 1, got {self.steps!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"--jobs must be a whole number of at least 1, got {self.jobs!r}")
        if Path(self.work).exists() and not Path(self.work).is_dir():
            raise ValueError(f"--work {self.work}: is a file; give a folder for the runs")

    def model_classes(self) -> list:
        from musiclib import models

        chosen = models.generative_models()
        return [model_class for model_class in chosen if model_class.name in self.models] if self.models else chosen


def _log(line: str) -> None:
    print(line, flush=True)


def _cached_json(path: Path, budget: dict, compute: Callable[[], dict]) -> dict:
    """``path``'s scores if they were made with ``budget``, else ``compute()`` written there atomically."""
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("budget") == budget:
            return stored["scores"]
    scores = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps({"budget": budget, "scores": scores}, indent=1, default=float) + "\n")
    return scores


def _save_scored_audio(path: Path, clips: np.ndarray, sample_rate: int) -> None:
    """The clips a row was scored on, one after another in one file (a short gap between them)."""
    from musiclib import audio

    gap = np.zeros(sample_rate // 10, dtype=np.float32)
    audio.save(path, np.concatenate([part for clip in clips for part in (np.asarray(clip, dtype=np.float32), gap)]), sample_rate)


PITCH_GRIDS = (
    {"n_fft": 1024, "n_mels": 80, "fmin": 0.0, "mel_htk": False},  # the grid of musiclib before the ceiling table
    {"n_fft": 1024, "n_mels": 128, "fmin": 30.0, "mel_htk": True},
    {"n_fft": 2048, "n_mels": 224, "fmin": 30.0, "mel_htk": False},
)
"""Log-mel grids whose round trip (with Griffin-Lim 32) is a row of the ceiling table, beside the data's own grid."""


class ScoringSetup:
    """One bundled set's shared scoring: its dataset, clip budget, scorers and (optionally) vocoder.

    Every row is scored on ``n`` clips of the set's clip length (the set scores) and, where the set's
    recordings are long enough, on excerpts of :data:`musiclib.musicality.EXCERPT_SECONDS` (the musical measures).
    """

    def __init__(self, data: str, plan: ComparePlan):
        from musiclib import cache, metrics, musicality, runs
        from musiclib.datasets import bundled

        self.dataset = bundled.load(data, fast=plan.fast)
        self.folder = Path(plan.work) / data
        self.n = min(plan.n_clips, self.dataset.manifest["counts"]["test"])
        self.real = runs.spread_clips(self.dataset, "test", self.n)
        self.scorer = metrics.SetScorer(runs.spread_clips(self.dataset, "train", runs.TRAIN_REFERENCE),
                                        runs.spread_clips(self.dataset, "val", self.n), self.dataset.config)
        self.musical, self.real_excerpts = runs.musical_scorer(self.dataset)
        self.n_excerpts = min(plan.n_clips, runs.MUSICAL_EXCERPTS) if self.musical is not None else 0
        self.inverter = None  # the trained vocoder (an inverter), where the plan has one
        self.budget = {"n_clips": self.n, "fast": plan.fast, "data_fingerprint": cache.fingerprint(self.dataset),
                       "excerpts": [self.n_excerpts, musicality.EXCERPT_SECONDS]}

    def score(self, clips: np.ndarray, audio_path: Path, excerpts: np.ndarray | None = None,
              references: np.ndarray | None = None) -> dict:
        """Set scores of ``clips``, and the musical measures of ``excerpts`` (with their agreement with ``references``,
        the music they were made from, for a round trip)."""
        _save_scored_audio(audio_path, clips, self.dataset.sample_rate)
        scores = self.scorer(clips)
        if self.musical is not None and excerpts is not None:
            _save_scored_audio(audio_path.with_name(audio_path.stem + "_excerpts.wav"), excerpts, self.dataset.sample_rate)
            scores.update(self.musical(excerpts, references))
        return scores


def run_settings(model_class, plan: ComparePlan) -> dict:
    """The settings ``plan`` trains ``model_class`` with: its fast (or full) configuration, and the plan's step count if it sets one."""
    settings = model_class.Settings.recipe(plan.fast).to_dict()
    if plan.steps:
        settings["steps"] = plan.steps
        if model_class.upstream is not None:  # the model it trains first gets the same short budget
            settings[f"{model_class.upstream.setting}_steps"] = plan.steps
    return settings


def train_run(name: str, plan: ComparePlan, run_dir: Path, seed: int, threads: int | None = None) -> float:
    """Train (or resume, or reuse) one run of the plan; return the seconds it took here.

    A finished run is marked with its settings and its data's fingerprint, and reused while the settings are what the
    plan asks for (more steps resume it); a run trained on other data or features (a rebuilt set, another
    ``AudioConfig``) is deleted and trained again. ``threads`` limits torch's threads (one of several training processes).
    """
    from musiclib import models, runs
    from musiclib.datasets import bundled

    if threads:
        import torch

        torch.set_num_threads(threads)
    from musiclib import cache

    started = time.perf_counter()
    model_class = models.get(name)
    dataset = bundled.load(model_class.data, fast=plan.fast)
    done = {"settings": run_settings(model_class, plan), "data_fingerprint": cache.fingerprint(dataset)}
    finished = Path(run_dir) / "finished.json"
    if finished.exists():
        before = json.loads(finished.read_text())
        if before == done:
            return 0.0
        if before.get("data_fingerprint") != done["data_fingerprint"]:  # trained on other data (or features): start again
            shutil.rmtree(run_dir)
    try:
        runs.train(name, dataset.root, run_dir, seed=seed, overrides=done["settings"], progress=False, fast=plan.fast)
    except ValueError as err:
        raise ValueError(f"{err} (musiclib compare: delete {run_dir}, or give another --work folder)") from err
    write_text_atomically(finished, json.dumps(done) + "\n")
    return time.perf_counter() - started


def _train_all(tasks: list[tuple[str, Path, int]], plan: ComparePlan, log: Callable[[str], None]) -> int:
    """Train every ``(model, run folder, seed)``, in ``plan.jobs`` processes that share the CPU's threads.

    Returns how many runs were already trained (by an earlier call) and reused.
    """
    total, reused = len(tasks), 0
    if plan.jobs == 1:
        for k, (name, run_dir, seed) in enumerate(tasks, 1):
            log(f"[compare] training {k}/{total}: {name} seed {seed}")
            seconds = train_run(name, plan, run_dir, seed)
            reused += not seconds
            log(f"[compare] training {k}/{total}: {name} seed {seed} " + (f"done in {seconds:.0f} s" if seconds else "was done"))
        return reused
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    threads = max(1, torch.get_num_threads() // plan.jobs)
    log(f"[compare] training {total} runs in {plan.jobs} processes of {threads} thread(s) each")
    with ProcessPoolExecutor(plan.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_run, name, plan, run_dir, seed, threads): (name, seed) for name, run_dir, seed in tasks}
        for k, future in enumerate(as_completed(futures), 1):
            name, seed = futures[future]
            seconds = future.result()
            reused += not seconds
            log(f"[compare] trained {k}/{total}: {name} seed {seed} " + (f"in {seconds:.0f} s" if seconds else "(was done)"))
    return reused


def score_run(model_class, setup: ScoringSetup, run_dir: Path) -> dict:
    """One trained run's row: its clips scored (with Griffin-Lim, and the vocoder where it applies) and its costs."""
    from musiclib import musicality, runs

    _, model, _, _ = runs.load(run_dir)
    clips, rtf = runs.scored_clips(model, setup.dataset, setup.n)
    excerpts = runs.scored_clips(model, setup.dataset, setup.n_excerpts, seconds=musicality.EXCERPT_SECONDS)[0] if setup.n_excerpts else None
    scores = {**setup.score(clips, run_dir / "scored.wav", excerpts), "generation_rtf": rtf,
              "parameters": runs.n_parameters(model), "train_seconds": runs.train_seconds(run_dir)}
    if setup.inverter is not None and model_class.output == "log-mel" and model.log_mel_audio == setup.inverter.audio:
        vocoded, _ = runs.scored_clips(model, setup.dataset, setup.n, inverter=setup.inverter)
        scores["frechet_distance_vocoder"] = setup.score(vocoded, run_dir / "scored_vocoder.wav")["frechet_distance"]
    if "condition" in model_class.modes():
        asked = model.heldout_scores(setup.dataset)["pitch_accuracy"]
        scores["pitch_accuracy"] = asked["within_tolerance"]
        scores["pitch_accuracy_unheard"] = asked.get("within_tolerance_unheard")
    return scores


def continues_from_nothing(model_class) -> bool:
    """A model that both makes music from nothing (its row) and continues music: its continuations get a row too."""
    return model_class.prime_seconds == 0 and {"autonomous", "continue"} <= set(model_class.modes())


def score_continuation(setup: ScoringSetup, run_dir: Path) -> dict:
    """A trained run's continuations of held-out clips (each whole clip the prime, as ``musiclib generate --mode
    continue`` primes), scored like its row: the new audio only, as many clips of the same length, and excerpts
    continuing held-out clips for the musical measures."""
    from musiclib import musicality, runs
    from musiclib.models import make_audio
    from musiclib.utils import set_seed

    _, model, _, _ = runs.load(run_dir)
    clip_seconds = setup.dataset.clip_samples / setup.dataset.sample_rate
    set_seed(0)
    clips = make_audio(model, setup.n, clip_seconds, 0, runs.heldout_audio(setup.dataset, setup.n, clip_seconds), mode="continue")
    excerpts = None
    if setup.n_excerpts:
        primes = runs.heldout_audio(setup.dataset, setup.n_excerpts, clip_seconds, seed=setup.n)
        excerpts = make_audio(model, setup.n_excerpts, musicality.EXCERPT_SECONDS, 0, primes, mode="continue")
    return setup.score(clips, run_dir / "continued.wav", excerpts)


def score_ceiling(setup: ScoringSetup, run_dir: Path) -> dict:
    """A trained run's ceiling: the held-out music through its representation and back (Griffin-Lim 32), scored."""
    from musiclib import runs

    _, model, _, _ = runs.load(run_dir)
    excerpts = runs.round_trip_clips(model, setup.real_excerpts) if setup.n_excerpts else None
    return setup.score(runs.round_trip_clips(model, setup.real), run_dir / "ceiling.wav", excerpts, setup.real_excerpts)


def _reference_sets(setup: ScoringSetup, model_classes) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], bool]]:
    """The reference rows of one data set: each a function that makes its clips from real clips (or clips as long as
    them), and whether it is a round trip of those clips (then their agreement is scored too)."""
    from musiclib import baselines, features, runs, soundfont

    dataset, config = setup.dataset, setup.dataset.config
    sample_rate = config.sample_rate
    level = baselines.rms(setup.real)  # noise and notes as loud as the music
    sets = {"held-out real music": (lambda real: real, False)}
    grids = [config] + [grid for grid in (dataclasses.replace(config, **g) for g in PITCH_GRIDS) if grid != config]
    for grid in grids:
        name = ("real music → log-mel → Griffin-Lim 32" if grid == config else
                f"real music → log-mel ({grid.n_mels} {'HTK' if grid.mel_htk else 'Slaney'} bands from {grid.fmin:g} Hz, "
                f"n_fft {grid.n_fft}) → Griffin-Lim 32")
        sets[name] = (lambda real, grid=grid: baselines.griffin_lim_resynthesis(real, grid), True)
    sets["real music → log-mel → Griffin-Lim 32 from random phases"] = (
        lambda real: baselines.griffin_lim_resynthesis(real, config, initial_phase="random"), True)
    sets["real music → log-mel → PGHI (no iterations)"] = (
        lambda real: baselines.griffin_lim_resynthesis(real, config, n_iter=0, initial_phase="pghi"), True)
    if setup.inverter is not None:
        sets["real music → log-mel → vocoder"] = (lambda real: np.asarray(setup.inverter.invert(
            np.stack([features.log_mel(clip, config) for clip in real])))[:, : real.shape[1]], True)
    prime_seconds = max((model_class.prime_seconds for model_class in model_classes), default=0.0)
    if prime_seconds > 0:
        sets["persistence (the prime's last frame, repeated)"] = (lambda real: np.stack([
            baselines.persistence_blocks(prime, real.shape[1], config.n_fft)
            for prime in runs.heldout_audio(dataset, len(real), prime_seconds)]), False)
    if setup.musical is not None:
        programs = dataset.manifest.get("ensembles")
        ensembles = tuple(soundfont.ENSEMBLES[e] for e in dict.fromkeys(v["ensemble"] for v in programs.values())) if programs else None
        for name, parts in (("a held chord (same instruments)", baselines.held_chord_parts),
                            ("random notes on the beat (same instruments, no key)", baselines.random_note_parts)):
            sets[name] = (lambda real, parts=parts: baselines.note_excerpts(parts, len(real), real.shape[1] / sample_rate,
                                                                           sample_rate, level, ensembles), False)
    sets["pink noise"] = (lambda real: baselines.pink_noise_clips(len(real), real.shape[1], level, sample_rate), False)
    sets["white noise"] = (lambda real: baselines.white_noise_clips(len(real), real.shape[1], level), False)
    return sets


def summarise(per_seed: list[dict]) -> dict:
    """Mean, spread (sample standard deviation; 0 for one seed) and seed count of each score; the widest kernel interval."""
    summary = {}
    for key in per_seed[0]:
        values = [scores[key] for scores in per_seed if scores.get(key) is not None]
        if key == "kernel_distance_interval":
            summary[key] = [min(v[0] for v in values), max(v[1] for v in values)]
        elif values and all(isinstance(v, (int, float)) for v in values):
            summary[key] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                            "n": len(values)}
    return summary


def run(plan: ComparePlan, log: Callable[[str], None] = _log) -> dict:
    """Train and score everything ``plan`` asks for (resuming whatever is done); return the results.

    First every run is trained (the vocoder first of all, in ``plan.jobs`` processes), then every run
    and reference set is scored in this process, each kept in its ``scores.json``.

    Returns:
        ``{"plan", "date", "runs", "reused_runs", "seconds", "datasets": {data: {"n_clips", "clip_seconds", "rows": [...]}}}``; each row has
        ``name``, ``kind`` (``model`` or ``reference``), ``family``, ``seeds`` and ``scores`` (model scores as
        ``{"mean", "sd", "n"}``, references as plain numbers), and ``per_seed`` for models.
    """
    from musiclib import models, musicality, runs
    from musiclib.plot import use_headless_backend_if_needed

    use_headless_backend_if_needed()
    started = time.perf_counter()
    work = Path(plan.work)
    by_data: dict[str, list] = {}
    for model_class in plan.model_classes():
        by_data.setdefault(model_class.data, []).append(model_class)
    vocoder = next(iter(models.vocoders()), None) if plan.vocoder else None
    # The vocoder is trained on its own data set and renders the spectrogram models of that set.
    vocoded = [vocoder.data] if vocoder is not None and any(model_class.output == "log-mel" for model_class in by_data.get(vocoder.data, ())) else []
    tasks = [(vocoder.name, work / data / "vocoder" / vocoder.name, 0) for data in vocoded]
    tasks += [(model_class.name, work / data / model_class.name / f"seed_{seed}", seed) for data, group in by_data.items()
              for model_class in group for seed in range(plan.seeds)]
    from musiclib.datasets import bundled

    for data in by_data:  # built here, once, before any training process opens it
        bundled.load(data, fast=plan.fast)
    reused = _train_all(tasks, plan, log)
    results = {"plan": dataclasses.asdict(plan), "date": datetime.date.today().isoformat(), "runs": len(tasks),
               "reused_runs": reused, "datasets": {}}
    for data, group in by_data.items():
        log(f"[compare] {data}: scoring {len(group)} models and the reference rows, {plan.seeds} seed(s) each")
        setup = ScoringSetup(data, plan)
        if data in vocoded:
            vocoder_dir = work / data / "vocoder" / vocoder.name
            setup.inverter = runs.load(vocoder_dir)[1]
            setup.budget["vocoder"] = {"name": vocoder.name, **run_settings(vocoder, plan)}
        def seed_rows(model_class, name: str, kind: str, file: str, score: Callable[[Path], dict]) -> dict:
            """One row from every seed's run, each seed's scores kept in ``file`` beside its run."""
            budget = {**setup.budget, "settings": run_settings(model_class, plan)}
            per_seed = [_cached_json(run_dir / file, budget, lambda: score(run_dir))
                        for run_dir in (work / data / model_class.name / f"seed_{seed}" for seed in range(plan.seeds))]
            return {"name": name, "kind": kind, "family": model_class.family, "seeds": plan.seeds, "scores": summarise(per_seed),
                    "per_seed": per_seed}

        rows = [seed_rows(model_class, model_class.name, "model", "scores.json",
                          lambda run_dir, model_class=model_class: score_run(model_class, setup, run_dir)) for model_class in group]
        rows += [seed_rows(model_class, f"{model_class.name}, continuing held-out clips", "continuation", "continued.json",
                           lambda run_dir: score_continuation(setup, run_dir)) for model_class in filter(continues_from_nothing, group)]
        for model_class in group:
            if model_class.has_round_trip():
                run_dir = work / data / model_class.name / "seed_0"
                budget = {**setup.budget, "settings": run_settings(model_class, plan)}
                scores = _cached_json(run_dir / "ceiling.json", budget, lambda: score_ceiling(setup, run_dir))
                inversion = " → Griffin-Lim 32" if model_class.output == "log-mel" else ""  # a model that makes audio plays it itself
                rows.append({"name": f"real music → {model_class.name}'s representation (seed 0){inversion}",
                             "kind": "ceiling", "family": model_class.family, "seeds": 1, "scores": scores})
        for name, (make, round_trip) in _reference_sets(setup, group).items():
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")

            def score_reference():
                clips = make(setup.real)
                excerpts = make(setup.real_excerpts) if setup.n_excerpts else None
                return setup.score(clips, setup.folder / "references" / f"{slug}.wav", excerpts,
                                   setup.real_excerpts if round_trip else None)

            scores = _cached_json(setup.folder / "references" / f"{slug}.json", setup.budget, score_reference)
            rows.append({"name": name, "kind": "ceiling" if round_trip else "reference",
                         "family": "", "seeds": None, "scores": scores})
        results["datasets"][data] = {"n_clips": setup.n, "clip_seconds": setup.dataset.clip_samples / setup.dataset.sample_rate,
                                     "n_excerpts": setup.n_excerpts, "excerpt_seconds": musicality.EXCERPT_SECONDS, "rows": rows}
    results["seconds"] = round(time.perf_counter() - started, 1)
    log(f"[compare] done in {results['seconds'] / 60:.1f} min")
    return results
