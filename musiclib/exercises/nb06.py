"""Exercises of notebook 06, an LSTM on FFT blocks.

Notebook: 06_lstm_fft_blocks.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(x: np.ndarray, y: np.ndarray) -> dict:
    """The two baselines' one-step MSEs on normalised blocks ``(sequences, blocks, d)``: repeat the last block
    (``persistence``) and predict the training mean, which is 0 after normalisation (``mean``)."""
    return {"persistence": float(np.mean((y - x) ** 2)), "mean": float(np.mean(y**2))}


def exercise_2(y: np.ndarray, block_size: int) -> float:
    """Mean ``|y[t] - y[t-1]|`` where ``t`` starts a block, over the mean of that jump everywhere else."""
    jumps = np.abs(np.diff(np.asarray(y, dtype=np.float64)))
    at_edge = (np.arange(1, len(y)) % block_size) == 0
    return float(jumps[at_edge].mean() / jumps[~at_edge].mean())


def exercise_3(n_blocks: int) -> tuple[int, int]:
    """LSTM steps to generate ``n_blocks`` after a one-block prime: ``(re-feeding the whole sequence, carrying the state)``.

    Re-feeding runs the model over 1, 2, ..., ``n_blocks`` blocks; carrying the state runs one step per block.
    """
    return n_blocks * (n_blocks + 1) // 2, n_blocks


def check_1(answer) -> bool:
    rng = np.random.default_rng(9)
    blocks = rng.normal(size=(3, 6, 5))
    return check(answer, exercise_1, [(blocks[:, :-1], blocks[:, 1:])])


def check_2(answer) -> bool:
    rng = np.random.default_rng(10)
    steps = np.repeat(rng.normal(size=8), 32) + 0.01 * rng.normal(size=256)
    return check(answer, exercise_2, [(steps, 32), (np.sin(np.arange(1000) * 0.05), 100)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(1,), (10,), (1000,)])
