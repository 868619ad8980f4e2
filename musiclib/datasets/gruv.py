"""GRUV-style FFT blocks (seed 002): audio → blocks → FFT features → sequences, and back.

Two feature forms:
- ``"seed"``: the full complex FFT of each block stored as ``[real | imag]`` in
  float64 (``2 * block_size`` numbers), as the seed did;
- ``"rfft"``: only the ``block_size // 2 + 1`` non-negative bins, ``[real | imag]``
  in float32 (``block_size + 2`` numbers): the same information, 4x smaller.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMS = ("seed", "rfft")


def feature_size(block_size: int, form: str) -> int:
    if form == "seed":
        return 2 * block_size
    if form == "rfft":
        return 2 * (block_size // 2 + 1)
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def to_blocks(y: np.ndarray, block_size: int) -> np.ndarray:
    """``(..., samples)`` → ``(..., n_blocks, block_size)``, the last block zero-padded."""
    n_blocks = -(-y.shape[-1] // block_size)
    pad = n_blocks * block_size - y.shape[-1]
    padded = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, pad)])
    return padded.reshape(*y.shape[:-1], n_blocks, block_size)


def blocks_to_features(blocks: np.ndarray, form: str = "rfft") -> np.ndarray:
    """FFT each block and lay out ``[real | imag]`` along the last axis."""
    if form == "seed":
        spectrum = np.fft.fft(blocks.astype(np.float64), axis=-1)
        return np.concatenate([spectrum.real, spectrum.imag], axis=-1)
    if form == "rfft":
        spectrum = np.fft.rfft(blocks, axis=-1)
        return np.concatenate([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def features_to_blocks(features: np.ndarray, block_size: int, form: str = "rfft") -> np.ndarray:
    """Inverse of :func:`blocks_to_features`: ``(..., feature_size)`` → ``(..., block_size)`` samples."""
    half = features.shape[-1] // 2
    spectrum = features[..., :half] + 1j * features[..., half:]
    if form == "seed":
        return np.fft.ifft(spectrum, axis=-1).real.astype(np.float32)
    return np.fft.irfft(spectrum, n=block_size, axis=-1).astype(np.float32)


def blocks_to_audio(blocks: np.ndarray) -> np.ndarray:
    """Concatenate ``(n_blocks, block_size)`` back into ``(samples,)``."""
    return np.asarray(blocks).reshape(-1)


class GruvBlocks:
    """Sequences of FFT blocks on disk: ``x.npy``, ``y.npy`` (memory-mapped) and ``stats.npz``.

    Each clip of the source dataset becomes one sequence: its ``n`` blocks give
    ``x = blocks[:-1]`` and ``y = blocks[1:]`` (the next block), normalised by the
    per-feature mean and standard deviation of the *training* split.

    Attributes:
        x, y: ``(n_sequences, seq_len, feature_size)`` float32 memory maps.
        mean, std: ``(feature_size,)`` training statistics.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "gruv.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.root}: no gruv.json; build it with GruvBlocks.build(dataset, split, out).")
        self.meta = json.loads(meta_path.read_text())
        self.block_size = self.meta["block_size"]
        self.form = self.meta["form"]
        stats = np.load(self.root / "stats.npz")
        self.mean, self.std = stats["mean"], stats["std"]
        self.x = np.load(self.root / "x.npy", mmap_mode="r")
        self.y = np.load(self.root / "y.npy", mmap_mode="r")

    @staticmethod
    def build(dataset, split: str, out: str | Path, block_size: int = 2048, form: str = "rfft", stats: tuple | None = None, chunk: int = 256) -> "GruvBlocks":
        """Write the GRUV tensors for one split of an :class:`~musiclib.datasets.AudioDataset`.

        Args:
            dataset: Source dataset.
            split: ``train``, ``val`` or ``test``.
            out: Output folder.
            block_size: Samples per block (the seed's prose: 2048).
            form: ``"rfft"`` (float32) or ``"seed"`` (float64 full FFT).
            stats: ``(mean, std)`` to reuse (pass the training split's for val/test); ``None`` computes them here.
            chunk: Clips processed at a time, so memory stays bounded.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        clips = dataset.clips(split)
        n_blocks = -(-clips.shape[1] // block_size)
        size = feature_size(block_size, form)
        dtype = np.float64 if form == "seed" else np.float32
        if stats is None:
            total = np.zeros(size)
            total_sq = np.zeros(size)
            count = 0
            for start in range(0, len(clips), chunk):
                feats = blocks_to_features(to_blocks(np.asarray(clips[start : start + chunk]), block_size), form).reshape(-1, size)
                total += feats.sum(axis=0)
                total_sq += (feats.astype(np.float64) ** 2).sum(axis=0)
                count += len(feats)
            mean = total / count
            std = np.sqrt(np.maximum(total_sq / count - mean**2, 0)) + 1e-8
        else:
            mean, std = stats
        x = np.lib.format.open_memmap(out / "x.npy", mode="w+", dtype=dtype, shape=(len(clips), n_blocks - 1, size))
        y = np.lib.format.open_memmap(out / "y.npy", mode="w+", dtype=dtype, shape=(len(clips), n_blocks - 1, size))
        for start in range(0, len(clips), chunk):
            feats = blocks_to_features(to_blocks(np.asarray(clips[start : start + chunk]), block_size), form)
            feats = ((feats - mean) / std).astype(dtype)
            x[start : start + len(feats)] = feats[:, :-1]
            y[start : start + len(feats)] = feats[:, 1:]
        x.flush()
        y.flush()
        del x, y
        np.savez(out / "stats.npz", mean=mean, std=std)
        meta = {"block_size": block_size, "form": form, "split": split, "clip_samples": int(clips.shape[1]),
                "sample_rate": dataset.sample_rate, "source": str(dataset.root)}
        (out / "gruv.json").write_text(json.dumps(meta, indent=1) + "\n")
        return GruvBlocks(out)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features) * self.std + self.mean

    def sequence_to_audio(self, features: np.ndarray) -> np.ndarray:
        """Normalised ``(n_blocks, feature_size)`` features → ``(n_blocks * block_size,)`` samples."""
        return blocks_to_audio(features_to_blocks(self.denormalize(features), self.block_size, self.form))
