"""Exercises of notebook 14, notes as the latent.

Notebook: 14_notes.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(tokens: np.ndarray, semitones: int, first_pitch: int, first_duration: int) -> np.ndarray:
    """Warm-up. The token sequence transposed by ``semitones``: every pitch token (``first_pitch <= token <
    first_duration``) moved by that many, every other token kept."""
    tokens = np.asarray(tokens).copy()
    pitches = (tokens >= first_pitch) & (tokens < first_duration)
    tokens[pitches] += semitones
    return tokens


def exercise_2(reference_onsets: np.ndarray, estimated_onsets: np.ndarray, tolerance: float = 0.05) -> tuple[float, float, float]:
    """Core. Precision, recall and F1 of estimated notes against reference notes, each a ``(n, 2)`` array of
    ``(MIDI pitch, onset in seconds)``: a match is one reference and one estimate of the same pitch whose onsets differ by
    at most ``tolerance``, each note in at most one match, as many matches as possible (the notes of one pitch,
    taken in time order, matched greedily to the earliest unmatched partner in reach, which is optimal in one dimension)."""
    reference, estimated = np.asarray(reference_onsets, float).reshape(-1, 2), np.asarray(estimated_onsets, float).reshape(-1, 2)
    matches = 0
    for pitch in set(reference[:, 0]) | set(estimated[:, 0]):
        ref = np.sort(reference[reference[:, 0] == pitch, 1])
        est = np.sort(estimated[estimated[:, 0] == pitch, 1])
        i = j = 0
        while i < len(ref) and j < len(est):
            if abs(ref[i] - est[j]) <= tolerance:
                matches, i, j = matches + 1, i + 1, j + 1
            elif est[j] < ref[i]:
                j += 1
            else:
                i += 1
    precision = matches / len(estimated) if len(estimated) else 0.0
    recall = matches / len(reference) if len(reference) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def exercise_3(sequence: np.ndarray, reference: np.ndarray) -> int:
    """Stretch. The longest run of consecutive rows of ``sequence`` ``(n, 3)`` that occurs, row for row, somewhere in
    ``reference`` ``(m, 3)`` (the longest copied run of notes; 0 when no row occurs)."""
    sequence, reference = np.asarray(sequence), np.asarray(reference)
    best = 0
    # previous[j]: the length of the common run ending at sequence row i - 1 and reference row j - 1
    previous = np.zeros(len(reference) + 1, int)
    for i in range(len(sequence)):
        current = np.zeros_like(previous)
        for j in range(len(reference)):
            if np.array_equal(sequence[i], reference[j]):
                current[j + 1] = previous[j] + 1
        best = max(best, int(current.max()))
        previous = current
    return best


def check_1(answer) -> bool:
    from musiclib import note_events

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, note_events.VOCABULARY, 40)
    return check(answer, exercise_1, [(tokens, 3, note_events.PITCH, note_events.DURATION),
                                      (tokens, -2, note_events.PITCH, note_events.DURATION)])


def check_2(answer) -> bool:
    reference = np.array([[60, 0.0], [64, 0.0], [67, 0.5], [60, 1.0], [60, 1.04]])
    estimated = np.array([[60, 0.02], [64, 0.07], [67, 0.49], [60, 1.03], [72, 1.0]])
    return check(answer, exercise_2, [(reference, estimated), (reference, reference), (reference, estimated[:0])])


def check_3(answer) -> bool:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 3, (40, 3))
    copied = np.concatenate([rng.integers(5, 8, (3, 3)), reference[10:16], rng.integers(5, 8, (2, 3))])
    return check(answer, exercise_3, [(copied, reference), (rng.integers(5, 8, (6, 3)), reference)])
