"""Set-up shared by every pytest run in this repository (unit tests and notebooks).

Each pytest-xdist worker (`make test` runs two) gets its own numba cache folder, inherited by the
notebook kernels it starts. librosa's numba functions cache their machine code beside the package by
default, so two workers wrote and read one cache at once; in one clean-clone run a notebook kernel then
crashed with a segfault inside librosa's pYIN, just after the other worker had written that function's
cache. Separate folders mean no process ever reads a cache entry another one is writing.
"""
import os
import tempfile

_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker:
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"musiclib-numba-{os.getpid()}-{_worker}"))
