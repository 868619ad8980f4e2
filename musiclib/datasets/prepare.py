"""`musiclib prepare`: any folder of audio files → a dataset, streaming one file at a time.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from musiclib import audio
from musiclib.config import AudioConfig
from musiclib.datasets.store import SPLITS, AudioDataset, DatasetError, DatasetWriter, split_clips
from musiclib.utils import progress_interval


def find_audio_files(src: str | Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every wav/flac/ogg/mp3 below ``src`` (nested folders too), sorted; hidden files and folders are left out.

    Symbolic links to folders are not followed (no loops); a link to a file is read like the file.

    Returns:
        ``(files, rejected)``: the audio files, and ``(name relative to src, reason)`` for paths that have
        an audio extension but cannot be a file to read (a folder, a broken or looping link).
    """
    src = Path(src)
    if not src.exists():
        raise DatasetError(f"{src}: no such folder. Check the path.")
    if not src.is_dir():
        raise DatasetError(f"{src}: is a file; `musiclib prepare` takes a folder of audio files.")
    files, rejected, anything = [], [], False
    for folder, subfolders, names in os.walk(src, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in [*names, *subfolders]:
            anything = True
            path = Path(folder, name)
            if name.startswith(".") or not audio.is_audio_file(path):
                continue
            relative = str(path.relative_to(src))
            if path.is_file():
                files.append(path)
            elif path.is_symlink():
                rejected.append((relative, "is a broken or looping symbolic link; point it at an audio file or remove it"))
            else:
                rejected.append((relative, "is a folder named like an audio file; its contents are read as a folder"))
    if not files:
        what = "has no wav, flac, ogg or mp3 files" if anything else "is empty"
        raise DatasetError(f"{src}: {what}. Put audio files in it (nested folders are fine) and run again.")
    return sorted(files), sorted(rejected)


def assign_splits(names: list[str], val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, str]:
    """Deterministic file-level split: order names by a hash, then cut test, val and train.

    Whole files go to one split, so no recording leaks from training into evaluation.
    Needs at least three names; each of val and test gets at least one.
    """
    order = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    n_test = max(1, round(test_fraction * len(order)))
    n_val = max(1, round(val_fraction * len(order)))
    split = {}
    for i, name in enumerate(order):
        split[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def time_split(n_clips: int, val_fraction: float = 0.1, test_fraction: float = 0.1) -> list[str]:
    """Split one recording's clips in time: the last ones for test, the ones before for val."""
    n_test = max(1, round(test_fraction * n_clips)) if n_clips >= 3 else 0
    n_val = max(1, round(val_fraction * n_clips)) if n_clips >= 3 else 0
    n_train = n_clips - n_val - n_test
    return ["train"] * n_train + ["val"] * n_val + ["test"] * n_test


def _cut(source, sample_rate: int, clip_samples: int) -> tuple[np.ndarray, int, float] | str:
    """A recording (a path, or samples at ``sample_rate``) → ``(clips, n_silent, seconds)``, or why it cannot be read."""
    if isinstance(source, np.ndarray):
        y = source
    else:
        try:
            y, _ = audio.load(source, sample_rate=sample_rate, mono=True)
        except (audio.AudioFileError, FileNotFoundError) as err:
            return str(err)
    clips, n_silent = split_clips(audio.normalize_peak(y, 0.95), clip_samples)
    return clips, n_silent, len(y) / sample_rate


def _in_order(work, recordings: Iterable[tuple[str, object]], workers: int) -> Iterator[tuple[str, object]]:
    """``(name, work(source))`` for each recording, in order; with ``workers`` > 1 computed by that many processes,
    at most two per process ahead of the one being written (so memory holds a few files, not the folder)."""
    if workers <= 1:
        yield from ((name, work(source)) for name, source in recordings)
        return
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        for name, source in recordings:
            pending.append((name, pool.submit(work, source)))
            if len(pending) >= 2 * workers:
                name_done, future = pending.popleft()
                yield name_done, future.result()
        while pending:
            name_done, future = pending.popleft()
            yield name_done, future.result()


def write_recordings(
    writer: DatasetWriter,
    recordings: Iterable[tuple[str, object]],
    names: list[str],
    splits: dict[str, str] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> str:
    """Load, cut and store each recording; unreadable, too-short or silent ones are skipped with a reason.

    Args:
        writer: Destination.
        recordings: ``(name, source)`` pairs; ``source`` is a path or a ``(samples,)`` array at the writer's rate.
        names: All names, for the progress bar total.
        splits: ``name → split`` decided beforehand (a corpus's own split), or ``None``: decide after
            decoding, among the recordings that gave clips, so that a file that fails to decode or is
            silent cannot leave a split empty. Then three or more such recordings are split by file
            (:func:`assign_splits`), fewer each in time (:func:`time_split`).
        workers: Processes that decode and cut files at once; the dataset written is the same for any number.

    Returns:
        How the clips were split: ``"given"``, ``"file"`` or ``"time"``.
    """
    sr = writer.config.sample_rate
    staged = writer.staging() if splits is None else None
    cut = functools.partial(_cut, sample_rate=sr, clip_samples=writer.clip_samples)
    for name, result in tqdm(_in_order(cut, recordings, workers), total=len(names), desc="preparing", unit="file",
                             mininterval=progress_interval(), disable=not progress):
        if isinstance(result, str):
            writer.skip(name, result)
            continue
        clips, n_silent, seconds = result
        if len(clips) == 0:
            reason = f"shorter than one clip ({seconds:.2f} s < {writer.clip_seconds} s)" if n_silent == 0 else "silent"
            writer.skip(name, reason)
            continue
        if staged is None:
            writer.add(splits[name], clips, name)
        else:
            staged.add(name, clips)
    if staged is None:
        return "given"
    usable = staged.names()
    by_file = assign_splits(usable) if len(usable) >= 3 else None
    for name, clips in staged.read():
        if by_file is not None:
            writer.add(by_file[name], clips, name)
        else:
            labels = np.array(time_split(len(clips)))
            for split in SPLITS:
                if np.any(labels == split):
                    writer.add(split, clips[labels == split], name)
    staged.remove()
    return "file" if by_file is not None else "time"


def prepare_folder(
    src: str | Path,
    out: str | Path,
    config: AudioConfig | None = None,
    clip_seconds: float = 1.0,
    progress: bool = True,
    workers: int = 1,
) -> AudioDataset:
    """Turn a folder of mp3/wav/flac/ogg (nested) into a dataset: mono, resampled, normalised clips.

    Reads one file at a time, so peak memory does not grow with the folder. Files
    that cannot be read are skipped and listed in ``skipped.txt`` with the reason.
    Nothing in ``src`` is modified, and nothing is left in ``out`` if it fails. With
    three or more files that give clips, whole files go to train/val/test; with
    fewer, each file is split in time. ``workers`` processes decode files at once (the
    dataset is the same whatever their number).

    Raises:
        DatasetError: missing/empty folder, no audio in it, or too little usable audio for a
            training, a validation and a test split.
    """
    config = config or AudioConfig()
    src = Path(src).resolve()
    out = Path(out).resolve()
    if out == src or src in out.parents:
        raise DatasetError(f"{out}: the output folder must not be inside the source folder {src}; choose another place.")
    files, rejected = find_audio_files(src)
    writer = DatasetWriter(out, config, clip_seconds, description=f"prepared from {src}")
    with writer.cleanup_on_error():
        for name, reason in rejected:
            writer.skip(name, reason)
        # Headers only (cheap): leave out unreadable and too-short files before decoding.
        usable = []
        for path in files:
            name = str(path.relative_to(src))
            try:
                info = audio.read_info(path)
            except (audio.AudioFileError, FileNotFoundError) as err:
                writer.skip(name, str(err))
                continue
            if info.frames / info.samplerate < clip_seconds:
                writer.skip(name, f"shorter than one clip ({info.frames / info.samplerate:.2f} s < {clip_seconds} s)")
                continue
            usable.append((name, path))
        split_by = write_recordings(writer, usable, [name for name, _ in usable], progress=progress, workers=workers)
        return writer.finish(extra={"source_folder": str(src), "split_by": split_by})
