"""Notes → tokens → notes: the event vocabulary a note transformer reads and writes.

Notes are placed on a **time grid** of step ``g`` seconds fitted to the music (:func:`fit_grid`), and each
note becomes two tokens after the time shift that reaches its onset::

    SHIFT_k   advance the clock by k grid steps (1 ≤ k ≤ MAX_SHIFT; longer gaps take several)
    PITCH_p   a note on key p (MIDI LOWEST_KEY + p) starts now
    DURATION_d   ... and lasts d grid steps (1 ≤ d ≤ MAX_DURATION)

Notes starting together follow each other from the lowest pitch up, with no shift between them. Why this
and not note-on / note-off events (Music Transformer)? A duration token ends its note by construction, so a
sampled sequence can never leave a note hanging or close one never opened, and a chord costs two tokens per
note and one shift. Why a grid? Transcribed onsets jitter by a frame or two; on a grid that fits the music
a chord's notes start together and a beat falls where the last one did, and the model need not learn the
jitter. Transposing music by ``k`` semitones adds ``k`` to every pitch token: the augmentation is exact.

Velocity is not modelled: every note is played at one loudness.

Notebook: 14_notes.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.synth import Note
from musiclib.transcription import LOWEST_KEY, N_KEYS

MAX_SHIFT = 16
MAX_DURATION = 32
SHIFT, PITCH, DURATION = 0, MAX_SHIFT, MAX_SHIFT + N_KEYS
"""The first token of each kind: ``SHIFT_k`` is ``SHIFT + k - 1``, ``PITCH_p`` is ``PITCH + p``, ``DURATION_d`` is ``DURATION + d - 1``."""
VOCABULARY = MAX_SHIFT + N_KEYS + MAX_DURATION
"""Tokens in the vocabulary (132)."""
RELEASE = 0.1
"""A decoded note is released this many grid steps before its duration ends, so that a repeated note is struck again."""
GRID_CANDIDATES = np.round(np.arange(1.0, 0.0699, -0.005), 3)
"""Grid steps :func:`fit_grid` tries, longest first (seconds)."""


def distinct_onsets(notes: list[Note], merge_seconds: float = 0.05) -> np.ndarray:
    """Sorted onset times (s), onsets closer than ``merge_seconds`` to the previous kept one merged into it."""
    kept = []
    for onset in sorted(n.onset for n in notes):
        if not kept or onset - kept[-1] >= merge_seconds:
            kept.append(onset)
    return np.array(kept)


def fit_grid(pieces: list[list[Note]], tolerance: float = 0.035, share: float = 0.9) -> float:
    """The longest grid step (s) of :data:`GRID_CANDIDATES` on which at least ``share`` of the gaps between distinct
    onsets lie within ``tolerance`` seconds of a whole number of steps (the shortest candidate when none does), then
    refined to the step that fits those gaps best (least squares over their whole numbers of steps).

    Music with a steady beat has a long such step (a chorale's quaver); music in free time gets a fine grid.
    """
    gaps = np.concatenate([np.diff(distinct_onsets(notes)) for notes in pieces if len(notes) > 1] or [np.zeros(0)])
    if len(gaps) == 0:
        raise ValueError("no two onsets to fit a time grid to: the music needs at least two notes")
    steps = gaps[None, :] / GRID_CANDIDATES[:, None]
    error = np.abs(steps - np.maximum(1, np.round(steps))) * GRID_CANDIDATES[:, None]
    fits = (error <= tolerance).mean(axis=1) >= share
    grid = float(GRID_CANDIDATES[np.argmax(fits)] if fits.any() else GRID_CANDIDATES[-1])
    for _ in range(3):  # refine to the least-squares step of the gaps that fit: a candidate off by a few ms drifts a beat in seconds
        multiples = np.maximum(1, np.round(gaps / grid))
        close = np.abs(gaps - multiples * grid) <= tolerance
        grid = float(np.sum(gaps[close] * multiples[close]) / np.sum(multiples[close] ** 2))
    return grid


def grid_phase(notes: list[Note], grid: float) -> float:
    """The offset (s, in ``[0, grid)``) of the grid that best fits the onsets: their circular mean modulo ``grid``."""
    onsets = distinct_onsets(notes)
    if len(onsets) == 0:
        return 0.0
    angle = np.angle(np.mean(np.exp(2j * np.pi * onsets / grid)))
    return float((angle / (2 * np.pi) * grid) % grid)


def encode(notes: list[Note], grid: float, phase: float = 0.0) -> np.ndarray:
    """``(L,)`` int64 tokens of ``notes``, their onsets and durations rounded to the grid (clock starting at ``phase``).

    Notes on keys outside the range are left out; durations are clipped to ``[1, MAX_DURATION]`` steps; two notes
    on one key and step are kept once.
    """
    placed = sorted({(max(0, int(round((n.onset - phase) / grid))), int(round(n.pitch)) - LOWEST_KEY,
                      int(np.clip(round(n.duration / grid + RELEASE), 1, MAX_DURATION))) for n in notes
                     if 0 <= int(round(n.pitch)) - LOWEST_KEY < N_KEYS})
    tokens, clock, previous = [], 0, None
    for step, key, duration in placed:
        if (step, key) == previous:
            continue
        previous = (step, key)
        gap = step - clock
        while gap > 0:
            shift = min(gap, MAX_SHIFT)
            tokens.append(SHIFT + shift - 1)
            gap -= shift
        clock = step
        tokens += [PITCH + key, DURATION + duration - 1]
    return np.array(tokens, np.int64)


def parse(tokens: np.ndarray) -> list[tuple[int, int, int]]:
    """``(onset step, key, duration in steps)`` of each note of a token sequence, in order.

    Sampled sequences need not follow the grammar: a pitch not followed by a duration, or a duration without a
    pitch before it, is skipped.
    """
    notes, clock, pending = [], 0, None
    for token in np.asarray(tokens).tolist():
        if SHIFT <= token < PITCH:
            clock += token - SHIFT + 1
            pending = None
        elif PITCH <= token < DURATION:
            pending = token - PITCH
        elif DURATION <= token < VOCABULARY and pending is not None:
            notes.append((clock, pending, token - DURATION + 1))
            pending = None
    return notes


def decode(tokens: np.ndarray, grid: float, phase: float = 0.0, velocity: float = 0.6) -> list[Note]:
    """The notes of a token sequence (:func:`parse`; the inverse of :func:`encode` for what it writes)."""
    return [Note(phase + step * grid, (duration - RELEASE) * grid, LOWEST_KEY + key, velocity) for step, key, duration in parse(tokens)]


def end_seconds(tokens: np.ndarray, grid: float, phase: float = 0.0) -> float:
    """The time (s) the clock of a token sequence has reached: where the next note may start."""
    tokens = np.asarray(tokens)
    shifts = tokens[(tokens >= SHIFT) & (tokens < PITCH)] - SHIFT + 1
    return phase + float(shifts.sum()) * grid


def transpose(tokens: np.ndarray, semitones: int) -> np.ndarray | None:
    """The same music ``semitones`` higher (pitch tokens moved), or ``None`` when a note would leave the range."""
    tokens = np.asarray(tokens).copy()
    pitches = (tokens >= PITCH) & (tokens < DURATION)
    moved = tokens[pitches] + semitones
    if len(moved) and (moved.min() < PITCH or moved.max() >= DURATION):
        return None
    tokens[pitches] = moved
    return tokens


def note_rows(notes: list[Note], grid: float, phase: float = 0.0) -> np.ndarray:
    """``(n, 3)`` int64 rows (grid steps since the previous onset, key, duration in steps), one per note in
    :func:`encode`'s order: the unit in which copying is counted (a run of rows that occurs verbatim elsewhere)."""
    return tokens_to_rows(encode(notes, grid, phase))


def tokens_to_rows(tokens: np.ndarray) -> np.ndarray:
    """:func:`note_rows` of a token sequence (grammar errors skipped, as :func:`parse` skips them)."""
    rows, previous = [], 0
    for step, key, duration in parse(tokens):
        rows.append((step - previous, key, duration))
        previous = step
    return np.array(rows, np.int64).reshape(-1, 3)
