"""Simple baselines that every model is compared with.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib import features, signals
from musiclib.config import AudioConfig


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(y, dtype=np.float64) ** 2)))


def white_noise_clips(n: int, clip_samples: int, level: float, seed: int = 0) -> np.ndarray:
    """``n`` clips of Gaussian white noise with RMS ``level``."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((n, clip_samples))).astype(np.float32)


def pink_noise_clips(n: int, clip_samples: int, level: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """``n`` clips of 1/f noise with RMS ``level``."""
    seconds = clip_samples / sample_rate
    return np.stack([signals.pink_noise(seconds, sample_rate, level, seed=seed + i)[:clip_samples] for i in range(n)])


def persistence_samples(context: np.ndarray, n_samples: int) -> np.ndarray:
    """Continue by repeating the last sample: ``x_hat[t] = x[t-1]`` run free."""
    return np.full(n_samples, context[-1], dtype=np.float32)


def persistence_blocks(context: np.ndarray, n_samples: int, block_size: int) -> np.ndarray:
    """Continue by repeating the last block of ``block_size`` samples."""
    block = np.asarray(context[-block_size:], dtype=np.float32)
    reps = -(-n_samples // block_size)
    return np.tile(block, reps)[:n_samples]


def one_step_persistence_mse(sequences: np.ndarray) -> float:
    """MSE of predicting each step by the previous one, over ``(n, steps, ...)`` sequences."""
    seq = np.asarray(sequences, dtype=np.float64)
    return float(np.mean((seq[:, 1:] - seq[:, :-1]) ** 2))


class PCABaseline:
    """PCA on flattened normalised spectrograms: a linear autoencoder with ``n_components`` latents.

    The reference any learned autoencoder must beat at the same latent size.
    """

    def __init__(self, n_components: int, seed: int = 0):
        from sklearn.decomposition import PCA

        self.pca = PCA(n_components=n_components, random_state=seed)
        self.shape = None

    def fit(self, spectrograms: np.ndarray) -> "PCABaseline":
        self.shape = spectrograms.shape[1:]
        self.pca.fit(spectrograms.reshape(len(spectrograms), -1))
        return self

    def encode(self, spectrograms: np.ndarray) -> np.ndarray:
        return self.pca.transform(spectrograms.reshape(len(spectrograms), -1))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.pca.inverse_transform(latents).reshape(len(latents), *self.shape).astype(np.float32)

    def reconstruct(self, spectrograms: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(spectrograms))


def griffin_lim_resynthesis(clips: np.ndarray, config: AudioConfig, n_iter: int = 32) -> np.ndarray:
    """Each clip → log-mel → Griffin-Lim: the quality ceiling of any mel model that uses Griffin-Lim."""
    log_mels = np.stack([features.log_mel(np.asarray(c), config) for c in clips])
    return features.log_mel_to_audio(log_mels, config, n_iter=n_iter, length=clips.shape[1])
