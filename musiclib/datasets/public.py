"""Loaders for local copies of public datasets. Nothing is downloaded: point them at a folder you have.

- NSynth (Engel et al., 2017): ``nsynth-{train,valid,test}/examples.json`` and
  ``nsynth-*/audio/<note_str>.wav``; each entry of ``examples.json`` has
  ``pitch``, ``velocity``, ``instrument_family_str``, ``instrument_source_str``, ``sample_rate``.
- MAESTRO (Hawthorne et al., 2019): ``maestro-v*.csv`` (or ``.json``) with
  ``canonical_composer``, ``canonical_title``, ``split``, ``year``, ``midi_filename``,
  ``audio_filename``, ``duration``; audio paths are relative to the root.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from musiclib import audio
from musiclib.config import AudioConfig
from musiclib.datasets.prepare import write_recordings
from musiclib.datasets.store import AudioDataset, DatasetError, DatasetWriter

NSYNTH_SPLITS = {"train": "nsynth-train", "val": "nsynth-valid", "test": "nsynth-test"}
MAESTRO_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def nsynth_examples(root: str | Path, split: str = "train") -> list[dict]:
    """The ``examples.json`` entries of one split, each with its wav path under ``"path"``."""
    folder = Path(root) / NSYNTH_SPLITS[split]
    index = folder / "examples.json"
    if not index.exists():
        raise DatasetError(f"{index}: not found. Point to the folder that holds {', '.join(NSYNTH_SPLITS.values())} (unpacked NSynth).")
    entries = json.loads(index.read_text())
    return [{"note_str": key, "path": folder / "audio" / f"{key}.wav", **value} for key, value in sorted(entries.items())]


def prepare_nsynth(root: str | Path, out: str | Path, config: AudioConfig | None = None, clip_seconds: float = 1.0,
                   families: list[str] | None = None, limit: int | None = None) -> AudioDataset:
    """NSynth → a labelled musiclib dataset: the first ``clip_seconds`` of each note, NSynth's own splits.

    Args:
        families: Keep only these ``instrument_family_str`` values (e.g. ``["keyboard", "guitar"]``).
        limit: At most this many notes per split (handy for a quick look).
    """
    config = config or AudioConfig()
    writer = DatasetWriter(out, config, clip_seconds, description=f"NSynth from {root}")
    family_ids: dict[str, int] = {}
    for split in NSYNTH_SPLITS:
        if not (Path(root) / NSYNTH_SPLITS[split]).exists():
            continue
        entries = [e for e in nsynth_examples(root, split) if families is None or e["instrument_family_str"] in families]
        for entry in entries[:limit]:
            try:
                y, _ = audio.load(entry["path"], sample_rate=config.sample_rate)
            except (audio.AudioFileError, FileNotFoundError) as err:
                writer.skip(entry["note_str"], str(err))
                continue
            clip = np.zeros(writer.clip_samples, dtype=np.float32)
            clip[: min(len(y), writer.clip_samples)] = y[: writer.clip_samples]
            family = entry["instrument_family_str"]
            labels = {"pitch": int(entry["pitch"]), "velocity": float(entry["velocity"]) / 127, "instrument": family,
                      "instrument_id": family_ids.setdefault(family, len(family_ids)), "note_str": entry["note_str"]}
            writer.add(split, clip[None], entry["note_str"], labels=[labels])
    return writer.finish(extra={"public": "nsynth", "instruments": sorted(family_ids, key=family_ids.get)})


def maestro_index(root: str | Path) -> list[dict]:
    """Rows of MAESTRO's metadata file (csv or json), with ``split`` mapped to train/val/test."""
    root = Path(root)
    candidates = sorted(root.glob("maestro-v*.csv")) or sorted(root.glob("maestro-v*.json"))
    if not candidates:
        raise DatasetError(f"{root}: no maestro-v*.csv or maestro-v*.json. Point to the unpacked MAESTRO folder.")
    path = candidates[-1]
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        table = json.loads(path.read_text())  # column → {row index → value}
        rows = [{col: table[col][i] for col in table} for i in sorted(next(iter(table.values())), key=int)]
    for row in rows:
        if row["split"] not in MAESTRO_SPLITS:
            raise DatasetError(f"{path}: unknown split {row['split']!r} for {row['audio_filename']}")
        row["split"] = MAESTRO_SPLITS[row["split"]]
        row["path"] = root / row["audio_filename"]
    return rows


def prepare_maestro(root: str | Path, out: str | Path, config: AudioConfig | None = None, clip_seconds: float = 1.0,
                    max_per_split: int | None = None) -> AudioDataset:
    """MAESTRO → a musiclib dataset with MAESTRO's official splits, streaming one recording at a time."""
    config = config or AudioConfig()
    rows = maestro_index(root)
    if max_per_split is not None:
        kept, seen = [], {}
        for row in rows:
            seen[row["split"]] = seen.get(row["split"], 0) + 1
            if seen[row["split"]] <= max_per_split:
                kept.append(row)
        rows = kept
    names = [row["audio_filename"] for row in rows]
    writer = DatasetWriter(out, config, clip_seconds, description=f"MAESTRO from {root}")
    write_recordings(writer, ((r["audio_filename"], r["path"]) for r in rows), names, {r["audio_filename"]: r["split"] for r in rows}, progress=False)
    return writer.finish(extra={"public": "maestro"})


__all__ = ["nsynth_examples", "prepare_nsynth", "maestro_index", "prepare_maestro"]
