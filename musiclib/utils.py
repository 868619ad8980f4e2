"""Seeding, device choice and the fast-mode switch that shrinks every run for CI.

Notebook: 00_setup.ipynb
"""
from __future__ import annotations

import contextlib
import os
import random
import sys

import numpy as np

FAST_ENV_VAR = "MUSICLIB_FAST"
SIZE_ENV_VAR = "MUSICLIB_SIZE"
RUN_SIZES = ("fast", "cpu", "gpu")


def fast_mode() -> bool:
    """True when ``MUSICLIB_FAST`` is set to 1/true/yes: tests and CI shrink every run."""
    return os.environ.get(FAST_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


def progress_interval() -> float:
    """Seconds between progress-bar updates: a tenth on a terminal, five when the bar writes to a file or pipe (a log),
    so that a long run's log keeps one line every few seconds instead of one per step."""
    return 0.1 if sys.stderr.isatty() else 5.0


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def write_text_atomically(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename: never half-written."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def current_run_size() -> str:
    """``fast``, ``cpu`` or ``gpu``: the size chosen by :func:`choose_run_size`, else fast mode, else the hardware."""
    chosen = os.environ.get(SIZE_ENV_VAR, "").strip().lower()
    if chosen in RUN_SIZES:
        return chosen
    if fast_mode():
        return "fast"
    return "gpu" if cuda_available() else "cpu"


def choose_run_size(choice: str = "auto") -> str:
    """Fix the run size for this process: the setup cell's selector in every notebook.

    ``auto`` keeps fast mode where ``MUSICLIB_FAST`` is set, takes the GPU sizes where CUDA is
    available, and is **fast** on any CPU, so that a learner on a CPU runtime does not start a long
    training unawares; ``cpu`` asks for the longer CPU sizes on purpose. ``fast`` also shrinks the
    bundled data and every default configuration (as ``MUSICLIB_FAST=1`` does).

    Returns:
        The size now in force.
    """
    choice = str(choice).strip().lower()
    if choice not in ("auto", *RUN_SIZES):
        raise ValueError(f"run size must be one of auto, {', '.join(RUN_SIZES)}; got {choice!r}")
    if choice == "auto":
        choice = "fast" if fast_mode() or not cuda_available() else "gpu"
    os.environ[SIZE_ENV_VAR] = choice
    os.environ[FAST_ENV_VAR] = "1" if choice == "fast" else "0"
    return choice


def run_size(fast, cpu, gpu=None):
    """Pick a size for this run: ``fast``, ``cpu`` or ``gpu`` after :func:`current_run_size`.

    Example: ``epochs = run_size(fast=2, cpu=30, gpu=300)``. This is how GPU cells
    switch on by themselves on Colab while CI stays small; ``gpu`` falls back to ``cpu`` when not given.
    """
    size = current_run_size()
    if size == "fast":
        return fast
    if size == "gpu" and gpu is not None:
        return gpu
    return cpu


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy, PyTorch (CPU and CUDA) and, if already imported, Keras.

    Call it once right before building each model so that runs are reproducible.
    """
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)


def evenly_spaced(total: int, at_most: int):
    """Sorted indices of at most ``at_most`` items evenly spread over ``range(total)`` (all of them if there are fewer)."""
    import numpy as np

    return np.unique(np.linspace(0, total - 1, max(0, min(at_most, total))).round().astype(int))


def get_device(prefer: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: Force a device name (e.g. ``"cpu"``); ``None`` picks automatically.
    """
    import torch

    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch CPU threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def environment_report() -> dict:
    """Versions of the main packages and the device in use, for the setup notebook."""
    import importlib.metadata as md

    report = {"python": sys.version.split()[0], "fast_mode": fast_mode(), "colab": in_colab()}
    for dist in ("numpy", "scipy", "librosa", "soundfile", "torch", "tensorflow", "tensorflow-cpu", "keras", "matplotlib"):
        try:
            report[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    report["device"] = str(get_device())
    return report
