"""Exercises of notebook 09, the MelGAN vocoder.

Notebook: 09_melgan_vocoder.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.exercises import check


def exercise_1(kernel_size: int, dilations: tuple[int, ...]) -> int:
    """Receptive field, in samples, of a stack of stride-1 convolutions: ``1 + sum((k - 1) d)``."""
    return 1 + sum((kernel_size - 1) * d for d in dilations)


def exercise_2(real: np.ndarray, fake: np.ndarray, n_fft: int, hop: int) -> float:
    """One resolution of the multi-resolution STFT loss: spectral convergence + mean ``|log(|S| + 1e-5) - log(|Ŝ| + 1e-5)|``
    (Hann window of ``n_fft``, centred frames padded with zeros, as ``torch.stft(..., pad_mode="constant")``)."""
    import scipy.signal

    window = scipy.signal.get_window("hann", n_fft, fftbins=True)

    def magnitude(y):
        y = np.pad(np.asarray(y, dtype=np.float64), (n_fft // 2, n_fft // 2))
        frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
        return np.abs(np.fft.rfft(frames * window, axis=-1))

    a, b = magnitude(real), magnitude(fake)
    convergence = np.linalg.norm(a - b) / (np.linalg.norm(a) + 1e-7)
    return float(convergence + np.mean(np.abs(np.log(a + 1e-5) - np.log(b + 1e-5))))


def exercise_3(features_real: list, features_fake: list) -> float:
    """Feature matching: the mean absolute difference of each pair of feature maps, summed over the maps."""
    return float(sum(np.mean(np.abs(np.asarray(f) - np.asarray(r))) for r, f in zip(features_real, features_fake)))


def check_1(answer) -> bool:
    return check(answer, exercise_1, [(3, (1, 3, 9)), (3, (1,)), (7, (1, 2, 4, 8))])


def check_2(answer) -> bool:
    rng = np.random.default_rng(15)
    real = rng.normal(size=2048)
    return check(answer, exercise_2, [(real, real + 0.1 * rng.normal(size=2048), 256, 64), (real, 0.5 * real, 512, 128)],
                 atol=1e-5, rtol=1e-5)


def check_3(answer) -> bool:
    rng = np.random.default_rng(16)
    real = [rng.normal(size=(2, 4, 10)), rng.normal(size=(2, 8, 5))]
    fake = [r + rng.normal(size=r.shape) for r in real]
    return check(answer, exercise_3, [(real, fake), (real, real)])
