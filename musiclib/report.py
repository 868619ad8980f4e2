"""The comparison's results as tables and pages: the columns, what each measures and misses, the full page
(``docs/results.md``), the README's short table, and the section on training with several processes.

:func:`musiclib.compare.run` makes the results; this module only writes them.

Notebook: 15_comparison.ipynb
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from musiclib.utils import write_text_atomically

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclasses.dataclass(frozen=True)
class Column:
    """One score on the table: its key in the scores, its heading, its format, and what it measures and misses."""

    key: str
    title: str
    fmt: str
    meaning: str
    spread: bool = True


COLUMNS = (
    Column("parameters", "params", "{:,.0f}", "How many numbers the model learns (a GAN counts its critic too).", spread=False),
    Column("train_seconds", "train s", "{:.3g}", "Wall-clock seconds of training on the machine that made the table.",
           spread=False),
    Column("generation_rtf", "RTF", "{:.3f}",
           "Seconds of computing per second of audio generated, with Griffin-Lim (below 1 is faster than real time).",
           spread=False),
    Column("frechet_distance", "Fréchet ↓", "{:.0f}",
           "Fréchet distance between Gaussians fitted to the MFCC + chroma frames of the clips and of the training "
           "reference. Sees timbre and pitch-class statistics; misses order in time, and is biased upwards for small sets."),
    Column("kernel_distance", "kernel ↓", "{:.2f}",
           "Unbiased squared MMD (KID's cubic kernel) on the same frames, with the widest 95 % bootstrap interval of "
           "the seeds in brackets. No small-set bias; like Fréchet, blind to order in time."),
    Column("ndb_k", "NDB/K ↓", "{:.2f}",
           "Share of ten k-means bins of the training clips' log-mel statistics whose share of generated clips differs "
           "significantly. Catches missing or over-produced kinds of sound (mode collapse); coarse."),
    Column("memorization_ratio", "memorisation ≈ 1", "{:.2f}",
           "Median distance to the nearest training clip, over that of new real music. Near 0: copies; near 1: as new "
           "as real music; above 1: further from the training clips than music is (noise scores high too)."),
    Column("rms", "RMS", "{:.3f}", "Loudness: root mean square of the samples (the music's own is the target)."),
    Column("silent_share", "silent", "{:.0%}", "Share of frames below -60 dBFS. Catches collapse to silence and gaps."),
    Column("key_clarity", "key clarity", "{:.2f}",
           "Best correlation of a clip's mean chroma with the 24 Krumhansl-Kessler key profiles, averaged. Tonal "
           "music scores higher than noise; a clip stuck on one chord scores high too."),
    Column("frame_tonality", "tonality", "{:.2f}",
           "Frame tonality on excerpts of a few seconds: one minus the entropy of each frame's chroma (constant-Q, 3 bins "
           "per semitone), scaled so that the training music is 1 and pink noise 0. Hears notes in each frame; random "
           "notes and a held chord score as high as music."),
    Column("pulse_clarity", "pulse", "{:.2f}",
           "Pulse clarity: the highest autocorrelation of the onset envelope at a beat period (0.25-1.5 s), same scale. "
           "Hears a steady beat; a metronome scores as high as music, a held chord as low as noise, and the seams of "
           "images glued side by side every 0.74 s count as a beat."),
    Column("key_clarity_windows", "key, 3-s windows", "{:.2f}",
           "Key clarity over half-overlapping 3-s windows (Krumhansl-Kessler, constant-Q chroma), same scale. Hears a "
           "key that holds for seconds; random notes score low, one held chord high: read it with the pulse."),
    Column("pitch_agreement", "pitch agreement", "{:.3f}",
           "Round trips only: cosine similarity of the semitone spectra of the music that went in and what came out, "
           "frame by frame (1: the same notes). Misses timbre beyond the semitone grid."),
    Column("onset_agreement", "onset F", "{:.2f}",
           "Round trips only: F-measure of the detected onsets against the music's, within 50 ms (mir_eval). "
           "Misses pitch."),
    Column("frechet_distance_vocoder", "Fréchet, vocoder ↓", "{:.0f}",
           "The Fréchet distance again, with the registered vocoder instead of Griffin-Lim as the inverter."),
    Column("pitch_accuracy", "pitch accuracy", "{:.0%}",
           "Conditional models: share of the voiced frames of every pitch and instrument asked for that lie within 50 "
           "cents of the pitch asked for (pYIN). Says nothing of the timbre asked for."),
    Column("pitch_accuracy_unheard", "pitch acc., unheard pairs", "{:.0%}",
           "The same, for the pitch-instrument pairs the model never heard in training: does the condition generalise?"),
)
README_COLUMNS = ("frechet_distance", "kernel_distance", "memorization_ratio", "frame_tonality", "pulse_clarity",
                  "key_clarity_windows", "train_seconds")



def _cell(column: Column, score) -> str:
    if score is None:
        return ""
    if isinstance(score, dict):
        text = column.fmt.format(score["mean"])
        return text + (f" ± {column.fmt.format(score['sd'])}" if score["n"] > 1 and column.spread else "")
    return column.fmt.format(score)


def markdown(results: dict, command: str) -> str:
    """The results as Markdown: per data set, one row per model (mean ± sd over seeds) and per reference."""
    seeds = results["plan"]["seeds"]
    spread = f"mean ± standard deviation over {seeds} training seeds" if seeds > 1 else "one training seed each"
    reused = results.get("reused_runs", 0)
    reuse = f" (reusing {reused} of its {results['runs']} trained runs from earlier calls)" if reused else ""
    lines = [f"Made by `{command}` on {results['date']} in {results['seconds'] / 60:.0f} min{reuse}. Models: {spread}; every row "
             "scores the same number of clips of the same length against the same training reference."]
    for data, table in results["datasets"].items():
        heading = f"**{data}** ({table['n_clips']} clips of {table['clip_seconds']:g} s per row"
        if table.get("n_excerpts"):
            heading += f"; the musical measures on {table['n_excerpts']} excerpts of {table['excerpt_seconds']:g} s"
        lines += ["", heading + ")", ""] + _table([row for row in table["rows"] if row["kind"] != "ceiling"])
        ceilings = [row for row in table["rows"] if row["kind"] == "ceiling" or row["name"] == "held-out real music"]
        if len(ceilings) > 1:
            lines += ["", f"**{data}: the ceiling table.** Held-out music through each representation and back: no model "
                      "that generates in a representation can sound better than its round trip.", ""] + _table(ceilings)
    return "\n".join(lines) + "\n"


def _table(rows: list[dict]) -> list[str]:
    shown = [c for c in COLUMNS if any(row["scores"].get(c.key) is not None for row in rows)]
    header = ["", "family"] + [column.title for column in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["name"], row["family"]]
        for column in shown:
            cell = _cell(column, row["scores"].get(column.key))
            interval = row["scores"].get("kernel_distance_interval")
            if column.key == "kernel_distance" and interval:
                cell += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def short_markdown(results: dict, command: str, references=("held-out real music", "white noise")) -> str:
    """The README's table: every model of every data set in one table, a few columns, and two reference rows per set."""
    shown = [column for column in COLUMNS if column.key in README_COLUMNS]
    header = ["", "data", "family"] + [column.title for column in shown]
    lines = [f"Made by `{command}` on {results['date']}: mean ± standard deviation over {results['plan']['seeds']} "
             "training seeds.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [(data, row) for data, table in results["datasets"].items() for row in table["rows"] if row["kind"] == "model"]
    rows += [(data, row) for data, table in results["datasets"].items() for row in table["rows"] if row["name"] in references]
    for data, row in rows:
        lines.append("| " + " | ".join([row["name"], data, row["family"]] + [_cell(c, row["scores"].get(c.key)) for c in shown]) + " |")
    return "\n".join(lines) + "\n"


def column_notes() -> str:
    """What each column measures and what it misses, as a Markdown list."""
    return "\n".join(f"- **{column.title}**: {column.meaning}" for column in COLUMNS) + "\n"


def check_readme(readme: str | Path) -> str:
    """The README's text, once it is known to hold the results markers (checked before any work)."""
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block to fill; add the two markers where the table goes")
    return text


def replace_readme_block(readme: str | Path, table: str) -> None:
    """Put ``table`` between the README's results markers (which must exist), written atomically."""
    updated = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: f"{README_START}\n{table}{README_END}",
                     check_readme(readme), count=1, flags=re.S)
    write_text_atomically(readme, updated)


