"""Audio → notes: the features a transcriber hears, its targets, decoding its outputs into notes, and scoring them.

A *note* here is a :class:`~musiclib.synth.Note` (onset and duration in seconds, MIDI pitch,
velocity). A transcriber (:mod:`musiclib.models.transcriber`) predicts two piano rolls at the
analysis frame rate, as Onsets and Frames does (Hawthorne et al. 2018):

- the **frame** roll ``F[p, t]``: key ``p`` sounds during frame ``t``;
- the **onset** roll ``O[p, t]``: a note on key ``p`` starts in frame ``t``.

**Features.** A constant-Q transform with 3 bins per semitone from C1 (the grid of
:mod:`musiclib.musicality`: 84 keys, MIDI 24 to 107), in dB below the recording's loudest bin,
*harmonically stacked* (Bittner et al. 2022, basic-pitch): channel ``h`` holds the transform shifted
down by ``12 log2 h`` semitones, so that bin ``k`` of every channel lines up the ``h``-th harmonic of
the note whose fundamental is bin ``k``. A small convolution then sees a note's harmonics side by
side, and the same weights serve every key.

**Decoding.** A note starts at a local peak of ``O[p, ·]`` above ``onset_threshold``, lasts while
``F[p, ·]`` stays above ``frame_threshold`` (and until the next onset on the same key), and is kept if
at least ``min_frames`` long.

**Scoring** (``mir_eval``): note F1 with onsets within 50 ms (offsets ignored), note F1 with offsets
too (within 20 % of the note's length or 50 ms), and frame F1 of the rolls.

Notebook: 14_notes.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib import musicality
from musiclib.synth import Note

HOP = musicality.HOP
"""Samples between frames (23 ms at 22.05 kHz): the rolls' time step."""
BINS_PER_SEMITONE = musicality.BINS_PER_SEMITONE
LOWEST_KEY = 24
"""MIDI pitch of the rolls' first key (C1, the constant-Q transform's lowest bin)."""
N_KEYS = 12 * musicality.N_OCTAVES
"""Keys of the rolls: 84, C1 (MIDI 24) to B7 (MIDI 107)."""
HARMONICS = (1, 2, 3, 4, 5)
"""The harmonics stacked as input channels."""
FLOOR_DB = 80.0
"""Bins more than this below the loudest bin read as silence (0 after scaling)."""
QUIETEST_REFERENCE = 0.025
"""The least the loudest bin is taken to be: the transform's peak for a sine at -60 dBFS (a full-scale sine peaks at
about 25). A recording quieter than that is not scaled up, so silence reads as silence instead of as loud noise."""


def frames_per_second(sample_rate: int) -> float:
    return sample_rate / HOP


