"""Exercises of notebook 04, mel spectrograms and getting sound back.

Notebook: 04_mel_spectrograms.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(frequencies) -> np.ndarray:
    """Hz → mel with the HTK formula, ``m = 2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequencies, dtype=np.float64) / 700.0)


def exercise_2(mel_power: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """Mel power ``(n_mels, frames)`` → linear power ``(1 + n_fft/2, frames)``: the pseudo-inverse, clipped at 0."""
    return np.maximum(np.linalg.pinv(filterbank) @ mel_power, 0.0)


def exercise_3(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Spectral convergence of two magnitude spectrograms: ``||S - Ŝ||_F / ||S||_F``."""
    return float(np.linalg.norm(reference - estimate) / np.linalg.norm(reference))


def check_1(answer) -> bool:
    return check(answer, exercise_1, [(np.array([0.0, 700.0, 1000.0, 11_025.0]),), (440.0,)], atol=1e-6)


def check_2(answer) -> bool:
    from musiclib import dsp

    rng = np.random.default_rng(4)
    filterbank = dsp.mel_filterbank(sample_rate=22_050, n_fft=512, n_mels=40)
    return check(answer, exercise_2, [(filterbank @ rng.random((257, 5)), filterbank)], atol=1e-6)


def check_3(answer) -> bool:
    rng = np.random.default_rng(5)
    a = rng.random((65, 10))
    return check(answer, exercise_3, [(a, a), (a, a * 0.5), (a, rng.random((65, 10)))])
