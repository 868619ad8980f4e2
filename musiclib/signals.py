"""Small test signals used by the notebooks, tests and benchmarks.

Notebook: 01_sound_and_sampling.ipynb
"""
from __future__ import annotations

import numpy as np


def sine(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """``amplitude * sin(2 pi f t + phase)`` sampled at ``sample_rate`` Hz, float32 ``(samples,)``."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def midi_to_hz(note) -> np.ndarray:
    """MIDI note number to Hz (A4 = 69 = 440 Hz, twelve-tone equal temperament)."""
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69) / 12)


def chord(
    notes=(60, 64, 67),
    seconds: float = 1.0,
    sample_rate: int = 22050,
    n_harmonics: int = 6,
    seed: int = 0,
) -> np.ndarray:
    """A few harmonic tones (partials ``1/k`` in amplitude, random phases) with a soft attack and decay.

    Returns:
        float32 ``(samples,)`` with peak 0.9.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    y = np.zeros_like(t)
    for f0 in midi_to_hz(notes):
        for k in range(1, n_harmonics + 1):
            if k * f0 < sample_rate / 2:
                y += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-1.5 * t)
    y *= envelope
    return (0.9 * y / np.max(np.abs(y))).astype(np.float32)


def white_noise(seconds: float, sample_rate: int, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Gaussian white noise with standard deviation ``amplitude``, float32."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(round(seconds * sample_rate)))).astype(np.float32)


def pink_noise(seconds: float, sample_rate: int, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Noise whose power falls as ``1/f`` (spectral shaping of white noise), RMS ``amplitude``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    y = np.fft.irfft(spectrum, n=n)
    return (amplitude * y / np.sqrt(np.mean(y**2))).astype(np.float32)


def alias_frequency(frequency: float, sample_rate: float) -> float:
    """The frequency in ``[0, sample_rate / 2]`` that a sampled sine of ``frequency`` Hz is heard at.

    Sampling cannot tell ``f`` from ``f + k * sample_rate`` or from ``-f``, so the
    frequency folds back around multiples of the sampling rate.

    Notebook: 01_sound_and_sampling.ipynb (reference solution of an exercise)
    """
    folded = float(frequency) % sample_rate
    return min(folded, sample_rate - folded)


def quantization_snr_db(bits: int) -> float:
    """Theoretical SNR of a full-scale sine quantised to ``bits``: ``6.02 * bits + 1.76`` dB.

    Notebook: 01_sound_and_sampling.ipynb (reference solution of an exercise)
    """
    return 20 * np.log10(2.0) * bits + 10 * np.log10(1.5)
