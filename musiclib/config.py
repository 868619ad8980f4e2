"""The one audio configuration that travels with every dataset and checkpoint.

Notebook: 04_mel_spectrograms.ipynb
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path


@functools.lru_cache(maxsize=32)
def _empty_mel_bands(*filterbank_settings) -> int:
    from musiclib.dsp import mel_filterbank  # here, not at the top: dsp is heavier than a config needs

    return int((mel_filterbank(*filterbank_settings).max(axis=1) == 0).sum())


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Sample rate and spectrogram settings shared by every model.

    The mel grid is chosen so the notes of the bundled music survive it: 128 HTK-mel bands from 30 Hz
    are about 21 Hz wide at middle C (1.3 semitones) and 17 Hz at the bass's G2 (2.8 semitones); 80
    Slaney bands from 0 Hz are 41 Hz wide everywhere below 1 kHz (2.5 semitones at middle C, 6 at G2).
    n_fft 1024 itself cannot do better than its 21.5-Hz bins. Chosen on the ceiling table of
    ``musiclib compare`` (notebook 04): held-out chorales through this log-mel and Griffin-Lim keep
    about 0.86 of the music's frame tonality and 0.94 of its key clarity, against 0.51 and 0.60
    through the 80-band grid.

    Attributes:
        sample_rate: Samples per second (Hz).
        n_fft: FFT size in samples; also the window length.
        hop_length: Samples between successive STFT frames. The MelGAN vocoder
            upsamples by 8 * 8 * 2 * 2 = 256, so this must stay 256 for it.
        n_mels: Number of mel bands.
        fmin: Lowest mel band edge (Hz).
        fmax: Highest mel band edge (Hz); ``None`` means ``sample_rate / 2``.
        mel_htk: Use the HTK mel formula instead of Slaney's.
        mel_norm: ``"slaney"`` (area-normalised triangles) or ``None``.
        center: Pad the signal by ``n_fft // 2`` so frame ``t`` is centred on
            sample ``t * hop_length``. Must stay ``True``: Griffin-Lim's inverse STFT and every
            model's frame count assume centred frames.

    Raises:
        ValueError: a setting the STFT, the mel filterbank or Griffin-Lim cannot work with,
            naming the setting and what it must be.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    fmin: float = 30.0
    fmax: float | None = None
    mel_htk: bool = True
    mel_norm: str | None = "slaney"
    center: bool = True

    def __post_init__(self):
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"AudioConfig values must be positive, got {self}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.mel_norm not in (None, "slaney"):
            raise ValueError(f"mel_norm must be None or 'slaney', got {self.mel_norm!r}")
        if self.n_fft % 2:
            raise ValueError(f"n_fft must be even (the STFT's bins and Griffin-Lim assume it), got {self.n_fft}")
        if self.center is not True:
            raise ValueError("center must be True: Griffin-Lim's inverse STFT and the models' frame counts assume centred frames")
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < self.max_frequency <= nyquist:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist:g} Hz, got fmin={self.fmin}, fmax={self.fmax}")
        empty = _empty_mel_bands(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, self.mel_htk, self.mel_norm)
        if empty:
            raise ValueError(f"{empty} of the {self.n_mels} mel bands hold no FFT bin: use fewer n_mels, a larger n_fft "
                             f"or a wider fmin..fmax (got n_mels={self.n_mels}, n_fft={self.n_fft})")

    @property
    def n_freqs(self) -> int:
        """Number of non-negative frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def max_frequency(self) -> float:
        """Upper mel edge in Hz (``fmax`` or Nyquist)."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    def seconds_to_frames(self, seconds: float) -> int:
        """Number of STFT frames (``center=True``) that cover ``seconds`` of audio."""
        return int(round(seconds * self.sample_rate)) // self.hop_length + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AudioConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown AudioConfig keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "AudioConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
