"""Exercises of notebook 12, audio tokens.

Notebook: 12_audio_tokens.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(vectors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """``(n,)`` the index of the nearest code (squared Euclidean distance) for each of ``(n, dim)`` vectors; ``codebook`` is ``(K, dim)``."""
    distances = ((np.asarray(vectors)[:, None, :] - np.asarray(codebook)[None]) ** 2).sum(-1)
    return distances.argmin(axis=1)


def exercise_2(tokens: np.ndarray, codebook_size: int) -> float:
    """The perplexity ``exp(-Σ p_k ln p_k)`` of how often each of the ``codebook_size`` codes occurs in ``tokens``."""
    p = np.bincount(np.asarray(tokens).ravel(), minlength=codebook_size) / np.asarray(tokens).size
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def exercise_3(logits: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """``(K,)`` sampling probabilities: softmax of ``logits / temperature`` over the ``top_k`` largest logits (0 elsewhere)."""
    scaled = np.asarray(logits, np.float64) / temperature
    keep = np.argsort(scaled)[::-1][:top_k]
    out = np.zeros_like(scaled)
    out[keep] = np.exp(scaled[keep] - scaled[keep].max())
    return out / out.sum()


def exercise_4(frames: np.ndarray, pad: int) -> np.ndarray:
    """The delay pattern: ``(L, C)`` frames of tokens → ``(L + C - 1, C)`` rows, column ``c`` shifted ``c`` rows later,
    ``pad`` wherever no token falls."""
    length, columns = np.shape(frames)
    rows = np.full((length + columns - 1, columns), pad, dtype=np.asarray(frames).dtype)
    for c in range(columns):
        rows[c: c + length, c] = np.asarray(frames)[:, c]
    return rows


def check_1(answer) -> bool:
    rng = np.random.default_rng(0)
    return check(answer, exercise_1, [(rng.standard_normal((6, 3)), rng.standard_normal((4, 3))),
                                      (rng.standard_normal((10, 2)), rng.standard_normal((8, 2)))])


def check_2(answer) -> bool:
    return check(answer, exercise_2, [(np.array([0, 1, 2, 3]), 4), (np.array([5, 5, 5, 1]), 8), (np.arange(12).reshape(3, 4) % 3, 16)])


def check_3(answer) -> bool:
    return check(answer, exercise_3, [(np.array([2.0, 1.0, 0.5, -1.0]), 1.0, 2), (np.array([0.1, 3.0, 2.9, 0.0, 1.0]), 0.5, 3),
                                      (np.array([1.0, 2.0, 3.0]), 2.0, 3)])


def check_4(answer) -> bool:
    rng = np.random.default_rng(0)
    return check(answer, exercise_4, [(np.arange(6).reshape(3, 2), -1), (rng.integers(0, 9, (5, 4)), 9), (np.arange(4).reshape(4, 1), 7)])
