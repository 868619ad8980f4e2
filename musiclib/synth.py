"""A small synthesiser that renders note events to audio: the bundled music is made with it.

Timbres: additive harmonic partials with an ADSR envelope (``organ``, ``flute``,
``reed``), a Karplus-Strong plucked string (``pluck``) and a noise drum (``drum``).

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal

from musiclib.signals import midi_to_hz


@dataclasses.dataclass(frozen=True)
class Note:
    """One note event.

    Attributes:
        onset: Start time in seconds.
        duration: Length in seconds (before the release).
        pitch: MIDI note number (60 = middle C).
        velocity: Loudness in (0, 1].
    """

    onset: float
    duration: float
    pitch: float
    velocity: float = 0.8


@dataclasses.dataclass(frozen=True)
class Timbre:
    """An additive timbre: relative partial amplitudes and an ADSR envelope (seconds, sustain level)."""

    partials: tuple[float, ...]
    attack: float = 0.02
    decay: float = 0.1
    sustain: float = 0.7
    release: float = 0.1
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0


TIMBRES: dict[str, Timbre] = {
    "organ": Timbre(partials=(1.0, 0.6, 0.35, 0.25, 0.15, 0.1, 0.06, 0.04), attack=0.01, decay=0.05, sustain=0.9, release=0.05),
    "flute": Timbre(partials=(1.0, 0.25, 0.08, 0.03), attack=0.06, decay=0.1, sustain=0.8, release=0.12, vibrato_hz=5.0, vibrato_cents=12.0),
    "reed": Timbre(partials=(1.0, 0.05, 0.5, 0.05, 0.3, 0.05, 0.2, 0.05, 0.12), attack=0.03, decay=0.1, sustain=0.75, release=0.08),
}
INSTRUMENTS = tuple(TIMBRES) + ("pluck", "drum")


def adsr(n_samples: int, sample_rate: int, attack: float, decay: float, sustain: float, release: float, hold_samples: int) -> np.ndarray:
    """Attack-decay-sustain-release envelope of ``n_samples``; the release starts at ``hold_samples``."""
    t = np.arange(n_samples) / sample_rate
    held = t < hold_samples / sample_rate
    env = np.where(t < attack, t / max(attack, 1e-6), sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-6)))
    level_at_release = env[min(hold_samples, n_samples) - 1] if hold_samples > 0 else 0.0
    after = level_at_release * np.exp(-(t - hold_samples / sample_rate) / max(release, 1e-6) * 4)
    return np.where(held, env, after)


def render_additive(note: Note, timbre: Timbre, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One note of an additive timbre, including its release tail."""
    hold = int(round(note.duration * sample_rate))
    n = hold + int(round(timbre.release * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = float(midi_to_hz(note.pitch))
    if timbre.vibrato_hz:
        cents = timbre.vibrato_cents * np.sin(2 * np.pi * timbre.vibrato_hz * t)
        phase0 = 2 * np.pi * np.cumsum(f0 * 2 ** (cents / 1200)) / sample_rate
    else:
        phase0 = 2 * np.pi * f0 * t
    y = np.zeros(n)
    for k, amp in enumerate(timbre.partials, start=1):
        if k * f0 >= sample_rate / 2:
            break
        y += amp * np.sin(k * phase0 + rng.uniform(0, 2 * np.pi))
    env = adsr(n, sample_rate, timbre.attack, timbre.decay, timbre.sustain, timbre.release, hold)
    return note.velocity * y * env / sum(timbre.partials)


def render_pluck(note: Note, sample_rate: int, rng: np.random.Generator, brightness: float = 0.5) -> np.ndarray:
    """Karplus-Strong plucked string: a burst of noise in a delay line with an averaging low-pass.

    The loop ``y[n] = x[n] + g (y[n-P] + y[n-P-1]) / 2`` is an IIR filter, so
    ``scipy.signal.lfilter`` runs it at C speed.
    """
    n = int(round((note.duration + 0.3) * sample_rate))
    period = max(2, int(round(sample_rate / float(midi_to_hz(note.pitch)))))
    burst = np.zeros(n)
    excitation = rng.uniform(-1, 1, period)
    burst[:period] = scipy.signal.lfilter([brightness], [1, brightness - 1], excitation)
    gain = 0.996
    denominator = np.zeros(period + 2)
    denominator[0] = 1.0
    denominator[period] = -gain / 2
    denominator[period + 1] = -gain / 2
    y = scipy.signal.lfilter([1.0], denominator, burst)
    hold = int(round(note.duration * sample_rate))
    fade = np.ones(n)
    fade[hold:] = np.exp(-np.arange(n - hold) / (0.05 * sample_rate))
    return note.velocity * y * fade / (np.max(np.abs(y)) + 1e-9)


def render_drum(note: Note, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A noise drum: band-passed noise plus a falling sine thump, centred on the note's pitch."""
    n = int(round(max(note.duration, 0.25) * sample_rate))
    t = np.arange(n) / sample_rate
    centre = float(np.clip(midi_to_hz(note.pitch) * 4, 200, 0.4 * sample_rate))
    b, a = scipy.signal.butter(2, [centre / 2, min(centre * 2, 0.45 * sample_rate)], btype="bandpass", fs=sample_rate)
    noise = scipy.signal.lfilter(b, a, rng.standard_normal(n)) * np.exp(-t / 0.05)
    thump = np.sin(2 * np.pi * float(midi_to_hz(note.pitch)) * (1 + 2 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.12)
    y = 0.6 * noise / (np.max(np.abs(noise)) + 1e-9) + thump
    return note.velocity * y / (np.max(np.abs(y)) + 1e-9)


def render_note(note: Note, instrument: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Render one note with a named instrument (see ``INSTRUMENTS``)."""
    if instrument in TIMBRES:
        return render_additive(note, TIMBRES[instrument], sample_rate, rng)
    if instrument == "pluck":
        return render_pluck(note, sample_rate, rng)
    if instrument == "drum":
        return render_drum(note, sample_rate, rng)
    raise ValueError(f"unknown instrument {instrument!r}; choose one of {INSTRUMENTS}")


def render(notes, instrument: str, sample_rate: int = 22050, seed: int = 0, seconds: float | None = None) -> np.ndarray:
    """Render note events to a float32 signal.

    Args:
        notes: Iterable of :class:`Note`.
        instrument: A name from ``INSTRUMENTS``.
        sample_rate: Hz.
        seed: Seeds the random phases and noise, so the same call gives the same samples.
        seconds: Output length; default ends after the last release.

    Returns:
        ``(samples,)`` float32 (not normalised: sum of the notes).
    """
    rng = np.random.default_rng(seed)
    rendered = [(note, render_note(note, instrument, sample_rate, rng)) for note in notes]
    end = max((int(round(n.onset * sample_rate)) + len(y) for n, y in rendered), default=0)
    total = int(round(seconds * sample_rate)) if seconds is not None else end
    out = np.zeros(max(total, end))
    for note, y in rendered:
        start = int(round(note.onset * sample_rate))
        out[start : start + len(y)] += y
    return out[:total].astype(np.float32)