def check_outputs(out: str | Path, readme: str | Path | None) -> None:
    """Refuse a table path or README that cannot be written, before any training."""
    if Path(out).suffix != ".md":
        raise ValueError(f"--out {out}: the table is Markdown; give a file name ending in .md")
    if readme is not None:
        check_readme(readme)


def readme_block(results: dict, command: str, out: str | Path) -> str:
    """The README's short table, with a link to the full one at ``out``."""
    return short_markdown(results, command) + f"\nEvery column, with what it measures and misses: [{Path(out).name}]({Path(out).as_posix()}).\n"


def full_page(results: dict, command: str) -> str:
    """``docs/results.md``: the full table, what each column measures and misses, and (when measured) the speed of
    training with several processes."""
    page = (f"# What the models achieve\n\n{markdown(results, command)}\n## What each column measures, and what it misses\n\n"
            f"{column_notes()}")
    return page + (scaling_markdown(results["scaling"]) if results.get("scaling") else "")


def scaling_markdown(scaling: dict) -> str:
    """The section ``benchmarks/ddp_scaling.py`` measures: steps per second with one process and with several."""
    n = scaling["nproc"]
    lines = ["", "## Training with several processes", "",
             f"Made by `{scaling['command']}` on {scaling['date']} in {scaling['minutes']:g} min, on a machine with "
             f"{scaling['cores']} CPU cores: each model's fast recipe at its global batch, in one process (all cores' "
             f"threads) and in {n} (`--nproc {n}`: DistributedDataParallel over gloo, the cores shared out), for the "
             "same steps. Steps per second of the training loop alone.", "",
             f"| model | global batch | steps | 1 process | {n} processes | speed-up |", "|---|---|---|---|---|---|"]
    lines += [f"| {row['model']}{' ' + json.dumps(row['settings']) if row.get('settings') else ''} | {row['batch_size']} | {row['steps']} | {row['one']:.2f} | {row['several']:.2f} | "
              f"{row['several'] / row['one']:.2f}x |" for row in scaling["rows"]]
    return "\n".join(lines) + "\n"


def write(results: dict, out: str | Path, readme: str | Path | None = None, command: str = "musiclib compare") -> str:
    """Write the full page to ``out``, the raw results (with ``command``) beside it as ``.json``, and the README's short
    table (if asked); return the full table."""
    out = Path(out)
    check_outputs(out, readme)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.with_suffix(".json")
    if "scaling" not in results and previous.exists():  # measured by benchmarks/ddp_scaling.py, not by compare: kept
        scaling = json.loads(previous.read_text()).get("scaling")
        results = {**results, **({"scaling": scaling} if scaling else {})}
    write_text_atomically(out, full_page(results, command))
    write_text_atomically(out.with_suffix(".json"), json.dumps({**results, "command": command}, indent=1, default=float) + "\n")
    if readme is not None:
        replace_readme_block(readme, readme_block(results, command, out))
    return markdown(results, command)
