"""Exercises of notebook 13, flow matching.

Notebook: 13_flow_matching.ipynb
"""
from __future__ import annotations

import functools

import numpy as np

from musiclib.exercises import check


def exercise_1(noise: np.ndarray, data: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """The point ``x_t = (1 - t) x0 + t x1`` of the straight path from ``noise`` to ``data`` and the velocity the network learns there."""
    noise, data = np.asarray(noise, np.float64), np.asarray(data, np.float64)
    return (1 - t) * noise + t * data, data - noise


def exercise_2(velocity, x: np.ndarray, t: float, dt: float) -> np.ndarray:
    """One midpoint step of ``dx/dt = velocity(x, t)``: half an Euler step to find the slope at ``t + dt/2``, then the full step with it."""
    middle = x + 0.5 * dt * velocity(x, t)
    return x + dt * velocity(middle, t + 0.5 * dt)


def exercise_3(x_t: np.ndarray, velocity: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """What a velocity says about both ends of a straight path: the data estimate ``x1`` and the noise estimate ``x0`` (DDPM's ε)."""
    x_t, velocity = np.asarray(x_t, np.float64), np.asarray(velocity, np.float64)
    return x_t + (1 - t) * velocity, x_t - t * velocity


def _rotation(x, t):
    """A velocity field that depends on x and on t, for checking solvers."""
    return np.stack([-x[..., 1], x[..., 0]], axis=-1) * (1 + t)


def check_1(answer) -> bool:
    rng = np.random.default_rng(0)
    return check(answer, exercise_1, [(rng.standard_normal(4), rng.standard_normal(4), 0.0),
                                      (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), 0.3),
                                      (rng.standard_normal(5), rng.standard_normal(5), 1.0)])


def check_2(answer) -> bool:
    rng = np.random.default_rng(1)

    @functools.wraps(answer)
    def on_rotation(x, t, dt):
        return answer(_rotation, x, t, dt)

    return check(on_rotation, lambda x, t, dt: exercise_2(_rotation, x, t, dt),
                 [(rng.standard_normal((3, 2)), 0.0, 0.25), (rng.standard_normal((1, 2)), 0.5, 0.1)])


def check_3(answer) -> bool:
    rng = np.random.default_rng(2)
    return check(answer, exercise_3, [(rng.standard_normal(4), rng.standard_normal(4), 0.25),
                                      (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), 0.8)])
