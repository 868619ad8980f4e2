"""Exercises of notebook 02, the DFT and the FFT.

Notebook: 02_dft_and_fft.ipynb
"""
from __future__ import annotations

import math

import numpy as np

from musiclib.exercises import check


def exercise_1(spectrum: np.ndarray) -> np.ndarray:
    """The inverse DFT from its definition, ``x[n] = 1/N sum_k X[k] exp(+2 pi i k n / N)``, as one matrix product."""
    n = len(spectrum)
    k = np.arange(n)
    return np.exp(2j * np.pi * np.outer(k, k) / n) @ np.asarray(spectrum, dtype=np.complex128) / n


def exercise_2(sample_rate: float, separation_hz: float) -> int:
    """The fewest samples whose DFT bins are ``separation_hz`` apart or closer: ``ceil(f_s / Δf)``."""
    return int(math.ceil(sample_rate / separation_hz - 1e-9))


def exercise_3(n_fft: int, sample_rate: float) -> np.ndarray:
    """The frequency in Hz of each of ``rfft``'s ``n_fft // 2 + 1`` bins: ``k f_s / N``."""
    return np.arange(n_fft // 2 + 1) * sample_rate / n_fft


def check_1(answer) -> bool:
    rng = np.random.default_rng(2)
    return check(answer, exercise_1, [(np.fft.fft(rng.standard_normal(n)),) for n in (1, 8, 33)], atol=1e-9)


def check_2(answer) -> bool:
    return check(answer, exercise_2, [(22_050, 2), (22_050, 10.0), (44_100, 3)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(8, 8_000), (2048, 22_050), (1023, 44_100)])
