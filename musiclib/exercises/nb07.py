"""Exercises of notebook 07, an LSTM on raw samples.

Notebook: 07_lstm_samples.ipynb
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from musiclib.exercises import check


def exercise_1(rows: np.ndarray) -> np.ndarray:
    """Least-squares linear prediction with a bias: rows ``(n, look_back + 1)`` (context, then target) →
    ``(look_back + 1,)`` coefficients ``a`` with ``target ≈ context @ a[:-1] + a[-1]``."""
    design = np.hstack([rows[:, :-1], np.ones((len(rows), 1))])
    coefficients, *_ = np.linalg.lstsq(design, rows[:, -1], rcond=None)
    return coefficients


def exercise_2(predict: Callable[[np.ndarray], float], prime: np.ndarray, n_samples: int) -> np.ndarray:
    """Free running: feed each prediction back as the newest context sample. ``predict`` maps the last
    ``len(prime)`` samples to the next one; returns the ``n_samples`` generated samples."""
    window = list(np.asarray(prime, dtype=np.float64))
    out = []
    for _ in range(n_samples):
        out.append(float(predict(np.array(window))))
        window = window[1:] + [out[-1]]
    return np.array(out)


def exercise_3(x: np.ndarray) -> tuple[float, float]:
    """Teacher-forced one-step MSEs of two baselines on a signal: ``(persistence x̂[t] = x[t-1], the mean 0)``."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean((x[1:] - x[:-1]) ** 2)), float(np.mean(x[1:] ** 2))


def check_1(answer) -> bool:
    rng = np.random.default_rng(11)
    signal = np.sin(0.3 * np.arange(400)) + 0.05 * rng.normal(size=400)
    rows = np.lib.stride_tricks.sliding_window_view(signal, 4)
    return check(answer, exercise_1, [(rows,), (rows[:, 1:],)], atol=1e-8)


def check_2(answer) -> bool:
    def predict(context):
        return 2 * np.cos(0.2) * context[-1] - context[-2]  # an exact oscillator: sin(0.2 t) continues itself

    return check(answer, exercise_2, [(predict, np.sin(0.2 * np.arange(3)), 50), (lambda c: 0.9 * c[-1], np.ones(1), 10)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(np.sin(0.1 * np.arange(200)),), (np.random.default_rng(12).normal(size=100),)])
