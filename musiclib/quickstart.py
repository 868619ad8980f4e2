"""`musiclib quickstart SRC OUT --minutes M`: from a folder of your recordings to new music and a page, in one command.

Five stages, each announced as it starts: prepare the folder into a dataset (unreadable files
are reported, as by ``musiclib prepare``), train the model the comparison table ranks best for a
CPU budget to the time left, score generated clips against your held-out clips beside your other
held-out music and noise, generate clips to listen to (new music and continuations of your
held-out music), and write ``OUT/index.html`` with players, log-mel pictures and the scores. Nothing is left behind
if a stage fails; ``OUT`` must not exist.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from musiclib import audio, baselines, budget, metrics, models, musicality, report, runs, training
from musiclib.config import AudioConfig
from musiclib.datasets import AudioDataset, DatasetError
from musiclib.datasets.prepare import find_audio_files, prepare_folder
from musiclib.demo import gallery_row, html_page, log_mel_picture
from musiclib.utils import get_device

MIN_TRAIN_SECONDS = 60.0
"""Training audio quickstart needs after the split (whole files go to validation and test)."""
MIN_HELDOUT_CLIPS = 8
"""Clips each of the validation and test splits needs: the scores compare sets, not single clips."""
SCORED_CLIPS = 32
"""At most this many generated clips are scored (and as many of your held-out clips)."""
PAGE_CLIPS = 3
PAGE_SECONDS = 4.0
FINISH_SHARE = 0.05
"""Share of the budget (at least :data:`FINISH_SECONDS`) kept for generating, scoring and the page."""
FINISH_SECONDS = 20.0
DISTANCES = ("frechet_distance", "kernel_distance", "ndb_k")
"""The table's distances (lower is closer) that the generated clips are compared with noise on."""
TABLE = Path(__file__).resolve().parents[1] / "docs" / "results.json"
"""The comparison table (``make results``) the model is picked from: in the repository this package was installed from."""


HELDOUT_MUSIC = "held-out real music"
"""The table's reference row whose musical scores a model aims for."""


