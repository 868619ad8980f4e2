"""`musiclib demo`: the whole course in one command, writing audio and pictures to a folder."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from musiclib import audio, dsp, features, signals
from musiclib.config import AudioConfig


def _save_figure(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def signal_path_demo(out: Path, config: AudioConfig) -> dict:
    """Sound → STFT → log-mel → back to sound with zero phase and with Griffin-Lim."""
    import matplotlib.pyplot as plt

    from musiclib import plot

    sr = config.sample_rate
    y = signals.chord(notes=(57, 61, 64, 69), seconds=2.0, sample_rate=sr)
    magnitude = features.magnitude(y, config)
    zero_phase = dsp.zero_phase_inversion(magnitude, hop_length=config.hop_length, length=len(y))
    griffin = features.magnitude_to_audio(magnitude, config, n_iter=32, length=len(y))
    from_mel = features.log_mel_to_audio(features.log_mel(y, config), config, n_iter=32, length=len(y))

    def convergence(sig):
        return dsp.spectral_convergence(magnitude, features.magnitude(sig, config))

    scores = {
        "zero_phase_spectral_convergence": convergence(zero_phase),
        "griffin_lim_32_spectral_convergence": convergence(griffin),
        "log_mel_griffin_lim_32_spectral_convergence": convergence(from_mel),
    }
    audio.save(out / "chord_original.wav", y, sr)
    audio.save(out / "chord_zero_phase.wav", audio.normalize_peak(zero_phase, 0.9), sr)
    audio.save(out / "chord_griffin_lim.wav", griffin, sr)
    audio.save(out / "chord_from_log_mel.wav", from_mel, sr)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    plot.waveform(y, sr, ax=axes[0, 0], title="chord: waveform")
    plot.spectrogram(dsp.amplitude_to_db(magnitude, ref=magnitude.max()), sr, config.hop_length, ax=axes[0, 1], title="|STFT| (dB)")
    plot.spectrogram(features.log_mel(y, config), sr, config.hop_length, ax=axes[1, 0], mel=True, title="log-mel", units="ln")
    names = ["zero phase", "Griffin-Lim 32", "log-mel → GL 32"]
    axes[1, 1].bar(names, [scores[k] for k in scores], color=["C3", "C2", "C0"])
    axes[1, 1].set(ylabel="spectral convergence (lower is better)", title="phase recovery")
    _save_figure(fig, out / "signal_path.png")
    return scores


GALLERY_CLIPS = 3
GALLERY_SECONDS = 3.0


def log_mel_picture(y: np.ndarray, config: AudioConfig, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    from musiclib import plot

    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    plot.spectrogram(features.log_mel(y, config), config.sample_rate, config.hop_length, ax=ax, mel=True, units="ln",
                     title=title, colorbar=False)
    return _save_figure(fig, path)


def gallery_row(out: Path, name: str, clips: list[np.ndarray], config: AudioConfig) -> list[dict]:
    """Write each clip as ``gallery/<name>_<k>.wav`` and its log-mel picture; return their relative paths."""
    folder = out / "gallery"
    items = []
    for k, y in enumerate(clips):
        stem = f"{name.replace(' ', '_')}_{k}"
        audio.save(folder / f"{stem}.wav", y, config.sample_rate)
        log_mel_picture(y, config, folder / f"{stem}.png", f"{name}, clip {k + 1}")
        items.append({"audio": f"gallery/{stem}.wav", "picture": f"gallery/{stem}.png"})
    return items


def gallery_demo(out: Path, steps: int | None = None, n_clips: int = 16) -> dict:
    """One tiny model per family (the registry's ``gallery`` models) on the fast chorales: trained, heard, scored.

    The models are trained and scored by :func:`musiclib.compare.run` with one seed at their fast
    configuration (``steps`` overrides the step count, for tests), in ``out/runs`` (emptied first: each
    demo trains from scratch, so nothing an older musiclib left there is resumed). Each then generates
    :data:`GALLERY_CLIPS` clips through ``musiclib generate``. Writes ``gallery/`` (audio and log-mel
    pictures), ``results.md`` (the comparison table, one seed) and ``index.html``.
    """
    from musiclib import baselines, compare, models, report, runs
    from musiclib.datasets import bundled

    chorales = bundled.chorales(fast=True)  # the set compare.run trains and scores the gallery on
    config = chorales.config
    heldout = np.asarray(chorales.clips("test"))
    seconds_per_clip = chorales.clip_samples / config.sample_rate
    reference = [np.concatenate(list(heldout[k * 3 : k * 3 + 3])) for k in range(GALLERY_CLIPS)]
    rows = [{"name": "held-out real music", "text": "Chorales the models never heard: what every model aims for.",
             "items": gallery_row(out, "held-out real music", reference, config)}]
    noise = baselines.white_noise_clips(GALLERY_CLIPS, len(reference[0]), baselines.rms(heldout), seed=0)
    rows.append({"name": "white noise", "text": "White noise at the music's loudness: what no model should sound like.",
                 "items": gallery_row(out, "white noise", list(noise), config)})
    gallery = models.gallery_models()
    shutil.rmtree(out / "runs", ignore_errors=True)
    plan = compare.ComparePlan(models=tuple(model_class.name for model_class in gallery), seeds=1, fast=True, n_clips=n_clips,
                               work=str(out / "runs"), vocoder=False, steps=steps)
    results = compare.run(plan, log=lambda line: print(f"[demo]   {line}", flush=True))
    for model_class in gallery:
        run = out / "runs" / model_class.data / model_class.name / "seed_0"
        items = []
        for k in range(GALLERY_CLIPS):  # through `musiclib generate`, so a sequence model's file starts with its prime
            path, _ = runs.generate(run, GALLERY_SECONDS, out / "gallery" / f"{model_class.name}_{k}.wav", seed=k)
            picture = log_mel_picture(audio.load(path)[0], config, path.with_suffix(".png"), f"{model_class.name}, clip {k + 1}")
            items.append({"audio": f"gallery/{path.name}", "picture": f"gallery/{picture.name}"})
        rows.append({"name": model_class.name, "text": model_class.gallery, "items": items})
    table = report.write(results, out / "results.md", command="musiclib demo (" + ", ".join(model_class.name for model_class in gallery) + ")")
    (out / "index.html").write_text(_gallery_page(rows, table, seconds_per_clip))
    return {"models": [model_class.name for model_class in gallery], "page": str(out / "index.html")}


def table_html(markdown: str) -> str:
    """The comparison's Markdown (tables and the lines between them) as HTML: each table an HTML table, each other
    line a paragraph."""
    from html import escape

    html, table = [], []

    def close_table():
        if table:
            cells = [[escape(c.strip()) for c in line.strip("|").split("|")] for line in table]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
            html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if "---" not in line:
                table.append(line)
            continue
        close_table()
        if line.strip():
            html.append(f"<p>{escape(line.replace('**', '').replace('`', ''))}</p>")
    close_table()
    return "".join(html)


def html_page(title: str, intro: str, rows: list[dict], closing: str) -> str:
    """A self-contained page (no network): a heading, ``intro`` (HTML), one section per row with its players and
    pictures (``{"name", "text", "items": [{"audio", "picture"}]}``), then ``closing`` (HTML)."""
    from html import escape

    sections = []
    for row in rows:
        figures = "".join(f'<figure><img src="{escape(item["picture"])}" alt="log-mel of {escape(row["name"])}">'
                          f'<audio controls preload="metadata" src="{escape(item["audio"])}"></audio></figure>'
                          for item in row["items"])
        sections.append(f'<section><h2>{escape(row["name"])}</h2><p>{escape(row["text"])}</p><div class="row">{figures}</div></section>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}}.row{{display:flex;gap:1em;flex-wrap:wrap}}
figure{{margin:0}}figure img{{display:block;width:380px}}audio{{width:380px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style>
</head><body>
<h1>{escape(title)}</h1>
{intro}
{"".join(sections)}
{closing}
</body></html>
"""


def _gallery_page(rows: list[dict], table: str, seconds_per_clip: float) -> str:
    """The demo's page: one row per model with players and pictures, and the table."""
    from html import escape

    from musiclib.report import COLUMNS

    caption, tables = (table.split("\n", 1) + [""])[:2]
    caption = caption.replace("`", "")
    notes = "".join(f"<li><b>{escape(column.title)}</b>: {escape(column.meaning)}</li>" for column in COLUMNS)
    intro = f"""<p>Each model was trained for a few minutes at most on a CPU, on {seconds_per_clip:g}-second clips of Bach chorales played by
sampled instruments. Below each model: three generated clips and their log-mel spectrograms, beside held-out real music
(the target) and white noise (the floor). Then one table scores every model the same way.</p>"""
    closing = f"""<section><h2>Scores</h2><p>{escape(caption)}</p>{table_html(tables)}
<p>One seed per model here; <code>make results</code> trains every registered model with three seeds. What each column
measures, and what it misses:</p><ul>{notes}</ul></section>"""
    return html_page("musiclib demo: one tiny model per family, trained on the bundled chorales", intro, rows, closing)


def run_demo(out: str | Path, config: AudioConfig | None = None, steps: int | None = None, n_clips: int = 16) -> dict:
    """Run every demo step, write ``summary.json`` and ``index.html`` (the gallery) and return the summary.

    ``steps`` and ``n_clips`` shrink the training and the scoring (tests); by default every gallery model
    trains at its fast configuration and is scored with ``musiclib evaluate``'s budget.
    """
    from musiclib.plot import use_headless_backend_if_needed

    use_headless_backend_if_needed()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or AudioConfig()
    summary = {"audio_config": config.to_dict(), "steps": {}}
    stages = [("signal_path", signal_path_demo),
              ("gallery", lambda out, config: gallery_demo(out, steps=steps, n_clips=n_clips))]
    for name, stage in stages:
        start = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        result = stage(out, config)
        summary["steps"][name] = {"seconds": round(time.perf_counter() - start, 2), **result}
        print(f"[demo] {name} done in {summary['steps'][name]['seconds']} s: {json.dumps(result, default=float)}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    files = sorted(p.name for p in out.iterdir())
    print(f"[demo] wrote {len(files)} files and folders to {out}: {', '.join(files)}")
    print(f"[demo] open {out / 'index.html'} in a browser to listen")
    return summary
