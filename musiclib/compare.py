"""`musiclib compare`: one table of what each trained run achieves, scored the same way for all.

Every run is evaluated afresh with the same budget (:func:`musiclib.runs.evaluate`: the same number of
generated clips, the same training reference and held-out clips, Griffin-Lim for spectrograms), and the
table puts each model beside held-out real music (the target) and white noise (the floor) of its data.
``make results`` writes it to ``docs/results.md`` and into the README, so no number there is typed by hand.

Notebook: 05_data_pipeline.ipynb (the metrics).
"""
from __future__ import annotations

import datetime
import re
from pathlib import Path

from musiclib.utils import write_text_atomically

COLUMNS = (
    ("frechet_distance", "Fréchet ↓", "{:.0f}"),
    ("kernel_distance", "kernel distance ↓", "{:.2f}"),
    ("ndb_k", "NDB/K ↓", "{:.2f}"),
    ("memorization_ratio", "memorisation (≈ 1)", "{:.2f}"),
    ("rms", "RMS", "{:.3f}"),
)
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def score_runs(run_dirs, n_clips: int | None = None) -> list[dict]:
    """Evaluate each run; one row per run, then the real-music and noise rows of each dataset (once each).

    Returns:
        Rows ``{"name", "data", "steps", "n_clips", <metric>: value}``.
    """
    from musiclib import runs

    rows, references = [], {}
    for run_dir in run_dirs:
        run_config = runs.read_config(run_dir)
        scores = runs.evaluate(run_dir, n_clips=n_clips)
        history = runs.history(run_dir)
        data = Path(str(run_config.get("data", "?"))).name
        common = {"data": data, "n_clips": scores["n_clips"]}
        rows.append({"name": run_config["model"], "steps": history[-1]["step"] if history else 0, **common, **scores["generated"]})
        references.setdefault(data, [{"name": "held-out real music", "steps": None, **common, **scores["heldout_real"]},
                                     {"name": "white noise", "steps": None, **common, **scores["white_noise"]}])
    return rows + [row for pair in references.values() for row in pair]


def markdown(rows: list[dict], command: str) -> str:
    """The rows as a Markdown table, headed by the command that made it and the date."""
    header = ["model", "data", "steps", "clips"] + [title for _, title, _ in COLUMNS]
    lines = [f"Made by `{command}` on {datetime.date.today().isoformat()}. Each model is scored by `musiclib evaluate` "
             "against its own data's training clips, beside that data's held-out real music and white noise.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["name"], row["data"], "" if row["steps"] is None else str(row["steps"]), str(row["n_clips"])]
        cells += [fmt.format(row[key]) for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def write(run_dirs, out: str | Path, readme: str | Path | None = None, n_clips: int | None = None,
          command: str = "musiclib compare") -> str:
    """Score the runs, write the table to ``out`` (Markdown) and, if given, into ``readme``; return the table."""
    out = Path(out)
    if out.suffix != ".md":
        raise ValueError(f"--out {out}: the table is Markdown; give a file name ending in .md")
    if readme is not None:
        check_readme(readme)
    table = markdown(score_runs(run_dirs, n_clips), command)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, "# What the models achieve\n\n" + table)
    if readme is not None:
        replace_readme_block(readme, table)
    return table
