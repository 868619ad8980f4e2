"""`musiclib curves`: how long must I train? Each model's loss and scores against steps and minutes, measured.

Each registered model trains with its CLI recipe on its bundled set, stopping at evenly spaced
step counts; at each stop the run is scored by ``musiclib evaluate`` (the comparison table's
scores) and training resumes, exactly, to the next stop. Writes a Markdown page (one table per
model) and a figure beside it, never typed by hand.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from musiclib import models, musicality, report, runs
from musiclib.datasets import bundled
from musiclib.utils import fast_mode, get_device, write_text_atomically

SCORES = ("frechet_distance", "kernel_distance")
MUSICAL = musicality.MusicalScorer.KEYS
"""Recorded at each stop where the bundled set's recordings are long enough for excerpts (tables only)."""
TITLES = {column.key: column.title for column in report.COLUMNS}
PLAN = ("fast", "points", "until", "n_clips", "machine")
"""What makes two calls' curves comparable: a call on some models keeps the other models' curves measured the same way."""


LOSSES = {"train_loss": "training loss", "loss_generator": "generator's loss (adversarial)",
          "loss_reconstruction": "reconstruction loss"}


def loss_key(record: dict) -> str | None:
    """Which loss a history record reports: the training loss, else an adversarial model's generator loss."""
    return next((key for key in LOSSES if record.get(key) is not None), None)


def training_loss(record: dict) -> float | None:
    """The loss :func:`loss_key` names (``None`` if the record has none)."""
    key = loss_key(record)
    return None if key is None else float(record[key])


def model_curve(name: str, work: Path, points: int, n_clips: int, log: Callable[[str], None], until: float = 1.0) -> list[dict]:
    """One model's curve: ``points`` evenly spaced stops up to ``until`` times its recipe's steps, each trained, then scored."""
    model_class = models.get(name)
    recipe = model_class.Settings.recipe(fast_mode()).steps
    data = bundled.load(model_class.data).root
    run = work / name
    done = {point["step"]: point for point in (json.loads((work / f"{name}.json").read_text()) if (work / f"{name}.json").exists() else [])}
    curve = []
    for stop in sorted({max(1, round(recipe * until * k / points)) for k in range(1, points + 1)}):
        if stop in done and done[stop].get("n_clips") == n_clips:  # measured by an earlier call
            curve.append(done[stop])
            continue
        reached = runs.history(run)[-1]["step"] if (run / "history.json").exists() else 0
        if reached > stop:
            raise ValueError(f"{run}: trained to step {reached}, past the stop at step {stop} that was never scored; "
                             "give a new --work folder")
        runs.train(name, data, run, steps=stop, progress=False)
        scores = runs.evaluate(run, n_clips=n_clips)
        record = runs.history(run)[-1]
        curve.append({"step": stop, "minutes": runs.train_seconds(run) / 60, "loss": training_loss(record), "n_clips": n_clips,
                      **{key: scores["generated"].get(key) for key in (*SCORES, *MUSICAL)}})
        write_text_atomically(work / f"{name}.json", json.dumps(curve, indent=1) + "\n")
        log(f"{name}: step {stop} of {recipe}, {curve[-1]['minutes']:.2f} min, "
            + ", ".join(f"{key} {curve[-1][key]:.3g}" for key in SCORES if curve[-1][key] is not None))
    return curve


def machine() -> str:
    device = get_device()
    if device.type == "cuda":
        import torch

        return f"GPU {torch.cuda.get_device_name(device)}"
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
    return f"{platform.machine()} CPU, {threads} threads"


