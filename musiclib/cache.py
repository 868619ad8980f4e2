"""The one cache of what musiclib derives from a dataset: in memory for a session, on disk across them.

Everything is keyed by the dataset's *fingerprint* (its audio configuration and the
checksums in its manifest), never by its path, so a dataset rebuilt in place (new
checksums) never meets features computed from its old contents, and a moved dataset
keeps its cache. The disk cache lives in a per-user cache folder (``$MUSICLIB_CACHE``, or
the platform's user cache directory), never inside a dataset or the working folder.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, TypeVar

CACHE_ENV_VAR = "MUSICLIB_CACHE"
MEMORY_ENTRIES = 8

T = TypeVar("T")
_memory: collections.OrderedDict = collections.OrderedDict()


def cache_root() -> Path:
    """``$MUSICLIB_CACHE``, or the user cache directory (e.g. ``~/.cache/musiclib`` on Linux)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    import platformdirs

    return Path(platformdirs.user_cache_dir("musiclib", appauthor=False))


def fingerprint(dataset) -> str:
    """16 hex digits that change whenever the dataset's clips or settings do."""
    manifest = dataset.manifest
    identity = {key: manifest.get(key) for key in ("audio_config", "clip_samples", "checksums", "counts")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def memoized(dataset, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per dataset contents and ``key`` in this session (the last few are kept)."""
    slot = (fingerprint(dataset), key)
    if slot in _memory:
        _memory.move_to_end(slot)
        return _memory[slot]
    value = compute()
    _memory[slot] = value
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return value


def derived_dir(dataset, name: str, build: Callable[[Path], None]) -> Path:
    """A folder of files derived from ``dataset`` under ``name``, built by ``build(folder)`` on first use.

    The folder is built under a temporary name and renamed when complete, so an interrupted
    build is never mistaken for a finished one.
    """
    final = cache_root() / "derived" / fingerprint(dataset) / name
    if final.exists():
        return final
    building = final.with_name(f".{final.name}.{os.getpid()}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        build(building)
        os.replace(building, final)
    except OSError:
        if not final.exists():  # another process finishing first is fine; anything else is not
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final
