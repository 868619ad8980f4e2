"""The trivial baseline model: noise with the training data's average spectrum.

It learns one number per frequency bin (the mean log magnitude) by gradient
descent, so it exercises the whole pipeline (dataset → training loop →
checkpoint → generation → evaluation) in seconds. Every real model must beat it.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np
import torch

from musiclib import features
from musiclib.config import AudioConfig
from musiclib.models import ModelSpec, register


class SpectralNoise(torch.nn.Module):
    """``log_magnitude``: ``(n_freqs,)`` learnable mean log STFT magnitude."""

    def __init__(self, n_freqs: int):
        super().__init__()
        self.log_magnitude = torch.nn.Parameter(torch.zeros(n_freqs))


def default_config(fast: bool) -> dict:
    return {"steps": 60 if fast else 300, "batch_size": 16, "learning_rate": 0.3}


def build(model_config: dict, audio_config: AudioConfig) -> SpectralNoise:
    return SpectralNoise(audio_config.n_freqs)


def training_arrays(dataset, model_config: dict):
    """Per-clip mean log magnitude spectra, ``(n, n_freqs)``."""
    def spectra(split):
        return np.stack([features.log_linear(c, dataset.config).mean(axis=1) for chunk in dataset.clip_chunks(split)
                         for c in chunk]).astype(np.float32)
    return spectra("train"), spectra("val")


def loss(model: SpectralNoise, batch: torch.Tensor) -> torch.Tensor:
    return torch.mean((model.log_magnitude[None, :] - batch) ** 2)


def generate(model: SpectralNoise, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None) -> np.ndarray:
    """``(n, samples)`` random-phase noise whose every frame has the learned magnitude spectrum (the phase is random by design)."""
    from musiclib import dsp

    n_samples = int(round(seconds * audio_config.sample_rate))
    n_frames = n_samples // audio_config.hop_length + 1
    rng = np.random.default_rng(seed)
    magnitude = np.exp(model.log_magnitude.detach().cpu().numpy())[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (n, audio_config.n_freqs, n_frames))
    spectra = (magnitude * np.exp(1j * phase)).astype(np.complex64)
    return np.stack([dsp.istft(s, hop_length=audio_config.hop_length, length=n_samples) for s in spectra]).astype(np.float32)


SPEC = register(ModelSpec("spectral-noise", "noise shaped like the training data's average spectrum (baseline)",
                          default_config, build, training_arrays, loss, generate, family="baseline",
                          gallery="The floor: noise with the training music's average spectrum. It has the music's colour but "
                                  "no notes, no rhythm and no onsets; every model below should sound more like music than this."))