def figure(results: dict, path: Path) -> Path:
    """One row per model: the loss against steps, then each score against minutes."""
    import matplotlib.pyplot as plt

    names = list(results["models"])
    fig, axes = plt.subplots(len(names), 1 + len(SCORES), figsize=(12, 2.2 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        curve = results["models"][name]
        steps = [point["step"] for point in curve]
        minutes = [point["minutes"] for point in curve]
        losses = [point["loss"] for point in curve]
        if any(loss is not None for loss in losses):
            row[0].plot(steps, [np.nan if loss is None else loss for loss in losses], "o-")
        row[0].set(title=f"{name}: {LOSSES.get(results['losses'].get(name), 'loss')}", xlabel="steps")
        for ax, key in zip(row[1:], SCORES):
            ax.plot(minutes, [point[key] for point in curve], "o-", color="C1", label=name)
            real = results["heldout_real"].get(name, {}).get(key)
            if real is not None:
                ax.axhline(real, color="C2", linestyle="--", label="held-out real music")
            ax.set(title=f"{name}: {key.replace('_', ' ')} ↓", xlabel=f"minutes ({results['machine']})")
        row[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def markdown(results: dict, picture: str) -> str:
    lines = ["# Expected curves: how long must I train?", "",
             f"Made by `{results['command']}` ({results['machine']}, "
             f"{'fast' if results['fast'] else 'full'} recipes on the {'fast ' if results['fast'] else ''}bundled sets, "
             f"{results['n_clips']} clips scored per point, one seed). Each model trained with its CLI recipe, on to "
             f"{results['until']:g} times the recipe's steps, and was scored by `musiclib evaluate` at evenly spaced steps "
             "(training resumed exactly between them; a warm-up keeps its recipe length). Minutes are wall-clock "
             "training time on that machine, a model's upstream run (tokenizer, autoencoder) included, but not a run shared "
             "by every model built on it (the note models' transcriber, trained once per machine). Lower is better for both "
             "distances, higher for the musical measures (where measured); held-out real music and white noise score as in "
             "[the comparison table](results.md). Each model's date is under its name.", "",
             f"![loss and scores against steps and minutes]({picture})", ""]
    for name, curve in results["models"].items():
        real = results["heldout_real"].get(name, {})
        target = (f" Held-out real music scores Fréchet {real['frechet_distance']:.0f} and kernel {real['kernel_distance']:.2f} "
                  "(the dashed line)" if real else "")
        musical = [key for key in MUSICAL if any(point.get(key) is not None for point in curve)]
        if musical and all(real.get(key) is not None for key in musical):
            target += (", tonality / pulse / key " + " / ".join(f"{real[key]:.2f}" for key in musical)
                       + " (the music's excerpts; noise 0, the training music 1)")
        lines += [f"## {name}", "", f"Measured on {results['dates'].get(name, results['date'])}. "
                  f"Loss: {LOSSES.get(results['losses'].get(name), 'none')}.{target + '.' if target else ''}", "",
                  "| steps | minutes | loss | Fréchet ↓ | kernel ↓ |" + "".join(f" {TITLES[key]} ↑ |" for key in musical),
                  "|---|---|---|---|---|" + "---|" * len(musical)]
        for point in curve:
            loss = "" if point["loss"] is None else f"{point['loss']:.4g}"
            lines.append(f"| {point['step']} | {point['minutes']:.2f} | {loss} | {point['frechet_distance']:.0f} | {point['kernel_distance']:.2f} |"
                         + "".join(f" {point[key]:.2f} |" for key in musical))
        lines.append("")
    return "\n".join(lines)


def keep_other_models(results: dict, previous_path: Path) -> None:
    """Add to ``results`` the curves of models it lacks from the page written before, when that page measured them the
    same way (:data:`PLAN`), with their dates; models in registry order. The page's command is then the earlier one's
    (``--models`` re-measures some models of it)."""
    if not previous_path.exists():
        return
    previous = json.loads(previous_path.read_text())
    if any(previous.get(key) != results[key] for key in PLAN):
        return
    kept = [name for name in previous["models"] if name not in results["models"]]
    for name in kept:
        for key in ("models", "losses", "heldout_real"):
            results[key][name] = previous[key].get(name)
        results["dates"][name] = previous.get("dates", {}).get(name, previous["date"])
    if kept:
        results["command"] = previous["command"]
        order = {name: index for index, name in enumerate(models.names())}
        for key in ("models", "losses", "heldout_real", "dates"):
            results[key] = dict(sorted(results[key].items(), key=lambda item: order.get(item[0], len(order))))


def run(out: str | Path = "docs/curves.md", model_names: list[str] | None = None, points: int = 4, n_clips: int = 16,
        work: str | Path = "outputs/curves", command: str = "musiclib curves", log: Callable[[str], None] = print,
        until: float = 1.0) -> dict:
    """Measure every model's curve (or ``model_names``'), write ``out`` and its figure, and return the results.

    Each model trains on to ``until`` times its recipe's steps. The runs stay in ``work``; run it again to
    reuse them (a stop already reached is trained no further).
    """
    out, work = Path(out), Path(work)
    names = model_names or models.names()
    for name in names:
        models.get(name)  # an unknown name fails before any training
    today = datetime.date.today().isoformat()
    results = {"command": command, "date": today, "machine": machine(), "fast": fast_mode(), "points": points, "until": until,
               "n_clips": n_clips, "models": {}, "losses": {}, "heldout_real": {}, "dates": {}}
    for name in names:
        results["models"][name] = model_curve(name, work, points, n_clips, log, until)
        results["losses"][name] = loss_key(runs.history(work / name)[-1])
        results["dates"][name] = today
        # Real music's scores against the same training reference: any stop's eval.json holds them.
        heldout = json.loads((work / name / "eval.json").read_text())["heldout_real"]
        results["heldout_real"][name] = {key: heldout.get(key) for key in (*SCORES, *MUSICAL)}
    keep_other_models(results, out.with_suffix(".json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = figure(results, out.with_suffix(".png"))
    write_text_atomically(out.with_suffix(".json"), json.dumps(results, indent=1) + "\n")
    write_text_atomically(out, markdown(results, picture.name) + "\n")
    return results