def log_cqt(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(N_KEYS * 3, frames)`` float32: a constant-Q magnitude in dB below its loudest bin (at least
    :data:`QUIETEST_REFERENCE`), scaled to [0, 1]."""
    import librosa

    cqt = np.abs(librosa.cqt(np.asarray(y, np.float32), sr=sample_rate, hop_length=HOP, fmin=musicality.FMIN_HZ,
                             n_bins=N_KEYS * BINS_PER_SEMITONE, bins_per_octave=12 * BINS_PER_SEMITONE))
    db = 20.0 * np.log10(np.maximum(cqt, 1e-12) / max(float(cqt.max()), QUIETEST_REFERENCE))
    return (np.clip(db, -FLOOR_DB, 0.0) / FLOOR_DB + 1.0).astype(np.float32)


def harmonic_stack(spectrogram: np.ndarray, harmonics=HARMONICS) -> np.ndarray:
    """``(len(harmonics), bins, frames)``: channel ``h`` is ``spectrogram`` shifted down by ``12 log2 h`` semitones
    (rounded to its bins), so bin ``k`` of channel ``h`` holds bin ``k + shift`` of the input (0 past its top)."""
    bins, frames = spectrogram.shape
    stacked = np.zeros((len(harmonics), bins, frames), np.float32)
    for channel, harmonic in enumerate(harmonics):
        shift = int(round(12 * BINS_PER_SEMITONE * np.log2(harmonic)))
        stacked[channel, : bins - shift] = spectrogram[shift:]
    return stacked


def features(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """What a transcriber hears: ``(len(HARMONICS), N_KEYS * 3, frames)`` float32 harmonic stack of :func:`log_cqt`."""
    return harmonic_stack(log_cqt(y, sample_rate))


def n_frames(n_samples: int) -> int:
    """Frames of a centred analysis of ``n_samples`` samples."""
    return 1 + n_samples // HOP


def rolls(notes: list[Note], frames: int, sample_rate: int, onset_frames: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(onsets, frames)`` rolls ``(N_KEYS, frames)`` float32 of the notes (keys outside the range are left out).

    A note from ``a`` to ``b`` seconds sounds in frames ``round(a fps)`` to ``round(b fps) - 1`` (at least one),
    and starts in frame ``round(a fps)`` (marked in that frame and the ``onset_frames - 1`` after it: a wider
    target for training, where an attack is spread over frames).
    """
    fps = frames_per_second(sample_rate)
    onset_roll, frame_roll = np.zeros((N_KEYS, frames), np.float32), np.zeros((N_KEYS, frames), np.float32)
    for note in notes:
        key = int(round(note.pitch)) - LOWEST_KEY
        start = int(round(note.onset * fps))
        if not 0 <= key < N_KEYS or start >= frames:
            continue
        end = max(start + 1, int(round((note.onset + note.duration) * fps)))
        onset_roll[key, start: start + onset_frames] = 1.0
        frame_roll[key, start:end] = 1.0
    return onset_roll, frame_roll


def decode(onset_probability: np.ndarray, frame_probability: np.ndarray, sample_rate: int, onset_threshold: float = 0.5,
           frame_threshold: float = 0.3, min_frames: int = 2, velocity: float = 0.6) -> list[Note]:
    """Notes from ``(N_KEYS, frames)`` onset and frame probabilities, sorted by onset then pitch.

    A note starts at each frame where the onset probability is at least ``onset_threshold`` and a local peak
    (at least its left neighbour, more than its right); it lasts while the frame probability is at least
    ``frame_threshold``, ending at the next onset on the same key at the latest; shorter than ``min_frames`` it is
    dropped. Every note gets ``velocity``.
    """
    fps = frames_per_second(sample_rate)
    onset_probability, frame_probability = np.asarray(onset_probability), np.asarray(frame_probability)
    keys, total = onset_probability.shape
    padded = np.pad(onset_probability, ((0, 0), (1, 1)))
    peaks = (onset_probability >= onset_threshold) & (onset_probability >= padded[:, :-2]) & (onset_probability > padded[:, 2:])
    notes = []
    for key in range(keys):
        starts = np.flatnonzero(peaks[key])
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else total
            end = start + 1
            while end < stop and frame_probability[key, end] >= frame_threshold:
                end += 1
            if end - start >= min_frames:
                notes.append(Note(start / fps, (end - start) / fps, LOWEST_KEY + key, velocity))
    return sorted(notes, key=lambda note: (note.onset, note.pitch))


def peak_picking(y: np.ndarray, sample_rate: int, threshold_db: float = 30.0, min_frames: int = 3) -> list[Note]:
    """The non-learned baseline: every local maximum over pitch of the semitone spectrogram within ``threshold_db``
    of the frame's loudest semitone (and of the recording's loudest) is a sounding key; runs of at least
    ``min_frames`` sounding frames are notes. It hears harmonics as notes and cannot split a repeated note."""
    semitones = musicality.semitone_spectrogram(y, sample_rate)[: N_KEYS]
    db = 20 * np.log10(np.maximum(semitones, 1e-12))
    padded = np.pad(db, ((1, 1), (0, 0)), constant_values=-np.inf)
    local_max = (db >= padded[:-2]) & (db > padded[2:])
    loud = (db >= db.max(axis=0, keepdims=True) - threshold_db) & (db >= db.max() - 2 * threshold_db)
    active = (local_max & loud).astype(np.float32)
    starts = np.diff(np.pad(active, ((0, 0), (1, 0))), axis=1) > 0
    return decode(starts.astype(np.float32), active, sample_rate, onset_threshold=0.5, frame_threshold=0.5, min_frames=min_frames)


def intervals_and_hz(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    """Notes as ``mir_eval`` takes them: ``(n, 2)`` onset and offset times (s; at least 1 ms long) and ``(n,)`` pitches (Hz)."""
    from musiclib.signals import midi_to_hz

    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    intervals = np.array([[n.onset, n.onset + max(n.duration, 1e-3)] for n in notes])
    return intervals, np.array([midi_to_hz(n.pitch) for n in notes], dtype=float)


def note_scores(reference: list[Note], estimate: list[Note], sample_rate: int, seconds: float) -> dict:
    """mir_eval's note precision, recall and F1 (onsets within 50 ms; ``with_offsets``: offsets too) and frame F1.

    Both lists are cut to notes starting before ``seconds``; the frame rolls cover ``seconds``.
    """
    import mir_eval

    reference = [n for n in reference if n.onset < seconds]
    estimate = [n for n in estimate if n.onset < seconds]
    ref_intervals, ref_hz = intervals_and_hz(reference)
    est_intervals, est_hz = intervals_and_hz(estimate)
    scores = {}
    for name, offset_ratio in (("note", None), ("note_with_offsets", 0.2)):
        if len(reference) and len(estimate):
            precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ref_intervals, ref_hz, est_intervals, est_hz, onset_tolerance=0.05, offset_ratio=offset_ratio)
        else:
            precision = recall = f1 = 0.0
        scores |= {f"{name}_precision": float(precision), f"{name}_recall": float(recall), f"{name}_f1": float(f1)}
    frames = n_frames(int(seconds * sample_rate))
    ref_roll, est_roll = rolls(reference, frames, sample_rate)[1] > 0, rolls(estimate, frames, sample_rate)[1] > 0
    hits = float((ref_roll & est_roll).sum())
    scores["frame_f1"] = 2 * hits / max(1.0, float(ref_roll.sum() + est_roll.sum()))
    return scores
