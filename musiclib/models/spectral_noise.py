"""The trivial baseline model: noise with the training data's average spectrum.

It learns one number per frequency bin (the mean log magnitude) by gradient
descent, so it exercises the whole pipeline (dataset → training loop →
checkpoint → generation → evaluation) in seconds. Every real model must beat it.
It is also the smallest example of the model contract (:mod:`musiclib.models.base`).

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib import dsp, features
from musiclib.models import base, register


@dataclasses.dataclass(frozen=True)
class SpectralNoiseSettings(base.Settings):
    steps: int = 60
    batch_size: int = 16
    learning_rate: float = 0.3

    @classmethod
    def full(cls):
        return cls(steps=300)


@register
class SpectralNoise(base.Model):
    """``log_magnitude``: ``(n_freqs,)`` learnable mean log STFT magnitude."""

    name, family = "spectral-noise", "baseline"
    description = "noise shaped like the training data's average spectrum (baseline)"
    gallery = ("The floor: noise with the training music's average spectrum. It has the music's colour but no notes, no "
               "rhythm and no onsets; every model below should sound more like music than this.")
    Settings = SpectralNoiseSettings

    def __init__(self, settings: SpectralNoiseSettings, audio):
        super().__init__(settings, audio)
        self.log_magnitude = torch.nn.Parameter(torch.zeros(audio.n_freqs))

    def features(self, dataset, split: str) -> np.ndarray:
        """Per-clip mean log magnitude spectra, ``(n, n_freqs)``."""
        return np.stack([features.log_linear(clip, dataset.config).mean(axis=1) for chunk in dataset.clip_chunks(split)
                         for clip in chunk]).astype(np.float32)

    def loss(self, batch: torch.Tensor, phase: str = "") -> torch.Tensor:
        return torch.mean((self.log_magnitude[None, :] - batch) ** 2)

    def sample(self, n: int, seconds: float, seed: int) -> np.ndarray:
        """``(n, samples)`` random-phase noise whose every frame has the learned magnitude spectrum (the phase is random by design)."""
        n_samples = int(round(seconds * self.audio.sample_rate))
        n_frames = n_samples // self.audio.hop_length + 1
        rng = np.random.default_rng(seed)
        magnitude = np.exp(self.log_magnitude.detach().cpu().numpy())[None, :, None]
        phase = rng.uniform(0, 2 * np.pi, (n, self.audio.n_freqs, n_frames))
        spectra = (magnitude * np.exp(1j * phase)).astype(np.complex64)
        return np.stack([dsp.istft(s, hop_length=self.audio.hop_length, length=n_samples) for s in spectra]).astype(np.float32)
