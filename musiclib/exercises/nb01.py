"""Exercises of notebook 01, sound and sampling.

Notebook: 01_sound_and_sampling.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(frequency: float, sample_rate: float) -> float:
    """The frequency (Hz) a sampled sine of ``frequency`` Hz is heard at: folded into ``[0, sample_rate / 2]``."""
    folded = frequency % sample_rate
    return float(min(folded, sample_rate - folded))


def exercise_2(x: np.ndarray, bits: int) -> float:
    """Measured SNR (dB) of ``x`` (values in [-1, 1]) rounded to ``bits`` bits: signal power over rounding-error power."""
    x = np.asarray(x, dtype=np.float64)
    step = 2.0 / 2**bits
    error = np.round(x / step) * step - x
    return float(10 * np.log10(np.mean(x**2) / np.mean(error**2)))


def full_scale_sine(n_samples: int = 100_000) -> np.ndarray:
    """A full-scale sine at a frequency that is no simple fraction of the rate, so rounding errors look random."""
    return np.sin(2 * np.pi * 0.01234567 * np.arange(n_samples))


def exercise_3(samples: np.ndarray) -> np.ndarray:
    """int16 samples ``(n, channels)`` → mono float32 in ``[-1, 1]``: average the channels, divide by 32768."""
    return (np.asarray(samples, dtype=np.float64).mean(axis=1) / 32768.0).astype(np.float32)


def check_1(answer) -> bool:
    return check(answer, exercise_1, [(15_000, 22_050), (440, 8_000), (30_000, 22_050), (11_025, 22_050)])


def check_2(answer) -> bool:
    sine = full_scale_sine()
    return check(answer, exercise_2, [(sine, 8), (sine, 12), (0.5 * sine, 16)], atol=0.05)


def check_3(answer) -> bool:
    rng = np.random.default_rng(1)
    return check(answer, exercise_3, [(rng.integers(-32768, 32767, (100, 2), dtype=np.int16),),
                                      (np.array([[-32768, -32768], [32767, 0]], dtype=np.int16),)])