def _ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, lowest value first: equal values share a rank (how many values are strictly lower)."""
    return {name: sum(other < value for other in values.values()) for name, value in values.items()}


def pick_model(minutes: float, table: str | Path = TABLE, fast: bool = True) -> str:
    """The model the comparison table ranks best among those whose fast recipe trains within the budget.

    Best: the lowest sum of ranks over the Fréchet and kernel distances and, where the table has them, the musical
    columns (tonality, pulse, key: each as its shortfall below held-out real music's score; level with or above the
    music, no shortfall), means over the table's seeds, among unconditional models that make music; ties go to the
    faster model. A model whose shared upstream run (the note transformer's transcriber) is not yet trained on this
    machine counts that run's training time too. A representation another model is built on (a tokenizer, a codec,
    the transcriber) is never picked: its own samples are drawn without any order, the floor of the model built on
    it, and the distances cannot hear that.

    Raises:
        ValueError: when there is no table, naming the fix.
    """
    table = Path(table)
    if not table.exists():
        raise ValueError(f"no comparison table at {table} to pick a model from (an install without the repository?); "
                         "name one with --model, e.g. --model vae")
    rows = json.loads(table.read_text())["datasets"]["chorales"]["rows"]
    seconds_of = {row["name"]: row["scores"]["train_seconds"]["mean"] for row in rows if row["kind"] == "model"}
    registered = set(models.names())
    built_on = {model.upstream.model.name for model in models.generative_models() if model.upstream is not None}
    candidates = {}
    for row in rows:
        if row["kind"] != "model" or row["name"] not in registered:  # a table older than the registry
            continue
        model_class = models.get(row["name"])
        if model_class.family in ("baseline", "vocoder") or "condition" in model_class.modes() or row["name"] in built_on:
            continue
        seconds = seconds_of[row["name"]]
        upstream = model_class.upstream
        if upstream is not None and upstream.data and not runs.shared_upstream_trained(model_class, fast):
            seconds += seconds_of.get(upstream.model.name, 0.0)
        if seconds <= 60 * minutes * (1 - FINISH_SHARE):
            candidates[row["name"]] = (row["scores"], seconds)
    if not candidates:
        raise ValueError(f"--minutes {minutes:g}: no model of the table trains its fast recipe in that time; give more minutes")

    music = next((row["scores"] for row in rows if row["name"] == HELDOUT_MUSIC), {})
    columns = {key: {name: scores[key]["mean"] for name, (scores, _) in candidates.items()} for key in DISTANCES[:2]}
    for key in musicality.MusicalScorer.KEYS:  # higher is more musical, held-out real music the aim
        if key in music and all(key in scores for scores, _ in candidates.values()):
            aim = music[key]["mean"] if isinstance(music[key], dict) else music[key]  # a reference row is measured once
            columns[key] = {name: max(0.0, 1 - scores[key]["mean"] / aim) for name, (scores, _) in candidates.items()}
    ranks = [_ranks(values) for values in columns.values()]
    return min(candidates, key=lambda name: (sum(rank[name] for rank in ranks), candidates[name][1]))


def _too_little(src, detail: str) -> DatasetError:
    return DatasetError(f"{src}: too little audio ({detail}); quickstart needs {MIN_TRAIN_SECONDS:.0f} s to train on and "
                        f"{MIN_HELDOUT_CLIPS} clips each in validation and test (about 2 minutes of audio, in 3 or more files). "
                        "Add recordings.")


def check_inputs(src: str | Path, out: str | Path) -> None:
    """Refuse, before any work: an output folder that exists, a source without audio files, or one whose
    readable files add up to clearly too little audio (read from their headers)."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out}: already exists; give quickstart a new folder (it writes the data, the run and the page there).")
    files, _ = find_audio_files(src)  # a missing or empty folder, or one without audio files, is one line
    seconds = 0.0
    for path in files:
        try:
            seconds += audio.read_info(path).duration
        except (OSError, ValueError):  # unreadable: prepare reports it
            continue
    if seconds < MIN_TRAIN_SECONDS + 2 * MIN_HELDOUT_CLIPS:
        raise _too_little(src, f"{seconds:.0f} s in {len(files)} file(s)")


def check_enough_audio(dataset: AudioDataset, src: str | Path) -> None:
    """Refuse a dataset too small to train on and to hold out a set of clips from."""
    counts = dataset.manifest["counts"]
    seconds = counts["train"] * dataset.clip_samples / dataset.sample_rate
    if seconds < MIN_TRAIN_SECONDS or min(counts["val"], counts["test"]) < MIN_HELDOUT_CLIPS:
        raise _too_little(src, f"{seconds:.0f} s to train on and {counts['val']}/{counts['test']} validation/test clips after the split")


def score_against_heldout(model: models.Model, dataset: AudioDataset, seed: int = 0) -> dict:
    """Set scores of generated clips, of your other held-out music and of noise, all against your held-out test clips.

    Returns:
        ``{"generated", "your_music", "white_noise"}`` → scores of :class:`musiclib.metrics.SetScorer`,
        plus ``"n_clips"``. The reference is the test split; "your music" is the validation split.
    """
    counts = dataset.manifest["counts"]
    n = min(SCORED_CLIPS, counts["test"], counts["val"])
    reference = runs.spread_clips(dataset, "test", n)
    own = runs.spread_clips(dataset, "val", n)
    scorer = metrics.SetScorer(reference, own, dataset.config)
    generated, _ = runs.scored_clips(model, dataset, n, seed)
    level = baselines.rms(runs.spread_clips(dataset, "train", 64))
    noise = baselines.white_noise_clips(n, dataset.clip_samples, level, seed=seed)
    scores = {"n_clips": n, "generated": scorer(generated), "your_music": scorer(own), "white_noise": scorer(noise)}
    musical, real_excerpts = runs.musical_scorer(dataset)
    if musical is not None:  # recordings long enough for excerpts: notes, a pulse and a key, your training music being 1
        made, _ = runs.scored_clips(model, dataset, runs.MUSICAL_EXCERPTS, seed, seconds=real_excerpts.shape[1] / dataset.sample_rate)
        scores["generated"].update(musical(made))
        scores["your_music"].update(musical(real_excerpts))
        scores["white_noise"].update(musical(baselines.white_noise_clips(len(real_excerpts), real_excerpts.shape[1], level, seed=seed)))
    return scores


