"""Exercises of notebook 03, the STFT.

Notebook: 03_stft.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(sample_rate: float, n_fft: int) -> tuple[float, float]:
    """``(window duration in seconds, bin spacing in Hz)`` of an ``n_fft``-point STFT."""
    return n_fft / sample_rate, sample_rate / n_fft


def exercise_2(window: np.ndarray, hop: int, n_frames: int = 16) -> np.ndarray:
    """The overlap-add of ``window ** 2`` over ``n_frames`` frames ``hop`` apart (the denominator of the inverse STFT)."""
    window = np.asarray(window, dtype=np.float64)
    total = np.zeros(hop * (n_frames - 1) + len(window))
    for i in range(n_frames):
        total[i * hop : i * hop + len(window)] += window**2
    return total


def exercise_3(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frames ``(n_frames, frame_length)`` of ``x`` without padding: frame ``m`` starts at ``m * hop_length``."""
    n_frames = 1 + (len(x) - frame_length) // hop_length
    return np.stack([x[m * hop_length : m * hop_length + frame_length] for m in range(n_frames)])


def check_1(answer) -> bool:
    return check(answer, exercise_1, [(44_100, 2048), (22_050, 1024), (16_000, 512)])


def check_2(answer) -> bool:
    import scipy.signal

    return check(answer, exercise_2, [(scipy.signal.get_window("hann", 64), 32), (np.ones(64), 16),
                                      (scipy.signal.get_window("hann", 64), 16, 5)], atol=1e-9)


def check_3(answer) -> bool:
    x = np.arange(100.0)
    return check(answer, exercise_3, [(x, 16, 4), (x, 32, 32), (x, 100, 1)])
