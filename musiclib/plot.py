"""Plots with labelled axes: waveforms in seconds, spectrograms in seconds and Hz, piano rolls in seconds and note names.

Notebooks: 01_sound_and_sampling.ipynb, 03_stft.ipynb, 04_mel_spectrograms.ipynb, 14_notes.ipynb
"""
from __future__ import annotations

import matplotlib
import numpy as np

from musiclib import dsp


def _axes(ax, figsize=(8, 3)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def waveform(y: np.ndarray, sample_rate: int, ax=None, title: str | None = None, **kwargs):
    """Plot ``(samples,)`` against time in seconds. Returns the axes."""
    ax = _axes(ax)
    t = np.arange(len(y)) / sample_rate
    ax.plot(t, y, linewidth=0.8, **kwargs)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(0, t[-1] if len(t) else 1)
    if title:
        ax.set_title(title)
    return ax


def spectrogram(
    spec_db: np.ndarray,
    sample_rate: int,
    hop_length: int,
    ax=None,
    title: str | None = None,
    mel: bool = False,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    colorbar: bool = True,
    cmap: str = "magma",
    units: str = "dB",
):
    """Show a dB spectrogram with time (s) on x and frequency (Hz) on y.

    Args:
        spec_db: ``(n_bins, n_frames)``: linear-frequency bins from an STFT, or mel bands when ``mel``.
        sample_rate: Hz.
        hop_length: Samples between frames (sets the time axis).
        mel: Rows are mel bands from ``fmin`` to ``fmax``; the y ticks then show their centre frequencies.
        units: Colour-bar label, e.g. ``"dB"`` or ``"ln"`` for natural-log features.
    """
    ax = _axes(ax)
    n_bins, n_frames = spec_db.shape
    seconds = n_frames * hop_length / sample_rate
    if mel:
        fmax = sample_rate / 2 if fmax is None else fmax
        centres = dsp.mel_frequencies(n_bins + 2, fmin, fmax, htk)[1:-1]
        image = ax.imshow(spec_db, origin="lower", aspect="auto", extent=(0, seconds, 0, n_bins), cmap=cmap)
        ticks = np.linspace(0, n_bins - 1, 6).astype(int)
        ax.set_yticks(ticks + 0.5)
        ax.set_yticklabels([f"{centres[i]:.0f}" for i in ticks])
        ax.set_ylabel("frequency (Hz, mel-spaced)")
    else:
        image = ax.imshow(spec_db, origin="lower", aspect="auto", extent=(0, seconds, 0, sample_rate / 2), cmap=cmap)
        ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, format=f"%+.0f {units}")
    return ax


def piano_roll(notes, ax=None, title: str | None = None, seconds: float | None = None, color: str = "C0", label: str | None = None):
    """Notes (:class:`musiclib.synth.Note`) as bars: time in seconds across, pitch up, the C of each octave named. Returns the axes."""
    import librosa
    from matplotlib.patches import Rectangle

    ax = _axes(ax)
    for i, note in enumerate(notes):
        ax.add_patch(Rectangle((note.onset, note.pitch - 0.4), note.duration, 0.8, color=color, alpha=0.85, label=label if i == 0 else None))
    pitches = [note.pitch for note in notes] or [60]
    low, high = int(min(pitches)) - 2, int(max(pitches)) + 2
    ax.set_ylim(low, high)
    ax.set_xlim(0, seconds if seconds is not None else max([n.onset + n.duration for n in notes] or [1.0]))
    octaves = [p for p in range(low, high + 1) if p % 12 == 0]
    ax.set_yticks(octaves, [librosa.midi_to_note(p) for p in octaves])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return ax


def filterbank(weights: np.ndarray, sample_rate: int, ax=None, title: str | None = "mel filterbank"):
    """Plot each row of an ``(n_filters, n_freqs)`` filterbank against frequency in Hz."""
    ax = _axes(ax)
    freqs = np.linspace(0, sample_rate / 2, weights.shape[1])
    ax.plot(freqs, weights.T, linewidth=0.8)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("weight")
    if title:
        ax.set_title(title)
    return ax


def use_headless_backend_if_needed() -> None:
    """Select Agg when there is no display (scripts, CI); notebooks keep their inline backend."""
    import os
    import sys

    if "ipykernel" not in sys.modules and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
