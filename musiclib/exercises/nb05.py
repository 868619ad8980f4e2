"""Exercises of notebook 05, the data pipeline and how results are judged.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from musiclib.exercises import check


def exercise_1(train: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Scale ``other`` by the one affine map that sends the training values' 0.5th and 99.5th percentiles to -1 and 1."""
    low, high = np.percentile(np.asarray(train, dtype=np.float64), [0.5, 99.5])
    return 2.0 * (np.asarray(other, dtype=np.float64) - low) / (high - low) - 1.0


def exercise_2(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(n, d)``:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root = np.real(scipy.linalg.sqrtm(cov_a @ cov_b))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def exercise_3(train: np.ndarray, generated: np.ndarray, heldout: np.ndarray) -> float:
    """Memorisation ratio: median distance from each generated clip's features to the nearest training clip,
    over the same median for held-out real clips."""

    def median_nearest(points: np.ndarray) -> float:
        distances = np.linalg.norm(points[:, None, :] - train[None, :, :], axis=-1)
        return float(np.median(distances.min(axis=1)))

    return median_nearest(generated) / median_nearest(heldout)


def check_1(answer) -> bool:
    rng = np.random.default_rng(6)
    train = rng.normal(-4, 3, (20, 8))
    return check(answer, exercise_1, [(train, train), (train, rng.normal(-4, 3, (5, 8)))])


def check_2(answer) -> bool:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, (400, 3)), rng.normal(1, 2, (300, 3))
    return check(answer, exercise_2, [(a, a), (a, b)], atol=1e-6, rtol=1e-6)


def check_3(answer) -> bool:
    rng = np.random.default_rng(8)
    train = rng.normal(size=(50, 4))
    return check(answer, exercise_3, [(train, train[:10] + 0.01, rng.normal(size=(10, 4))),
                                      (train, rng.normal(size=(12, 4)), rng.normal(size=(10, 4)))])
