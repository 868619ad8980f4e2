"""GRUV-style FFT blocks (seed 002): audio → blocks → FFT features → sequences, and back.

Blocks are either the seed's back-to-back rectangular blocks (``hop = block_size``),
whose edges click once a model generates them independently, or half-overlapping
blocks under a square-root Hann window (``hop = block_size // 2``), which overlap-add
back to the signal exactly and crossfade every edge.

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


def _check_hop(block_size: int, hop: int | None) -> int:
    hop = block_size if hop is None else hop
    if hop not in (block_size, block_size // 2):
        raise ValueError(f"hop must be block_size ({block_size}, the seed's blocks) or block_size // 2 ({block_size // 2}, windowed overlap-add), got {hop}")
    return hop


def synthesis_window(block_size: int) -> np.ndarray:
    """Periodic square-root Hann: applied at analysis and synthesis, its square sums to 1 at 50 % overlap."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(block_size) / block_size)).astype(np.float32)


def to_blocks(y: np.ndarray, block_size: int, hop: int | None = None) -> np.ndarray:
    """``(..., samples)`` → ``(..., n_blocks, block_size)``.

    With ``hop = block_size`` (default) the blocks are back to back and the last one
    zero-padded. With ``hop = block_size // 2`` the signal is padded by ``hop`` at both
    ends (so its first and last samples lie under two windows too) and every block is windowed by
    :func:`synthesis_window`.
    """
    hop = _check_hop(block_size, hop)
    front = block_size - hop
    # Overlapping blocks pad both ends by `front`, so every sample lies under two windows.
    n_blocks = max(1, -(-(y.shape[-1] + 2 * front - block_size) // hop) + 1)
    pad = (n_blocks - 1) * hop + block_size - y.shape[-1] - front
    padded = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(front, pad)])
    if hop == block_size:
        return padded.reshape(*y.shape[:-1], n_blocks, block_size)
    frames = np.lib.stride_tricks.sliding_window_view(padded, block_size, axis=-1)[..., ::hop, :]
    return frames * synthesis_window(block_size)


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


def blocks_to_audio(blocks: np.ndarray, hop: int | None = None) -> np.ndarray:
    """``(n_blocks, block_size)`` → ``(samples,)``: concatenation, or windowed overlap-add for ``hop = block_size // 2``.

    The overlap-add output drops the front padding of :func:`to_blocks`, so
    ``blocks_to_audio(to_blocks(y, n, n // 2), n // 2)[:len(y)] == y``.
    """
    blocks = np.asarray(blocks, dtype=np.float32)
    block_size = blocks.shape[-1]
    hop = _check_hop(block_size, hop)
    if hop == block_size:
        return blocks.reshape(-1)
    out = np.zeros((len(blocks) - 1) * hop + block_size, dtype=np.float32)
    window = synthesis_window(block_size)
    for i, block in enumerate(blocks):
        out[i * hop : i * hop + block_size] += block * window
    return out[block_size - hop : len(out) - (block_size - hop)]


def boundary_click_ratio(y: np.ndarray, block_size: int) -> float:
    """How much larger the sample-to-sample jump is at block edges than elsewhere.

    Mean ``|y[t] - y[t-1]|`` at ``t = k * block_size`` divided by the mean over all
    other ``t``: about 1 for natural audio, much larger when blocks click.
    """
    jumps = np.abs(np.diff(np.asarray(y, dtype=np.float64)))
    edges = np.zeros(len(jumps), dtype=bool)
    edges[block_size - 1 :: block_size] = True
    if not edges.any() or edges.all():
        raise ValueError(f"need more than one block of {block_size} samples, got {len(y)} samples")
    return float(jumps[edges].mean() / (jumps[~edges].mean() + 1e-12))


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
        self.hop = self.meta.get("hop", self.block_size)
        stats = np.load(self.root / "stats.npz")
        self.mean, self.std = stats["mean"], stats["std"]
        self.x = np.load(self.root / "x.npy", mmap_mode="r")
        self.y = np.load(self.root / "y.npy", mmap_mode="r")

    @staticmethod
    def build(dataset, split: str, out: str | Path, block_size: int = 2048, form: str = "rfft", stats: tuple | None = None,
              chunk: int = 256, hop: int | None = None) -> "GruvBlocks":
        """Write the GRUV tensors for one split of an :class:`~musiclib.datasets.AudioDataset`.

        Args:
            dataset: Source dataset.
            split: ``train``, ``val`` or ``test``.
            out: Output folder.
            block_size: Samples per block (the seed's prose: 2048).
            form: ``"rfft"`` (float32) or ``"seed"`` (float64 full FFT).
            stats: ``(mean, std)`` to reuse (pass the training split's for val/test); ``None`` computes them here.
            chunk: Clips processed at a time, so memory stays bounded.
            hop: ``block_size`` (default, the seed's blocks) or ``block_size // 2`` (windowed, click-free).
        """
        hop = _check_hop(block_size, hop)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        clips = dataset.clips(split)
        n_blocks = to_blocks(np.zeros(clips.shape[1], dtype=np.float32), block_size, hop).shape[0]
        size = feature_size(block_size, form)
        dtype = np.float64 if form == "seed" else np.float32
        if stats is None:
            total = np.zeros(size)
            total_sq = np.zeros(size)
            count = 0
            for start in range(0, len(clips), chunk):
                feats = blocks_to_features(to_blocks(np.asarray(clips[start : start + chunk]), block_size, hop), form).reshape(-1, size)
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
            feats = blocks_to_features(to_blocks(np.asarray(clips[start : start + chunk]), block_size, hop), form)
            feats = ((feats - mean) / std).astype(dtype)
            x[start : start + len(feats)] = feats[:, :-1]
            y[start : start + len(feats)] = feats[:, 1:]
        x.flush()
        y.flush()
        del x, y
        np.savez(out / "stats.npz", mean=mean, std=std)
        meta = {"block_size": block_size, "hop": hop, "form": form, "split": split, "clip_samples": int(clips.shape[1]),
                "sample_rate": dataset.sample_rate, "source": str(dataset.root)}
        (out / "gruv.json").write_text(json.dumps(meta, indent=1) + "\n")
        return GruvBlocks(out)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features) * self.std + self.mean

    def sequence_to_audio(self, features: np.ndarray) -> np.ndarray:
        """Normalised ``(n_blocks, feature_size)`` features → samples (concatenated or overlap-added)."""
        return blocks_to_audio(features_to_blocks(self.denormalize(features), self.block_size, self.form), self.hop)