def margins(scores: dict) -> dict:
    """``distance → noise's score − the generated clips' score`` (positive: closer to your music than noise)."""
    return {key: scores["white_noise"][key] - scores["generated"][key] for key in DISTANCES}


def _page_rows(out: Path, run: Path, model_class: type[models.Model], dataset: AudioDataset) -> list[dict]:
    config = dataset.config
    test = dataset.clips("test")
    per_item = max(1, int(round(PAGE_SECONDS * dataset.sample_rate / dataset.clip_samples)))
    own = [np.concatenate([np.asarray(test[(k * per_item + j) % len(test)]) for j in range(per_item)]) for k in range(PAGE_CLIPS)]
    rows = [{"name": "your music (held out)", "text": "Clips of your recordings the model never trained on: what it aims for.",
             "items": gallery_row(out, "your music", own, config)}]
    kinds = []
    if model_class.prime_seconds == 0 and "autonomous" in model_class.modes():
        kinds.append(("new music", "autonomous", f"{model_class.name} making music from nothing."))
    if "continue" in model_class.modes():
        kinds.append(("continuations", "continue" if model_class.prime_seconds == 0 else None,
                      f"{model_class.name} continuing held-out music: each file starts with your recording, then the model takes over."))
    for name, mode, text in kinds:
        items = []
        for k in range(PAGE_CLIPS):
            path = out / "gallery" / f"{name.replace(' ', '_')}_{k}.wav"
            path, prime_seconds = runs.generate(run, PAGE_SECONDS, path, seed=k, mode=mode)
            picture = log_mel_picture(audio.load(path)[0], config, path.with_suffix(".png"), f"{name}, clip {k + 1}")
            items.append({"audio": f"gallery/{path.name}", "picture": f"gallery/{picture.name}"})
        rows.append({"name": f"{model_class.name}: {name}", "text": text, "items": items})
    noise = baselines.white_noise_clips(1, len(own[0]), baselines.rms(np.stack(own)), seed=0)
    rows.append({"name": "white noise", "text": "Noise at your music's loudness: what no model should sound like.",
                 "items": gallery_row(out, "white noise", list(noise), config)})
    return rows


def _scores_html(scores: dict) -> str:
    from html import escape

    shown = (*DISTANCES, "rms", "key_clarity", "frame_tonality", "pulse_clarity", "key_clarity_windows")
    columns = [column for column in report.COLUMNS if column.key in shown and column.key in scores["generated"]]
    head = "".join(f"<th>{escape(column.title)}</th>" for column in columns)
    names = {"generated": "generated", "your_music": "your other held-out music", "white_noise": "white noise"}
    body = "".join(f"<tr><td>{names[row]}</td>" + "".join(f"<td>{column.fmt.format(scores[row][column.key])}</td>" for column in columns)
                   + "</tr>" for row in names)
    notes = "".join(f"<li><b>{escape(column.title)}</b>: {escape(column.meaning)}</li>" for column in columns)
    return (f"<section><h2>Scores</h2><p>Each row's {scores['n_clips']} clips against {scores['n_clips']} of your held-out "
            f"test clips (the reference; lower distances are closer).</p><table><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><ul>{notes}</ul></section>")


