"""Exercises of notebook 11, the conditional VAE.

Notebook: 11_conditional_vae.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(labels: list[dict], pitches: list[int], instruments: list[str]) -> np.ndarray:
    """Condition vectors ``(n, len(pitches) + len(instruments))``: a one for the pitch, then a one for the instrument."""
    out = np.zeros((len(labels), len(pitches) + len(instruments)), np.float32)
    for i, label in enumerate(labels):
        out[i, pitches.index(int(label["pitch"]))] = 1
        out[i, len(pitches) + instruments.index(label["instrument"])] = 1
    return out


def exercise_2(midi: float) -> float:
    """A MIDI note number → its fundamental frequency in Hz, A4 = MIDI 69 = 440 Hz, twelve equal steps per octave."""
    return float(440.0 * 2 ** ((midi - 69) / 12))


def exercise_3(f0_hz: np.ndarray, target_midi: float, tolerance_cents: float = 50.0) -> float:
    """The share of pitch-track frames within ``tolerance_cents`` of ``target_midi`` (1 cent = 1/100 semitone)."""
    cents = 1200 * np.log2(np.asarray(f0_hz, dtype=np.float64) / (440.0 * 2 ** ((target_midi - 69) / 12)))
    return float(np.mean(np.abs(cents) <= tolerance_cents))


def check_1(answer) -> bool:
    pitches, instruments = [48, 55, 60, 67], ["flute", "organ", "string"]
    labels = [{"pitch": 60, "instrument": "organ"}, {"pitch": 48, "instrument": "string"}, {"pitch": 67, "instrument": "flute"}]
    return check(answer, exercise_1, [(labels, pitches, instruments), (labels[:1], pitches, instruments)])


def check_2(answer) -> bool:
    return check(answer, exercise_2, [(69,), (60,), (81.5,), (21,)], atol=1e-6)


def check_3(answer) -> bool:
    f0 = 261.6256 * 2 ** (np.array([-0.6, -0.4, 0.0, 0.2, 0.49, 0.51, 1.0]) / 12)
    return check(answer, exercise_3, [(f0, 60), (f0, 60, 25.0), (f0 * 2, 72)])
