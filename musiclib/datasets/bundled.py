"""The bundled music, built offline on first use: Bach chorales and NSynth-like single notes.

``chorales`` (the default everywhere) are music21's Bach chorales played by sampled instruments
from a General MIDI SoundFont (:mod:`musiclib.soundfont`); ``chorales-synth`` are the same
chorales played by the additive synthesiser :mod:`musiclib.synth`, whose partials are exactly
known; ``notes`` are single synthesised notes. Each is built into the per-user cache
(``$MUSICLIB_CACHE/datasets``, see :mod:`musiclib.cache`) with a manifest and checksums,
verified when first opened in a process, and rebuilt byte for byte from the same code.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from musiclib import audio, soundfont, synth
from musiclib.cache import cache_root
from musiclib.config import AudioConfig
from musiclib.datasets.prepare import assign_splits, write_recordings
from musiclib.datasets.store import AudioDataset, DatasetError, DatasetWriter
from musiclib.utils import fast_mode

# The names `musiclib --data` accepts for the bundled sets.
SETS = ("chorales", "chorales-synth", "notes")
# Chorales are played at a fixed tempo so that every rebuild is identical.
SECONDS_PER_QUARTER = 0.6
# The synthesiser's ensembles, taken in turn by the chorales of `chorales-synth`.
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
    """How many chorales and how many seconds of each.

    Fast mode takes the first 8 s of 24 chorales (3.2 minutes): as much music as a dozen longer
    excerpts, but with two chorales each in val and test, so the held-out music of the sampled
    set is played by all four ensembles.
    """
    fast = fast_mode() if fast is None else fast
    return {"n_chorales": 24, "max_seconds": 8.0} if fast else {"n_chorales": 100, "max_seconds": None}


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


def satb_chorales(n: int) -> list[tuple[str, list[list[synth.Note]]]]:
    """The first ``n`` chorales with soprano, alto, tenor and bass parts: ``(name, parts)`` pairs."""
    chorales = []
    for path in chorale_paths(n):
        parts = chorale_notes(path)
        if parts is not None:
            chorales.append((path.stem, parts))
        if len(chorales) == n:
            break
    return chorales


def _mix(voices: list[np.ndarray], max_seconds: float | None, sample_rate: int) -> np.ndarray:
    mix = np.zeros(max(len(v) for v in voices), dtype=np.float32)
    for voice in voices:
        mix[: len(voice)] += voice
    return mix[: int(max_seconds * sample_rate)] if max_seconds else mix


def sampled_ensembles(splits: dict[str, str]) -> dict[str, str]:
    """The fixed rule that picks each chorale's instruments: :data:`musiclib.soundfont.ENSEMBLES` in turn.

    The chorales are taken split by split (test, then val, then train; by name within each), and
    the ensembles in turn over that whole order. Every split then holds the ensembles in equal
    shares (give or take one), and even the smallest held-out splits differ in timbre: with two
    test and two val chorales, the four are played by the four ensembles.
    """
    names = list(soundfont.ENSEMBLES)
    order = [name for split in ("test", "val", "train") for name in sorted(n for n, s in splits.items() if s == split)]
    return {name: names[rank % len(names)] for rank, name in enumerate(order)}


def build_chorales(out: str | Path, config: AudioConfig | None = None, fast: bool | None = None, clip_seconds: float = 1.0, progress: bool = True) -> AudioDataset:
    """Bach chorales (music21's corpus) played by sampled GM instruments, split by chorale.

    Each chorale is played by one ensemble of :data:`musiclib.soundfont.ENSEMBLES` (one GM
    program per voice), chosen by :func:`sampled_ensembles`.
    """
    try:
        import midirenderer  # noqa: F401
    except ImportError:
        raise DatasetError(f"the sampled chorales need the midirenderer package, which has no build for {platform.system()} on "
                           f"{platform.machine()}: use the synthesised ones instead (--data chorales-synth)") from None
    config = config or AudioConfig()
    sizes = chorale_sizes(fast)
    chorales = satb_chorales(sizes["n_chorales"])
    names = [name for name, _ in chorales]
    splits = assign_splits(names)
    ensemble = sampled_ensembles(splits)
    recordings = (
        (name, soundfont.render(parts, soundfont.ENSEMBLES[ensemble[name]], config.sample_rate, sizes["max_seconds"]))
        for name, parts in chorales
    )
    writer = DatasetWriter(out, config, clip_seconds, description="Bach chorales (music21 corpus) played by the General MIDI SoundFont TimGM6mb")
    with writer.cleanup_on_error():
        write_recordings(writer, recordings, names, splits, progress=progress)
    sources = {
        "renderer": f"midirenderer {metadata.version('midirenderer')}",
        "soundfont": f"TimGM6mb.sf2 from pretty_midi {metadata.version('pretty_midi')}",
        "ensembles": {name: dict(zip(("soprano", "alto", "tenor", "bass"), soundfont.ENSEMBLES[e])) | {"ensemble": e} for name, e in ensemble.items()},
    }
    return writer.finish(extra={"bundled": "chorales", "sizes": sizes, "chorales": names, **sources})


def build_chorales_synth(out: str | Path, config: AudioConfig | None = None, fast: bool | None = None, clip_seconds: float = 1.0, progress: bool = True) -> AudioDataset:
    """The same chorales rendered by :mod:`musiclib.synth` (exactly known partials), the ensembles of :data:`ENSEMBLES` in turn."""
    config = config or AudioConfig()
    sizes = chorale_sizes(fast)
    chorales = satb_chorales(sizes["n_chorales"])
    names = [name for name, _ in chorales]

    def rendered(index, parts):
        voices = [synth.render(notes, instrument, config.sample_rate, seed=index * 4 + v)
                  for v, (notes, instrument) in enumerate(zip(parts, ENSEMBLES[index % len(ENSEMBLES)]))]
        return _mix(voices, sizes["max_seconds"], config.sample_rate)

    recordings = ((name, rendered(index, parts)) for index, (name, parts) in enumerate(chorales))
    writer = DatasetWriter(out, config, clip_seconds, description="Bach chorales (music21 corpus) rendered by musiclib.synth")
    with writer.cleanup_on_error():
        write_recordings(writer, recordings, names, assign_splits(names), progress=progress)
    return writer.finish(extra={"bundled": "chorales-synth", "sizes": sizes, "chorales": names})


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
    with writer.cleanup_on_error():
        for i, labels in enumerate(grid):
            note = synth.Note(0.0, 0.75 * clip_seconds, labels["pitch"], labels["velocity"])
            y = synth.render([note], labels["instrument"], sr, seed=i, seconds=clip_seconds)
            writer.add(str(split_of[i]), y[None, :], f"note_{i:04d}", labels=[labels])
    return writer.finish(extra={"bundled": "notes", "instruments": list(NOTE_INSTRUMENTS), "split_by": "pitch-instrument pair"})


# Raised whenever a set's contents, splits or default AudioConfig change, so that a cache built by an older musiclib is not reused.
BUILD_VERSIONS = {"chorales": 3, "chorales-synth": 3, "notes": 3}
_VERIFIED: set[Path] = set()


@contextlib.contextmanager
def build_lock(root: Path):
    """Hold an exclusive lock on ``root``'s build (a file in the cache's ``locks/``) while it is built; POSIX only."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_path = cache_root() / "locks" / f"{root.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached(name: str, builder, fast: bool | None, config: AudioConfig | None) -> AudioDataset:
    fast = fast_mode() if fast is None else fast
    config = config or AudioConfig()
    root = cache_dir() / f"{name}-v{BUILD_VERSIONS[name]}-{'fast' if fast else 'full'}-{config.sample_rate}"
    if not (root / "manifest.json").exists():
        with build_lock(root):  # two processes (test workers, notebooks) may ask for an unbuilt set at once
            if not (root / "manifest.json").exists():
                builder(root, config=config, fast=fast)
    dataset = AudioDataset(root)
    if dataset.config != config:
        raise ValueError(f"{root}: built with a different AudioConfig; delete the folder to rebuild it.")
    if root not in _VERIFIED:
        dataset.verify()
        _VERIFIED.add(root)
    return dataset


def chorales(fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """The bundled chorales played by sampled instruments (the default set), built into the cache on first use."""
    return _cached("chorales", build_chorales, fast, config)


def chorales_synth(fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """The bundled chorales played by the synthesiser, built into the cache on first use."""
    return _cached("chorales-synth", build_chorales_synth, fast, config)


def notes(fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """The bundled Notes dataset, built into the cache on first use."""
    return _cached("notes", build_notes, fast, config)


def load(name: str, fast: bool | None = None, config: AudioConfig | None = None) -> AudioDataset:
    """A bundled set by its name in :data:`SETS`, built on first use."""
    builders = {"chorales": chorales, "chorales-synth": chorales_synth, "notes": notes}
    if name not in builders:
        raise ValueError(f"{name!r} is not a bundled set; choose one of {', '.join(SETS)}")
    return builders[name](fast=fast, config=config)


EXAMPLE_FORMATS = (".flac", ".ogg", ".wav")


def score_parts(path: Path, seconds_per_quarter: float = 0.5) -> list[list[synth.Note]]:
    """Every part of a music21 score as notes (a chord's notes all sound), at a fixed tempo."""
    from music21 import corpus

    parts = []
    for part in corpus.parse(path).parts:
        notes = []
        for element in part.stripTies().flatten().notes:
            onset = float(element.offset) * seconds_per_quarter
            duration = float(element.quarterLength) * seconds_per_quarter * 0.95
            notes.extend(synth.Note(onset, duration, pitch.midi, 0.6) for pitch in element.pitches)
        if notes:
            parts.append(notes)
    return parts


def write_example_recordings(out: str | Path, n_files: int = 16, seconds: float = 20.0, sample_rate: int = 44100) -> list[Path]:
    """Write a folder of recordings that none of the bundled sets contain, to try ``musiclib quickstart`` on.

    The openings of string-quartet movements by Mozart and Haydn (music21's corpus), played by the
    SoundFont's strings or piano in turn, as flac, ogg and wav files in one folder per composer, at
    44.1 kHz (``prepare`` resamples them). The tests use them as "your own music": music the models
    were never trained on.

    Returns:
        The files written, sorted.
    """
    from music21 import corpus

    out = Path(out)
    movements = [path for composer in ("mozart", "haydn") for path in sorted(corpus.getComposer(composer))
                 if "movement" in path.stem and "exposition" not in path.stem]
    if n_files > len(movements):
        raise ValueError(f"n_files: at most {len(movements)} movements are available, got {n_files}")
    written = []
    for k, path in enumerate(movements[:n_files]):
        parts = score_parts(path)
        ensemble = ("strings", "piano")[k % 2]
        programs = tuple(soundfont.ENSEMBLES[ensemble][i % 4] for i in range(len(parts)))
        y = soundfont.render(parts, programs, sample_rate, seconds=seconds)
        target = out / path.parent.parent.name / f"{path.parent.name}_{path.stem}{EXAMPLE_FORMATS[k % len(EXAMPLE_FORMATS)]}"
        written.append(audio.save(target, 0.9 * y / max(1e-9, float(np.abs(y).max())), sample_rate))
    return sorted(written)


def recording_notes(dataset: AudioDataset) -> dict[str, list[synth.Note]]:
    """The notes each recording of a bundled chorale set plays (all four voices together, cut where the recording
    is), by source name: the exact answer a transcriber learns from.

    Raises:
        DatasetError: the dataset is not a bundled chorale set (a folder of recordings has no known notes).
    """
    manifest = dataset.manifest
    if manifest.get("bundled") not in ("chorales", "chorales-synth"):
        raise DatasetError(f"{dataset.root}: its notes are not known, and a transcriber learns from music whose notes are; "
                           "train it on the bundled chorales (--data chorales)")
    seconds = manifest["sizes"]["max_seconds"]
    notes = {name: [note for note in piece if seconds is None or note.onset < seconds]
             for name, piece in _chorale_notes(manifest["sizes"]["n_chorales"]).items()}
    return {source["source"]: notes[source["source"]] for source in manifest["sources"]}


@functools.lru_cache(maxsize=2)
def _chorale_notes(n: int) -> dict[str, tuple[synth.Note, ...]]:
    """Every note of each of the first ``n`` chorales, sorted by onset then pitch: parsed once per process (music21
    takes seconds), since training, scoring and each held-out split ask again."""
    return {name: tuple(sorted((note for part in parts for note in part), key=lambda note: (note.onset, note.pitch)))
            for name, parts in satb_chorales(n)}