def quickstart(src: str | Path, out: str | Path, minutes: float = 10.0, model: str | None = None, seed: int = 0,
               started: float | None = None, log: Callable[[str], None] = print) -> dict:
    """Prepare ``src``, train to the budget, generate, score and write ``out/index.html``; returns the summary.

    Args:
        src: A folder of recordings (any format ``musiclib prepare`` reads; nested folders too).
        out: A new folder: ``data/`` (the dataset), ``run/`` (the trained model), ``gallery/``, ``index.html``
            and ``summary.json``.
        minutes: The budget for the whole command; training gets what preparing leaves, less the time kept
            for the last stages (:data:`FINISH_SHARE`).
        model: A registered model (default: :func:`pick_model`).
        started: The :func:`musiclib.training.clock` time the budget counts from (default: now).

    Raises:
        ValueError, DatasetError: one line naming the input and the fix; ``out`` is then not left behind.
    """
    started = training.clock() if started is None else started
    out = Path(out)
    check_inputs(src, out)
    fast = get_device().type == "cpu"  # on a CPU, the fast recipe the table ranked; on a GPU, the full one
    name = model or pick_model(minutes, fast=fast)
    model_class = models.get(name)
    deadline = started + 60 * minutes
    try:
        log(f"[quickstart] 1/5 preparing {src} into {out / 'data'}")
        dataset = prepare_folder(src, out / "data", AudioConfig())
        skipped = dataset.manifest["skipped"]
        if skipped:
            log(f"[quickstart]     skipped {len(skipped)} unreadable file(s); reasons in {dataset.root / 'skipped.txt'}")
        check_enough_audio(dataset, src)
        counts = dataset.manifest["counts"]
        log(f"[quickstart]     {counts['train']} clips to train on, {counts['val']} + {counts['test']} held out")
        finish = max(FINISH_SECONDS, FINISH_SHARE * 60 * minutes)
        train_minutes = (deadline - finish - training.clock()) / 60
        if train_minutes <= 0:
            raise ValueError(f"--minutes {minutes:g}: preparing the data took the whole budget; give more minutes")
        log(f"[quickstart] 2/5 training {name} for {train_minutes:.1f} minutes into {out / 'run'}")
        run = runs.train(name, out / "data", out / "run", seed=seed, minutes=train_minutes, progress=True, fast=fast)
        session = budget.sessions(run)[-1]
        log(f"[quickstart]     {session['reached_step']} steps ({session['seconds_per_step']:.3f} s each)")
        log("[quickstart] 3/5 scoring generated clips against your held-out clips")
        _, trained, _, _ = runs.load(run)
        scores = score_against_heldout(trained, dataset, seed)
        margin = margins(scores)
        for key, value in margin.items():
            log(f"[quickstart]     {key}: generated {scores['generated'][key]:.3g}, noise {scores['white_noise'][key]:.3g} "
                f"(margin {value:+.3g}), your other music {scores['your_music'][key]:.3g}")
        log("[quickstart] 4/5 generating clips to listen to")
        rows = _page_rows(out, run, model_class, dataset)
        log("[quickstart] 5/5 writing the page")
        seconds = training.clock() - started
        intro = (f"<p>{model_class.name} trained for {session['reached_step']} steps on {counts['train']} "
                 f"{dataset.clip_samples / dataset.sample_rate:g}-second clips of your "
                 f"recordings ({seconds / 60:.1f} minutes for the whole command). Below: your held-out music, what the "
                 f"model made, and noise, each with its log-mel picture; then the scores.</p>")
        (out / "index.html").write_text(html_page(f"musiclib quickstart: {model_class.name} on your music", intro, rows, _scores_html(scores)))
        summary = {"model": name, "minutes": minutes, "seconds": round(training.clock() - started, 1), "steps": session["reached_step"],
                   "scores": scores, "margins": margin, "page": str(out / "index.html")}
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    log(f"[quickstart] done in {summary['seconds'] / 60:.1f} minutes: open {out / 'index.html'} in a browser to listen")
    return summary
