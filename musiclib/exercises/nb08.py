"""Exercises of notebook 08, the spectrogram GAN.

Notebook: 08_spectrogram_gan.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(d_real: np.ndarray, d_fake: np.ndarray) -> float:
    """The discriminator's hinge loss on raw scores: ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))``."""
    return float(np.mean(np.maximum(0, 1 - d_real)) + np.mean(np.maximum(0, 1 + d_fake)))


def exercise_2(logits: np.ndarray) -> float:
    """The generator's non-saturating loss from the discriminator's logits on generated images:
    ``mean -log sigmoid(l) = mean softplus(-l)``, written so that large ``|l|`` cannot overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, -logits)))


def exercise_3(weight: np.ndarray, n_iterations: int = 200) -> float:
    """The largest singular value of a matrix by power iteration (what spectral normalisation divides by)."""
    weight = np.asarray(weight, dtype=np.float64)
    v = np.ones(weight.shape[1]) / np.sqrt(weight.shape[1])
    for _ in range(n_iterations):
        u = weight @ v
        u /= np.linalg.norm(u)
        v = weight.T @ u
        v /= np.linalg.norm(v)
    return float(u @ weight @ v)


def check_1(answer) -> bool:
    rng = np.random.default_rng(13)
    return check(answer, exercise_1, [(rng.normal(size=16), rng.normal(size=16)), (np.full(4, 3.0), np.full(4, -3.0))])


def check_2(answer) -> bool:
    return check(answer, exercise_2, [(np.array([0.0, 1.0, -2.0]),), (np.array([800.0, -800.0]),)])


def check_3(answer) -> bool:
    rng = np.random.default_rng(14)
    return check(answer, exercise_3, [(rng.normal(size=(8, 5)),), (np.diag([3.0, 1.0, 0.5]),)], atol=1e-5)
