"""The dataset directory: a streaming writer and a memory-mapped reader.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from musiclib.config import AudioConfig

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class DatasetError(ValueError):
    """A dataset cannot be built or read; the message says which path and what to do."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def split_clips(y: np.ndarray, clip_samples: int, min_rms: float = 1e-3) -> tuple[np.ndarray, int]:
    """Cut ``y`` into non-overlapping clips, dropping the partial last one and near-silent clips.

    Returns:
        ``(clips, n_silent)``: ``(n_clips, clip_samples)`` float32 and the number of clips dropped as silent.
    """
    n = len(y) // clip_samples
    clips = np.asarray(y[: n * clip_samples], dtype=np.float32).reshape(n, clip_samples)
    loud = np.sqrt(np.mean(clips.astype(np.float64) ** 2, axis=1)) >= min_rms
    return clips[loud], int(n - loud.sum())


def _read_npy_header(fh) -> tuple[int, ...]:
    """The shape of the float32 C-ordered ``.npy`` file ``fh`` (left at the start of its data)."""
    version = np.lib.format.read_magic(fh)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(fh)
    if dtype != np.float32 or fortran_order:
        raise ValueError(f"{fh.name}: expected C-ordered float32 rows, found {dtype} (fortran order {fortran_order})")
    return shape


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start`` to ``stop`` of a float32 ``.npy`` file, read with plain reads (see :func:`read_row_chunks`)."""
    with open(path, "rb") as fh:
        shape = _read_npy_header(fh)
        out = np.empty((max(0, min(stop, shape[0]) - start), *shape[1:]), dtype=np.float32)
        fh.seek(start * out[0].nbytes if len(out) else 0, os.SEEK_CUR)
        fh.readinto(memoryview(out).cast("B"))
    return out


def read_rows_at(path: Path, indices, row_name: str = "row") -> np.ndarray:
    """The rows of a float32 ``.npy`` file at ``indices``, read alone: memory holds them and nothing around them
    (a memory map would also map the pages the system reads ahead around each). An index out of range raises
    ``IndexError`` naming the file and the ``row_name`` (e.g. "clip")."""
    with open(path, "rb") as fh:
        shape = _read_npy_header(fh)
        start = fh.tell()
        out = np.empty((len(indices), *shape[1:]), dtype=np.float32)
        for row, index in enumerate(indices):
            if not 0 <= index < shape[0]:
                raise IndexError(f"{path}: {row_name} {index} of {shape[0]}")
            fh.seek(start + int(index) * out[row].nbytes)
            fh.readinto(memoryview(out[row]).cast("B"))
    return out


def take_rows(array: np.ndarray, indices) -> np.ndarray:
    """``array[indices]`` in memory; from a whole memory-mapped ``.npy`` file (what ``np.load(mmap_mode="r")`` gives),
    the rows are read alone (:func:`read_rows_at`), so that a long training run does not map its whole data file."""
    if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous and array.dtype == np.float32:
        return read_rows_at(Path(array.filename), indices)
    return np.asarray(array[indices])


def read_row_chunks(path: Path, chunk: int) -> Iterator[np.ndarray]:
    """The rows of a float32 ``.npy`` file, ``chunk`` at a time, read with plain reads.

    A memory map read end to end keeps every page it touched in the process's resident memory;
    these reads keep one chunk.
    """
    with open(path, "rb") as fh:
        shape = _read_npy_header(fh)
        for start in range(0, shape[0], chunk):
            out = np.empty((min(chunk, shape[0] - start), *shape[1:]), dtype=np.float32)
            fh.readinto(memoryview(out).cast("B"))
            yield out


class NpyAppender:
    """Append rows to a raw file, then wrap it as ``.npy`` without holding it in memory."""

    def __init__(self, path: Path, row_shape: tuple[int, ...]):
        self.path = path
        self.raw = path.with_suffix(".raw")
        self.row_shape = row_shape
        self.rows = 0
        self.fh = open(self.raw, "wb")

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        assert rows.shape[1:] == self.row_shape, (rows.shape, self.row_shape)
        self.fh.write(rows.tobytes())
        self.rows += len(rows)

    def finish(self) -> None:
        self.fh.close()
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (self.rows, *self.row_shape)}
        with open(self.path, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
            with open(self.raw, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
        self.raw.unlink()


class _Staging:
    """Clips of several sources held on disk until their splits are decided (see ``write_recordings``)."""

    def __init__(self, folder: Path, clip_samples: int):
        self.appender = NpyAppender(folder / "staged.npy", (clip_samples,))
        self.sources: list[tuple[str, int, int]] = []

    def add(self, name: str, clips: np.ndarray) -> None:
        self.sources.append((name, self.appender.rows, len(clips)))
        self.appender.append(clips)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.sources]

    def read(self) -> Iterator[tuple[str, np.ndarray]]:
        self.appender.finish()
        for name, first, n in self.sources:
            yield name, read_rows(self.appender.path, first, first + n)

    def remove(self) -> None:
        self.appender.path.unlink(missing_ok=True)


class DatasetWriter:
    """Stream clips into a new dataset directory; nothing is kept in memory beyond one file.

    The directory is built under a temporary name and renamed at the end, so a
    crash never leaves a half-written dataset behind.

    Args:
        out: Destination directory (must not exist, or be empty).
        config: The audio configuration of the clips.
        clip_seconds: Clip length in seconds.
        description: Free text stored in the manifest.
    """

    def __init__(self, out: str | Path, config: AudioConfig, clip_seconds: float, description: str = ""):
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()):
            raise DatasetError(f"{self.out}: folder exists and is not empty. Choose a new output folder or delete this one.")
        self.tmp = self.out.with_name(f".{self.out.name}.building")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.config = config
        self.clip_samples = int(round(clip_seconds * config.sample_rate))
        self.clip_seconds = clip_seconds
        self.description = description
        self.appenders = {s: NpyAppender(self.tmp / f"clips_{s}.npy", (self.clip_samples,)) for s in SPLITS}
        self.labels: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self.sources: list[dict] = []
        self.skipped: list[dict] = []

    def add(self, split: str, clips: np.ndarray, source: str, labels: list[dict] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        first = self.appenders[split].rows
        self.appenders[split].append(clips)
        if labels is not None:
            if len(labels) != len(clips):
                raise ValueError("one label dict per clip")
            self.labels[split].extend(labels)
        self.sources.append({"source": source, "split": split, "first_clip": first, "n_clips": int(len(clips))})

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})

    def staging(self) -> _Staging:
        """A place beside the splits for clips whose split is decided once every source is decoded."""
        return _Staging(self.tmp, self.clip_samples)

    def abort(self) -> None:
        """Remove everything written so far; the destination is left as it was."""
        for appender in self.appenders.values():
            appender.fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @contextlib.contextmanager
    def cleanup_on_error(self):
        """Abort the dataset if the block raises (including Ctrl-C), so no half-made folder is left."""
        try:
            yield self
        except BaseException:
            self.abort()
            raise

    def finish(self, extra: dict | None = None) -> "AudioDataset":
        for appender in self.appenders.values():
            appender.finish()
        counts = {s: self.appenders[s].rows for s in SPLITS}
        if counts["train"] == 0:
            shutil.rmtree(self.tmp)
            raise DatasetError(
                f"{self.out}: no training clips could be made ({len(self.skipped)} sources skipped). "
                f"Every clip is {self.clip_seconds} s long: give longer audio or a shorter --clip-seconds."
            )
        empty = [s for s in SPLITS if counts[s] == 0]
        if empty:
            shutil.rmtree(self.tmp)
            n_sources = len({source["source"] for source in self.sources})
            raise DatasetError(
                f"{self.out}: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty: only {n_sources} "
                f"source(s) gave clips ({len(self.skipped)} skipped), and evaluation needs held-out clips. Give three or more "
                f"recordings, or one of at least {3 * self.clip_seconds:g} s, or a shorter --clip-seconds."
            )
        files = {}
        for s in SPLITS:
            files[f"clips_{s}.npy"] = sha256_file(self.tmp / f"clips_{s}.npy")
            if any(self.labels[s]):
                path = self.tmp / f"labels_{s}.json"
                path.write_text(json.dumps(self.labels[s], sort_keys=True) + "\n")
                files[path.name] = sha256_file(path)
        manifest = {
            "format_version": FORMAT_VERSION,
            "description": self.description,
            "audio_config": self.config.to_dict(),
            "clip_seconds": self.clip_seconds,
            "clip_samples": self.clip_samples,
            "counts": counts,
            "checksums": files,
            "sources": self.sources,
            "skipped": self.skipped,
            **(extra or {}),
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if self.skipped:
            lines = [f"{s['source']}: {s['reason']}" for s in self.skipped]
            (self.tmp / "skipped.txt").write_text("\n".join(lines) + "\n")
        if self.out.exists():
            self.out.rmdir()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.out)
        return AudioDataset(self.out)


class AudioDataset:
    """Read a dataset directory: audio config, clips per split (memory-mapped) and labels.

    Args:
        root: A directory written by :class:`DatasetWriter` (``musiclib prepare`` or a bundled builder).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if not manifest.exists():
            raise DatasetError(
                f"{self.root}: not a musiclib dataset (no {MANIFEST}). Build one with `musiclib prepare SRC {self.root}`."
            )
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{manifest}: format version {self.manifest.get('format_version')} is not {FORMAT_VERSION}; rebuild the dataset.")
        self.config = AudioConfig.from_dict(self.manifest["audio_config"])
        self.clip_samples = int(self.manifest["clip_samples"])

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def clips(self, split: str = "train", mmap: bool = True) -> np.ndarray:
        """``(n_clips, clip_samples)`` float32, memory-mapped read-only by default (:meth:`read_clips` for a few scattered clips)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.load(self.root / f"clips_{split}.npy", mmap_mode="r" if mmap else None)

    def read_clips(self, split: str, indices) -> np.ndarray:
        """``(len(indices), clip_samples)`` float32: the clips at ``indices``, read from the file without mapping it.

        For a few clips scattered over a large split: only their bytes are read, so memory
        does not grow with the split (a memory map would map the pages read ahead around them).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return read_rows_at(self.root / f"clips_{split}.npy", indices, row_name="clip")

    def clip_chunks(self, split: str, chunk: int = 256) -> Iterator[np.ndarray]:
        """The clips of a split in order, ``chunk`` at a time, read from the file: memory stays that of one chunk."""
        return read_row_chunks(self.root / f"clips_{split}.npy", chunk)

    def heldout_clips(self) -> np.ndarray:
        """The val and test clips together, ``(n, clip_samples)`` float32 in memory: what evaluation compares against."""
        return np.concatenate([np.asarray(self.clips("val")), np.asarray(self.clips("test"))])

    def labels(self, split: str = "train") -> list[dict]:
        path = self.root / f"labels_{split}.json"
        return json.loads(path.read_text()) if path.exists() else []

    def verify(self) -> None:
        """Recompute every checksum; raise :class:`DatasetError` on a mismatch."""
        for name, expected in self.manifest["checksums"].items():
            if sha256_file(self.root / name) != expected:
                raise DatasetError(f"{self.root / name}: checksum mismatch; the file changed since it was built. Rebuild the dataset.")

    def seconds(self, split: str = "train") -> float:
        return self.manifest["counts"][split] * self.manifest["clip_seconds"]

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.manifest['counts'][s]}" for s in SPLITS)
        return f"AudioDataset({self.root}, {self.manifest['clip_seconds']} s clips at {self.sample_rate} Hz: {counts})"
