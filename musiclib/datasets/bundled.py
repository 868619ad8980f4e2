"""The bundled music, built offline on first use: Bach chorales and NSynth-like single notes.

Both are rendered by :mod:`musiclib.synth`, built into the per-user cache
(``$MUSICLIB_CACHE/datasets``, see :mod:`musiclib.cache`) with a manifest and checksums,
and rebuilt byte for byte from the same code.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from musiclib import synth
from musiclib.cache import cache_root
from musiclib.config import AudioConfig
from musiclib.datasets.prepare import assign_splits, write_recordings
from musiclib.datasets.store import AudioDataset, DatasetWriter
from musiclib.utils import fast_mode

# Chorales are played at a fixed tempo so that every rebuild is identical.
SECONDS_PER_QUARTER = 0.6
ENSEMBLES = (
    ("organ", "organ", "organ", "organ"),
    ("flute", "reed", "reed", "organ"),
    ("pluck", "pluck", "pluck", "pluck"),
    ("reed", "flute", "organ", "reed"),
)
NOTE_INSTRUMENTS = ("organ", "flute", "reed", "pluck")


def cache_dir() -> Path:
    """Where bundled datasets are built: ``datasets/`` in the per-user cache (:func:`musiclib.cache.cache_root`)."""
    return cache_root() / "datasets"


def chorale_sizes(fast: bool | None = None) -> dict:
    """How many chorales and how many seconds of each; fast mode uses a few minutes in all."""
    fast = fast_mode() if fast is None else fast
    return {"n_chorales": 12, "max_seconds": 16.0} if fast else {"n_chorales": 100, "max_seconds": None}


def chorale_paths(n: int) -> list[Path]:
    """Candidate files for the first ``n`` Bach chorales of music21's bundled corpus, in a fixed order.

    Alternative versions of one chorale (``bwv112.5`` and ``bwv112.5-sc``) are kept
    once, so the same music can never land in two splits. Some files lack SATB
    parts, so twice ``n`` candidates are returned.
    """
    from music21 import corpus

    unique = {}
    for path in sorted(corpus.getComposer("bach"), key=lambda p: p.name):
        unique.setdefault(path.stem.split("-")[0], path)
    return list(unique.values())[: n * 2]


def chorale_notes(path: Path) -> list[list[synth.Note]] | None:
    """Soprano, alto, tenor and bass note lists of one chorale, or ``None`` if it lacks those parts."""
    from music21 import corpus

    score = corpus.parse(path)
    voices = {}
    for part in score.parts:
        name = (part.partName or "").lower()
        for voice in ("soprano", "alto", "tenor", "bass"):
            if name.startswith(voice) and voice not in voices:
                voices[voice] = part
    if len(voices) < 4:
        return None
    parts = []
    for voice in ("soprano", "alto", "tenor", "bass"):
        notes = []
        for element in voices[voice].stripTies().flatten().notes:
            if element.isChord:
                continue
            onset = float(element.offset) * SECONDS_PER_QUARTER
            duration = float(element.quarterLength) * SECONDS_PER_QUARTER
            notes.append(synth.Note(onset, duration * 0.95, element.pitch.midi, 0.7 if voice == "soprano" else 0.55))
        parts.append(notes)
    return parts


def render_chorale(index: int, path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray | None:
    """Render one chorale, each voice with the instrument of ensemble ``index``; ``None`` if not SATB."""
    parts = chorale_notes(path)
    if parts is None:
        return None
    ensemble = ENSEMBLES[index % len(ENSEMBLES)]
    voices = [synth.render(notes, instrument, sample_rate, seed=index * 4 + v) for v, (notes, instrument) in enumerate(zip(parts, ensemble))]
    mix = np.zeros(max(len(v) for v in voices), dtype=np.float32)
    for voice in voices:
        mix[: len(voice)] += voice
    return mix[: int(max_seconds * sample_rate)] if max_seconds else mix


def build_chorales(out: str | Path, config: AudioConfig | None = None, fast: bool | None = None, clip_seconds: float = 1.0, progress: bool = True) -> AudioDataset:
    """Render Bach chorales (music21's corpus) with the synthesiser into a dataset with a fixed split."""
    config = config or AudioConfig()
    sizes = chorale_sizes(fast)
    rendered = []
    for index, path in enumerate(chorale_paths(sizes["n_chorales"])):
        if len(rendered) == sizes["n_chorales"]:
            break
        y = render_chorale(len(rendered), path, config.sample_rate, sizes["max_seconds"])
        if y is not None:
            rendered.append((path.stem, y))
    names = [name for name, _ in rendered]
    writer = DatasetWriter(out, config, clip_seconds, description="Bach chorales (music21 corpus) rendered by musiclib.synth")
    write_recordings(writer, rendered, names, assign_splits(names), progress=progress)
    return writer.finish(extra={"bundled": "chorales", "sizes": sizes, "chorales": names})


def note_grid(fast: bool | None = None) -> list[dict]:
    """The labels of the Notes set: pitch × instrument × velocity."""
    fast = fast_mode() if fast is None else fast
    pitches = range(48, 73, 2) if fast else range(48, 73)
    velocities = (0.5, 0.9) if fast else (0.4, 0.65, 0.9)
    return [
        {"pitch": int(p), "instrument": instrument, "instrument_id": NOTE_INSTRUMENTS.index(instrument), "velocity": float(v)}
        for p, instrument, v in itertools.product(pitches, NOTE_INSTRUMENTS, velocities)
    ]


def note_split(labels: dict, fast: bool | None = None) -> str:
    """The split of a note: by its (pitch, instrument) pair, so that held-out notes are unseen.

    Every velocity of a pair goes to the same split, so no held-out note is a training note played
    louder or softer. The pairs on two diagonals of the pitch × instrument grid are held out
    (``(pitch index + instrument index) % 10`` is 0 for val, 5 for test), which keeps every pitch
    and every instrument in training: a conditional model is asked for combinations it never heard.
    """
    fast = fast_mode() if fast is None else fast
    pitches = sorted({note["pitch"] for note in note_grid(fast)})
    diagonal = (pitches.index(labels["pitch"]) + NOTE_INSTRUMENTS.index(labels["instrument"])) % 10
    return {0: "val", 5: "test"}.get(diagonal, "train")


def build_notes(out: str | Path, config: AudioConfig | None = None, fast: bool | None = None, clip_seconds: float = 1.0, progress: bool = True) -> AudioDataset:
    """An NSynth-like set of single notes (one per clip) labelled by pitch, instrument and velocity, split by :func:`note_split`."""
    config = config or AudioConfig()
    grid = note_grid(fast)
    split_of = [note_split(labels, fast) for labels in grid]
    writer = DatasetWriter(out, config, clip_seconds, description="single synthesised notes labelled by pitch, instrument, velocity")
    sr = config.sample_rate
    for i, labels in enumerate(grid):
        note = synth.Note(0.0, 0.75 * clip_seconds, labels["pitch"], labels["velocity"])
        y = synth.render([note], labels["instrument"], sr, seed=i, seconds=clip_seconds)
        writer.add(str(split_of[i]), y[None, :], f"note_{i:04d}", labels=[labels])
    return writer.finish(extra={"bundled": "notes", "instruments": list(NOTE_INSTRUMENTS), "split_by": "pitch-instrument pair"})


# Raised whenever a set's contents or splits change, so that a cache built by an older musiclib is not reused.
BUILD_VERSIONS = {"chorales": 1, "notes": 2}


def _cached(name: str, builder, fast: bool | None, config: AudioConfig | None) -> AudioDataset:
    fast = fast_mode() if fast is None else fast
    config = config or AudioConfig()
    root = cache_dir() / f"{name}-v{BUILD_VERSIONS[name]}-{'fast' if fast else 'full'}-{config.sample_rate}"
    if (root / "manifest.json").exists():
        dataset = AudioDataset(root)
        if dataset.config == config:
            return dataset
        raise ValueError(f"{root}: built with a different AudioConfig; delete the folder to rebuild it.")
    return builder(root, config=config, fast=fast)


def chorales(fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """The bundled chorales dataset, built into the cache on first use."""
    return _cached("chorales", build_chorales, fast, config)


def notes(fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """The bundled Notes dataset, built into the cache on first use."""
    return _cached("notes", build_notes, fast, config)
