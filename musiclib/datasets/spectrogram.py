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
from typing import Iterator

import numpy as np

from musiclib import cache, features
from musiclib.config import AudioConfig
from musiclib.datasets.store import NpyAppender, read_row_chunks, read_rows_at
from musiclib.utils import evenly_spaced

KINDS = ("mel", "linear")
FIT_VALUES = 1 << 22
"""At most this many spectrogram values (evenly spaced whole clips) fit a :class:`Normalizer` (32 MB in float64)."""
IN_MEMORY_BYTES = 128 << 20
"""Spectrograms of a split up to this size are computed in memory by each process; larger ones stream through the
feature cache. (Features computed in another process may differ in the last bits, with its number of threads.)"""
CHUNK_CLIPS = 256
"""Clips computed at a time when spectrograms are written to the feature cache."""


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
        self.clip_samples = dataset.clip_samples
        if dataset.manifest["counts"][split] == 0:
            self.normalizer, self.data = normalizer or Normalizer(0.0, 1.0), np.zeros((0, 1, 1), np.float32)
            return
        n_values = dataset.manifest["counts"][split] * int(np.prod(log_spectrogram(np.zeros(self.clip_samples, np.float32),
                                                                                    self.config, kind).shape))
        if n_values * 4 <= IN_MEMORY_BYTES:  # computed here, in this process (its threads), as it always was
            raw = np.stack([log_spectrogram(np.asarray(c), self.config, kind) for c in dataset.clips(split)])
            self.normalizer = normalizer or Normalizer.fit(raw)
            self.data = self.normalizer.normalize(raw)
            return
        # Larger: both arrays are memory maps in the feature cache (musiclib.cache), written a chunk of clips at a
        # time, so a split far larger than memory streams through.
        raw = _cached_rows(dataset, f"log_{kind}_{split}", dataset.clip_chunks(split, CHUNK_CLIPS),
                           lambda chunk: np.stack([log_spectrogram(c, self.config, kind) for c in chunk]))
        self.normalizer = normalizer or Normalizer.fit(fit_sample(raw))
        low, high = self.normalizer.low, self.normalizer.high
        self.data = _cached_rows(dataset, f"log_{kind}_{split}_scaled_{low!r}_{high!r}",
                                 read_row_chunks(Path(raw.filename), CHUNK_CLIPS), self.normalizer.normalize)

    def __len__(self) -> int:
        return len(self.data)

    def chunks(self, size: int = CHUNK_CLIPS) -> Iterator[np.ndarray]:
        """The normalised spectrograms in order, ``size`` at a time (read from the feature cache when streamed)."""
        if isinstance(self.data, np.memmap):
            yield from read_row_chunks(Path(self.data.filename), size)
        else:
            yield from (self.data[start : start + size] for start in range(0, len(self.data), size))

    def read(self, indices) -> np.ndarray:
        """The normalised spectrograms at ``indices``, read alone from the feature cache: memory holds them only."""
        if isinstance(self.data, np.memmap):
            return read_rows_at(Path(self.data.filename), indices)
        return np.asarray(self.data[indices])

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


def fit_sample(rows: np.memmap) -> np.ndarray:
    """The rows a :class:`Normalizer` is fitted on: all of them up to :data:`FIT_VALUES` numbers, beyond that evenly
    spaced rows holding about that many, read from the file alone, so memory does not grow with the data."""
    size = max(1, int(np.prod(rows.shape[1:])))
    if len(rows) * size <= FIT_VALUES:
        return np.asarray(rows)
    return read_rows_at(Path(rows.filename), evenly_spaced(len(rows), max(1, FIT_VALUES // size)))


def _cached_rows(dataset, name: str, chunks: Iterator[np.ndarray], transform) -> np.ndarray:
    """``transform`` of each chunk of rows, written once to the feature cache and returned as a read-only memory map.

    Written as a file, not through a writable memory map, so the pages written do not stay in this process's memory.
    """
    def build(folder: Path) -> None:
        appender = None
        for chunk in chunks:
            out = np.asarray(transform(chunk), dtype=np.float32)
            appender = appender or NpyAppender(folder / "rows.npy", out.shape[1:])
            appender.append(out)
        appender.finish()

    return np.load(cache.derived_dir(dataset, name, build) / "rows.npy", mmap_mode="r")


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
