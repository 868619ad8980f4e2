"""Differentiable harmonic-plus-noise synthesis (DDSP, Engel et al. 2020): the sound-making half of a learned synthesiser.

A voice is a fundamental frequency :math:`f_0(t)` and a set of harmonic amplitudes :math:`a_k(t)`, controls given at
a frame rate (one frame every ``hop`` samples). The oscillator bank plays

.. math::  y(n) = \\sum_v \\sum_{k=1}^{K} a_{v,k}(n) \\sin \\phi_{v,k}(n), \\qquad
           \\phi_{v,k}(n) = 2\\pi k \\sum_{m \\le n} f_{0,v}(m) / f_s,

with the controls upsampled to the sample rate and every harmonic at or above Nyquist silenced. The phase is the
integral of the frequency, so pitch is exact and continuous across frames by construction: no phase to estimate,
no Griffin-Lim. Breath, bow and consonants are noise: white noise filtered, frame by frame, by a magnitude response
given in ``n_bands`` bands spread evenly from 0 Hz to Nyquist (applied in the STFT domain and overlap-added).
Notes become voices' controls with :func:`voice_controls`: each note takes a free voice from its onset to the end of
its release.

Every function takes and returns torch tensors and is differentiable in its controls, so a network that predicts
them can be trained through the sound with a spectral loss (:func:`musiclib.losses.multi_resolution_stft_loss`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib.signals import midi_to_hz
from musiclib.synth import Note


def interpolate(values: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """``values`` ``(..., L)`` read at fractional indices ``position`` ``(M,)`` → ``(..., M)``: linearly between neighbours,
    the last value held past the end."""
    last, position = values.shape[-1] - 1, position.to(values.device)
    left = position.floor().long().clamp(0, last)
    right = (left + 1).clamp(max=last)
    weight = (position - left.to(position.dtype)).clamp(0.0, 1.0).to(values.dtype)
    return values[..., left] * (1 - weight) + values[..., right] * weight


def upsample(controls: torch.Tensor, hop: int, n_samples: int) -> torch.Tensor:
    """``(..., T)`` frame-rate controls (frame ``t`` at sample ``t * hop``) → ``(..., n_samples)`` by linear
    interpolation; after the last frame the last value is held."""
    frames = controls.shape[-1]
    if frames == 1:
        return controls.expand(*controls.shape[:-1], n_samples)
    span = (frames - 1) * hop + 1  # samples from the first frame to the last, each frame landing on its sample
    flat = controls.reshape(1, -1, frames)
    up = torch.nn.functional.interpolate(flat, size=span, mode="linear", align_corners=True)
    up = torch.cat([up, up[..., -1:].expand(*up.shape[:-1], max(0, n_samples - span))], dim=-1)[..., :n_samples]
    return up.reshape(*controls.shape[:-1], n_samples)


def oscillator_bank(f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: int, hop: int, n_samples: int) -> torch.Tensor:
    """The sum of every voice's harmonics.

    Args:
        f0: ``(B, V, T)`` fundamental frequency of each of ``V`` voices per frame, Hz (0: the voice is silent).
        amplitudes: ``(B, V, K, T)`` linear amplitude of each harmonic per frame.
        sample_rate: Samples per second of the output.
        hop: Samples between frames.
        n_samples: Length of the output.

    Returns:
        ``(B, n_samples)`` audio. Phases start at 0 and integrate the upsampled frequency; a harmonic at or above
        Nyquist is silent.
    """
    n_harmonics = amplitudes.shape[-2]
    fundamental = upsample(f0, hop, n_samples)  # (B, V, N)
    # Harmonic k's phase is k times the fundamental's: one running sum (in float64, wrapped to one turn) serves all.
    turns = torch.remainder(torch.cumsum(fundamental.double() / sample_rate, dim=-1), 1.0).to(amplitudes.dtype)
    k = torch.arange(1, n_harmonics + 1, device=f0.device, dtype=amplitudes.dtype).unsqueeze(-1)  # (K, 1)
    phase = 2 * torch.pi * turns.unsqueeze(-2) * k  # (B, V, K, N)
    audible = (fundamental.unsqueeze(-2) * k < sample_rate / 2).to(amplitudes.dtype)
    return (upsample(amplitudes, hop, n_samples) * audible * torch.sin(phase)).sum(dim=(1, 2))


def filtered_noise(band_magnitudes: torch.Tensor, hop: int, n_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """White noise shaped frame by frame: ``(B, T, n_bands)`` magnitude responses → ``(B, n_samples)`` audio.

    The noise's STFT (Hann window of ``4 * hop`` samples, hop ``hop``, frame ``t`` centred on sample ``t * hop`` like
    control frame ``t``) is multiplied by each frame's response, interpolated linearly from its ``n_bands`` bands
    (evenly spaced from 0 Hz to Nyquist) to the STFT's bins, and overlap-added back. Frames past ``T`` hold the last
    response. The noise is uniform in [-1, 1), drawn with ``generator``.
    """
    batch, _, n_bands = band_magnitudes.shape
    n_fft = 4 * hop
    window = torch.hann_window(n_fft, device=band_magnitudes.device, dtype=band_magnitudes.dtype)
    noise = torch.rand(batch, n_samples, generator=generator, dtype=band_magnitudes.dtype).to(band_magnitudes.device) * 2 - 1
    spectrum = torch.stft(noise, n_fft, hop, window=window, return_complex=True)  # (B, F, T')
    bins, stft_frames = spectrum.shape[-2:]
    by_frame = interpolate(band_magnitudes.transpose(1, 2), torch.arange(stft_frames, dtype=torch.float64))  # (B, n_bands, T')
    response = interpolate(by_frame.transpose(1, 2), torch.linspace(0, n_bands - 1, bins, dtype=torch.float64))  # (B, T', F)
    return torch.istft(spectrum * response.transpose(1, 2), n_fft, hop, window=window, length=n_samples)


@dataclasses.dataclass(frozen=True)
class VoiceControls:
    """Notes shared among ``V`` voices, at the frame rate: each array ``(V, T)``, 0 where a voice is silent.

    Attributes:
        f0: The voice's fundamental frequency, Hz.
        pitch: Its MIDI note number.
        age: Seconds since its note's onset.
        remaining: Seconds until its note's end (negative during the release that follows it).
        velocity: Its note's velocity.
        dropped: Notes left out because every voice was busy.
    """

    f0: np.ndarray
    pitch: np.ndarray
    age: np.ndarray
    remaining: np.ndarray
    velocity: np.ndarray
    dropped: int

    @property
    def sounding(self) -> np.ndarray:
        """``(V, T)`` bool: the voice plays a note (or its release) in the frame."""
        return self.f0 > 0


def voice_controls(notes: list[Note], n_frames: int, sample_rate: int, hop: int, n_voices: int,
                   release: float = 0.1) -> VoiceControls:
    """Give each note, in onset order, the first voice free at its onset: a voice is busy from its note's onset until
    ``release`` seconds after its end (the release the synthesiser learns). Frame ``t`` is the instant ``t * hop /
    sample_rate``. A note that finds every voice busy is left out and counted in ``dropped``."""
    seconds = np.arange(n_frames) * hop / sample_rate
    controls = {name: np.zeros((n_voices, n_frames), np.float32) for name in ("f0", "pitch", "age", "remaining", "velocity")}
    free_at = np.full(n_voices, -np.inf)
    dropped = 0
    for note in sorted(notes, key=lambda n: (n.onset, n.pitch)):
        free = np.flatnonzero(free_at <= note.onset)
        if not len(free):
            dropped += 1
            continue
        voice, end = free[0], note.onset + note.duration
        free_at[voice] = end + release
        frames = (seconds >= note.onset) & (seconds < end + release)
        controls["f0"][voice, frames] = midi_to_hz(note.pitch)
        controls["pitch"][voice, frames] = note.pitch
        controls["age"][voice, frames] = seconds[frames] - note.onset
        controls["remaining"][voice, frames] = end - seconds[frames]
        controls["velocity"][voice, frames] = note.velocity
    return VoiceControls(**controls, dropped=dropped)


class ControlNetwork(torch.nn.Module):
    """Notes' controls → the synthesiser's: per voice and frame, harmonic amplitudes from what the voice plays, and per
    frame the noise's band magnitudes from what all voices play.

    Each voice's frame is described by its pitch (scaled), ``log(1 + age / 10 ms)``, its time to the note's end (clipped
    to ±1 s), its velocity and whether it sounds; one MLP shared by every voice maps that to a loudness and a
    distribution over ``n_harmonics`` harmonics (a softmax, so the spectral envelope and the level are learned apart,
    as in DDSP). The noise's ``n_bands`` magnitudes come from a second MLP on the voices' features pooled by a mean.
    Silent voices are multiplied by 0.
    """

    FEATURES = 5

    def __init__(self, n_harmonics: int = 48, n_bands: int = 32, hidden: int = 128):
        super().__init__()

        def mlp(out: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Linear(self.FEATURES, hidden), torch.nn.LayerNorm(hidden), torch.nn.LeakyReLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.LayerNorm(hidden), torch.nn.LeakyReLU(),
                                       torch.nn.Linear(hidden, out))

        self.voice = mlp(1 + n_harmonics)
        self.noise = mlp(n_bands)

    @staticmethod
    def features(pitch: torch.Tensor, age: torch.Tensor, remaining: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """``(B, V, T)`` each → ``(B, V, T, 5)``."""
        sounding = (pitch > 0).to(age.dtype)
        return torch.stack([(pitch - 60) / 24 * sounding, torch.log1p(age / 0.01), remaining.clamp(-1, 1), velocity, sounding], dim=-1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, V, T, 5)`` → harmonic amplitudes ``(B, V, K, T)`` and noise band magnitudes ``(B, T, n_bands)``."""
        sounding = features[..., -1:]
        out = self.voice(features)
        loudness = 2 * torch.sigmoid(out[..., :1]) ** 2.3 * sounding  # DDSP's scaled sigmoid: a smooth, positive level
        amplitudes = loudness * torch.softmax(out[..., 1:], dim=-1)
        bands = 2 * torch.sigmoid(self.noise(features).mean(dim=1) - 5) ** 2.3  # starts near silence
        return amplitudes.permute(0, 1, 3, 2), bands
