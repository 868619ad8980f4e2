"""Spectrogram clips for the GAN and VAE: log-mel (or log-linear) tensors with one global normalisation.

The seeds scaled each file by its own min/max and stored those numbers per file,
so a *new* spectrogram (from a random latent) could never be scaled back. Here
one pair of numbers, computed on the training split, maps every spectrogram to
roughly [-1, 1] and back.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from musiclib import cache, features
from musiclib.config import AudioConfig

KINDS = ("mel", "linear")


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """Global affine map of log-spectrogram values: ``[low, high]`` → ``[-1, 1]``.

    ``low`` and ``high`` are low and high percentiles (0.5 %, 99.5 %) of the
    training values, so a few outliers do not squash everything else.
    """

    low: float
    high: float

    @classmethod
    def fit(cls, values: np.ndarray) -> "Normalizer":
        low, high = np.percentile(np.asarray(values, dtype=np.float64), [0.5, 99.5])
        return cls(float(low), float(high))

    def normalize(self, log_spec: np.ndarray) -> np.ndarray:
        return (2 * (np.asarray(log_spec) - self.low) / (self.high - self.low) - 1).astype(np.float32)

    def denormalize(self, scaled: np.ndarray) -> np.ndarray:
        return ((np.asarray(scaled) + 1) / 2 * (self.high - self.low) + self.low).astype(np.float32)


def log_spectrogram(y: np.ndarray, config: AudioConfig, kind: str = "mel") -> np.ndarray:
    if kind == "mel":
        return features.log_mel(y, config)
    if kind == "linear":
        return features.log_linear(y, config)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


class SpectrogramClips:
    """Normalised log-spectrograms of every clip of a dataset split: ``(n, n_bins, n_frames)`` float32.

    Args:
        dataset: An :class:`~musiclib.datasets.AudioDataset`.
        split: Which split.
        kind: ``"mel"`` (``n_mels`` bins) or ``"linear"`` (``n_fft // 2 + 1`` bins).
        normalizer: Reuse one (from the training split) for val/test; ``None`` fits it on these clips.
    """

    def __init__(self, dataset, split: str = "train", kind: str = "mel", normalizer: Normalizer | None = None):
        self.config = dataset.config
        self.kind = kind
        clips = dataset.clips(split)
        raw = np.stack([log_spectrogram(np.asarray(c), self.config, kind) for c in clips]) if len(clips) else np.zeros((0, 1, 1), np.float32)
        self.normalizer = normalizer or Normalizer.fit(raw)
        self.data = self.normalizer.normalize(raw)
        self.clip_samples = clips.shape[1]

    def __len__(self) -> int:
        return len(self.data)

    def to_audio(self, scaled: np.ndarray, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        """Normalised spectrogram(s) → waveform(s) with Griffin-Lim (batched when given a batch)."""
        log_spec = self.normalizer.denormalize(scaled)
        if self.kind == "mel":
            magnitude = features.log_mel_to_magnitude(log_spec, self.config)
        else:
            magnitude = np.exp(log_spec)
        return features.magnitude_to_audio(magnitude, self.config, n_iter=n_iter, seed=seed, length=self.clip_samples)

    def save_normalizer(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": self.kind, **dataclasses.asdict(self.normalizer)}) + "\n")

    @staticmethod
    def load_normalizer(path: str | Path) -> Normalizer:
        values = json.loads(Path(path).read_text())
        return Normalizer(values["low"], values["high"])


def model_clips(dataset, split: str, min_frames: int, normalizer: Normalizer | None = None, kind: str = "mel") -> SpectrogramClips:
    """:class:`SpectrogramClips` for a model that needs ``min_frames`` per clip.

    The training split with its own normaliser is computed once per dataset and reused
    (a model's training arrays and its stored normaliser both come from it).
    """
    if split == "train" and normalizer is None:
        clips = cache.memoized(dataset, f"spectrogram_clips:{kind}:train", lambda: SpectrogramClips(dataset, "train", kind))
    else:
        clips = SpectrogramClips(dataset, split, kind, normalizer)
    if clips.data.shape[-1] < min_frames:
        raise ValueError(f"{dataset.root}: clips give {clips.data.shape[-1]} frames; this model needs {min_frames} "
                         "(use clips of 1 s or more)")
    return clips


def windows(images, frames: int, random: bool):
    """``(B, n_mels, W)`` torch tensor → ``(B, n_mels, frames)``: a random window per example (training), else the first ``frames``.

    Random windows turn each 1-s clip (86 frames) into 23 different 64-frame training images,
    so a model sees every note at every position instead of memorising a few hundred fixed
    images. Offsets come from torch's global generator, which the trainer seeds and checkpoints.

    Notebook: 10_vae.ipynb
    """
    import torch  # here, not at the top: preparing data should not pay for loading torch

    if images.shape[-1] == frames or not random:
        return images[..., :frames]
    offsets = torch.randint(0, images.shape[-1] - frames + 1, (images.shape[0], 1), device=images.device)
    index = (offsets + torch.arange(frames, device=images.device))[:, None, :].expand(-1, images.shape[1], -1)
    return images.gather(-1, index)
