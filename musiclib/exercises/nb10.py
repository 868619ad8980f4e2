"""Exercises of notebook 10, autoencoders and the VAE.

Notebook: 10_vae.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) for each row: ``1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)``."""
    return 0.5 * np.sum(mu**2 + np.exp(log_var) - 1.0 - log_var, axis=-1)


def exercise_2(mu: np.ndarray, log_var: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The reparameterisation trick: ``z = mu + exp(log_var / 2) * noise`` with ``noise ~ N(0, I)`` given."""
    return mu + np.exp(0.5 * log_var) * noise


def exercise_3(z_start: np.ndarray, z_end: np.ndarray, n_points: int) -> np.ndarray:
    """``n_points`` latent codes evenly spaced on the straight line from ``z_start`` to ``z_end``, both ends included."""
    weights = np.linspace(0.0, 1.0, n_points)[:, None]
    return (1 - weights) * z_start[None] + weights * z_end[None]


def check_1(answer) -> bool:
    rng = np.random.default_rng(17)
    return check(answer, exercise_1, [(np.zeros((2, 3)), np.zeros((2, 3))), (rng.normal(size=(4, 5)), rng.normal(size=(4, 5)))])


def check_2(answer) -> bool:
    rng = np.random.default_rng(18)
    mu, log_var, noise = rng.normal(size=(3, 4, 2))
    return check(answer, exercise_2, [(mu, log_var, noise), (mu, np.full_like(mu, -np.inf), noise)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(np.zeros(2), np.ones(2), 5), (np.array([1.0, -1.0, 0.0]), np.array([3.0, 1.0, 2.0]), 2)])
