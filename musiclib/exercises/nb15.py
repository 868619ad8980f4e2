"""Exercises of notebook 15, the comparison.

Notebook: 15_comparison.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(per_seed: list[float]) -> tuple[float, float]:
    """The mean of one score over training seeds and its sample standard deviation (divided by ``S - 1``)."""
    values = np.asarray(per_seed, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1))


def exercise_2(pitch_class_profile: np.ndarray, key_profile: np.ndarray) -> np.ndarray:
    """``(12,)``: the Pearson correlation of a pitch-class profile with ``key_profile`` rotated to each of the 12 tonics
    (tonic ``t``: ``np.roll(key_profile, t)``)."""
    x = np.asarray(pitch_class_profile, dtype=np.float64) - np.mean(pitch_class_profile)
    out = []
    for tonic in range(12):
        y = np.roll(np.asarray(key_profile, dtype=np.float64), tonic)
        y = y - y.mean()
        out.append(float(x @ y / np.sqrt((x @ x) * (y @ y))))
    return np.array(out)


def exercise_3(frame_rms: np.ndarray, threshold_db: float = -60.0) -> float:
    """The share of frames whose RMS (full scale = 1) lies below ``threshold_db`` decibels."""
    return float(np.mean(20 * np.log10(np.maximum(np.asarray(frame_rms, dtype=np.float64), 1e-12)) < threshold_db))


def check_1(answer) -> bool:
    return check(answer, exercise_1, [([2.0, 4.0, 9.0],), ([0.5, 0.5],), ([10.0, 12.0, 11.0, 15.0],)])


def check_2(answer) -> bool:
    from musiclib.metrics import MAJOR_KEY_PROFILE, MINOR_KEY_PROFILE

    rng = np.random.default_rng(0)
    return check(answer, exercise_2, [(rng.random(12), MAJOR_KEY_PROFILE), (np.roll(MAJOR_KEY_PROFILE, 5), MAJOR_KEY_PROFILE),
                                      (rng.random(12), MINOR_KEY_PROFILE)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(np.array([1.0, 1e-4, 0.5, 1e-2, 0.0]),), (np.array([0.1, 0.002, 0.0005]), -50.0),
                                      (np.array([1e-3 * 0.99, 1e-3 * 1.01]),)])
