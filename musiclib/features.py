"""Features computed with one :class:`~musiclib.config.AudioConfig`: the log-mel every model shares.

The log-mel used throughout is ``ln(max(F |STFT(y)|, 1e-5))`` with ``F`` the
mel filterbank applied to *magnitudes* (power 1), as in MelGAN. Its inverse
(up to the floor) goes back through the filterbank's pseudo-inverse and
Griffin-Lim, or through a neural vocoder.

Notebook: 04_mel_spectrograms.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib import dsp
from musiclib.config import AudioConfig

LOG_FLOOR = 1e-5


def filterbank(config: AudioConfig) -> np.ndarray:
    """The ``(n_mels, n_freqs)`` mel filterbank described by ``config``."""
    return dsp.mel_filterbank(
        config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, config.mel_htk, config.mel_norm
    )


def magnitude(y: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``|STFT(y)|``, ``(n_freqs, n_frames)`` float32."""
    spec = dsp.stft(np.asarray(y, dtype=np.float32), n_fft=config.n_fft, hop_length=config.hop_length, center=config.center)
    return np.abs(spec)


def log_mel(y: np.ndarray, config: AudioConfig) -> np.ndarray:
    """Natural-log mel magnitude spectrogram, ``(n_mels, n_frames)`` float32."""
    return np.log(np.maximum(filterbank(config) @ magnitude(y, config), LOG_FLOOR)).astype(np.float32)


def log_linear(y: np.ndarray, config: AudioConfig) -> np.ndarray:
    """Natural-log linear-frequency magnitude, ``(n_freqs, n_frames)`` float32."""
    return np.log(np.maximum(magnitude(y, config), LOG_FLOOR)).astype(np.float32)


def log_mel_to_magnitude(log_mel_spec: np.ndarray, config: AudioConfig) -> np.ndarray:
    """Undo the log and the mel projection (least squares), giving ``(n_freqs, n_frames)`` magnitudes."""
    return dsp.mel_to_linear(np.exp(np.asarray(log_mel_spec, dtype=np.float32)), filterbank(config))


INITIAL_PHASE = "time-integrated"
"""Where every model's Griffin-Lim starts: each bin's phase integrated along time from the log-magnitude
(:func:`musiclib.dsp.time_integrated_phase`). On held-out chorales it keeps more of the notes than 32 iterations from
random phases, at the same cost (``musiclib compare``'s ceiling table, notebook 09)."""


def magnitude_to_audio(mag: np.ndarray, config: AudioConfig, n_iter: int = 32, seed: int = 0, length: int | None = None,
                       initial_phase: str = INITIAL_PHASE) -> np.ndarray:
    """Griffin-Lim (with momentum 0.99) from a linear magnitude spectrogram (or a batch of them), starting from
    :data:`INITIAL_PHASE`."""
    return dsp.griffin_lim(mag, n_iter=n_iter, hop_length=config.hop_length, center=config.center, seed=seed, length=length,
                           initial_phase=initial_phase)


def log_mel_to_audio(log_mel_spec: np.ndarray, config: AudioConfig, n_iter: int = 32, seed: int = 0, length: int | None = None,
                     initial_phase: str = INITIAL_PHASE) -> np.ndarray:
    """Log-mel to waveform: exp, pseudo-inverse of the filterbank, then Griffin-Lim (from ``initial_phase``).

    Notebook: 04_mel_spectrograms.ipynb (this is the reference solution of its exercise)
    """
    return magnitude_to_audio(log_mel_to_magnitude(log_mel_spec, config), config, n_iter=n_iter, seed=seed, length=length,
                              initial_phase=initial_phase)


def log_linear_to_audio(log_spec: np.ndarray, config: AudioConfig, n_iter: int = 32, seed: int = 0, length: int | None = None) -> np.ndarray:
    """Log-linear magnitude to waveform with Griffin-Lim."""
    return magnitude_to_audio(np.exp(np.asarray(log_spec, dtype=np.float32)), config, n_iter=n_iter, seed=seed, length=length)
