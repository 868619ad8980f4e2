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


def exercise_2(bits: int, n_samples: int = 100_000) -> float:
    """Measured SNR (dB) of a full-scale sine rounded to ``bits`` bits: signal power over rounding-error power."""
    t = np.arange(n_samples)
    x = np.sin(2 * np.pi * 0.01234567 * t)  # a frequency that is not a simple fraction, so errors look random
    step = 2.0 / 2**bits
    error = np.round(x / step) * step - x
    return float(10 * np.log10(np.mean(x**2) / np.mean(error**2)))


def exercise_3(samples: np.ndarray) -> np.ndarray:
    """int16 samples ``(n, channels)`` → mono float32 in ``[-1, 1]``: average the channels, divide by 32768."""
    return (np.asarray(samples, dtype=np.float64).mean(axis=1) / 32768.0).astype(np.float32)


def check_1(answer) -> bool:
    return check(answer, exercise_1, [(15_000, 22_050), (440, 8_000), (30_000, 22_050), (11_025, 22_050)])


def check_2(answer) -> bool:
    return check(answer, exercise_2, [(8,), (12,), (16,)], atol=0.05)


def check_3(answer) -> bool:
    rng = np.random.default_rng(1)
    return check(answer, exercise_3, [(rng.integers(-32768, 32767, (100, 2), dtype=np.int16),),
                                      (np.array([[-32768, -32768], [32767, 0]], dtype=np.int16),)])
