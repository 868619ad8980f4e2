"""Does it sound like music? Frame tonality, pulse clarity, key clarity over windows, and agreement with a reference.

The distances of :mod:`musiclib.metrics` compare statistics of short frames; blurred noise with the
music's average spectrum can pass them. The measures here listen for what makes music: notes in each
frame, a beat, a key that holds for a few seconds, and (where the music that went in is known, as in
a round trip) the same notes at the same times.

Each of the first three is computed on excerpts a few seconds long and scaled by two calibration
sets, **the music is 1 and noise as loud as the music is 0**::

    scaled = (raw - raw_noise) / (raw_music - raw_noise)

so a model's score reads as "how far from noise towards the music". The pitch analysis is a
constant-Q transform with 3 bins per semitone from C1 (32.7 Hz), which separates semitones in the
bass, unlike a mel grid (see notebook 04).

Notebook: 15_comparison.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib.metrics import key_clarity

EXCERPT_SECONDS = 6.0
"""Length of the excerpts the musical measures listen to: long enough for a pulse and a key."""
KEY_WINDOW_SECONDS = 3.0
"""Key clarity is measured over windows this long (half-overlapping), then averaged: a key must hold for a few seconds."""
HOP = 512
"""Samples between analysis frames (23 ms at 22.05 kHz)."""
BINS_PER_SEMITONE = 3
N_OCTAVES = 7
FMIN_HZ = 32.70319566257483  # C1
TEMPO_LAGS_SECONDS = (0.25, 1.5)
"""Beat periods the pulse clarity looks for: 40 to 240 beats per minute."""
SOUNDING_DB = -50.0
"""Frames quieter than this (dB below the excerpt's loudest frame) are left out of the frame tonality."""
ONSET_WINDOW_SECONDS = 0.05
"""Two onsets agree when they lie within this of each other (mir_eval's default)."""


def semitone_spectrogram(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(84, frames)`` magnitude per semitone from C1 to B7: a constant-Q transform, its 3 bins per semitone summed."""
    import librosa

    cqt = np.abs(librosa.cqt(np.asarray(y, dtype=np.float32), sr=sample_rate, hop_length=HOP, fmin=FMIN_HZ,
                             n_bins=12 * BINS_PER_SEMITONE * N_OCTAVES, bins_per_octave=12 * BINS_PER_SEMITONE))
    return cqt.reshape(12 * N_OCTAVES, BINS_PER_SEMITONE, -1).sum(axis=1)


def pitch_class_frames(semitones: np.ndarray) -> np.ndarray:
    """``(12, frames)`` chroma (C first, unnormalised) of a :func:`semitone_spectrogram`: its octaves folded together."""
    return semitones.reshape(N_OCTAVES, 12, -1).sum(axis=0)


def frame_tonality(semitones: np.ndarray) -> float:
    """Mean over sounding frames of ``1 - H(p) / log 12``, with ``p`` a frame's chroma as a distribution.

    A frame of a few notes concentrates its chroma on a few pitch classes (high); noise spreads it over
    all twelve (near 0). It hears notes, not a key: random notes score as high as music.
    """
    chroma = pitch_class_frames(semitones)
    energy = chroma.sum(axis=0)
    sounding = energy > energy.max() * 10 ** (SOUNDING_DB / 10) if energy.max() > 0 else np.zeros_like(energy, bool)
    if not sounding.any():
        return 0.0
    p = chroma[:, sounding] / energy[sounding]
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(axis=0)
    return float(np.mean(1 - entropy / np.log(12)))


def onset_envelope(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """librosa's onset strength (spectral flux of a log-mel) at :data:`HOP`: how much new sound starts in each frame."""
    import librosa

    return librosa.onset.onset_strength(y=np.asarray(y, dtype=np.float32), sr=sample_rate, hop_length=HOP)


def pulse_clarity(envelope: np.ndarray, sample_rate: int) -> float:
    """The highest normalised autocorrelation of the onset envelope at a beat period (:data:`TEMPO_LAGS_SECONDS`).

    Near 1: new sounds start at a steady period; near 0: onsets without a period (or none). A metronome
    scores as high as music: it hears a beat, not a rhythm worth hearing.
    """
    import librosa

    centred = envelope - envelope.mean()
    correlation = librosa.autocorrelate(centred)
    if correlation[0] <= 0:
        return 0.0
    low, high = (int(round(s * sample_rate / HOP)) for s in TEMPO_LAGS_SECONDS)
    lags = correlation[low: high + 1] / correlation[0]
    return float(max(lags.max(), 0.0)) if len(lags) else 0.0


def windowed_key_clarity(semitones: np.ndarray, sample_rate: int) -> float:
    """Mean :func:`musiclib.metrics.key_clarity` over half-overlapping :data:`KEY_WINDOW_SECONDS` windows.

    A key that holds for a few seconds scores high; noise, or notes without a key, low. One chord held
    scores high too: read it with the pulse.
    """
    chroma = pitch_class_frames(semitones)
    frames = chroma.shape[1]
    window = max(1, int(round(KEY_WINDOW_SECONDS * sample_rate / HOP)))
    starts = range(0, max(frames - window, 0) + 1, max(1, window // 2))
    return float(np.mean([key_clarity(chroma[:, start: start + window].T) for start in starts]))


def raw_scores(y: np.ndarray, sample_rate: int) -> dict:
    """The three unscaled measures of one excerpt."""
    return _raw_scores(*_analyse(y, sample_rate), sample_rate)


def _analyse(y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """What every measure reads of one excerpt, computed once: its :func:`semitone_spectrogram` and :func:`onset_envelope`."""
    return semitone_spectrogram(y, sample_rate), onset_envelope(y, sample_rate)


def _raw_scores(semitones: np.ndarray, envelope: np.ndarray, sample_rate: int) -> dict:
    return {"frame_tonality": frame_tonality(semitones),
            "pulse_clarity": pulse_clarity(envelope, sample_rate),
            "key_clarity_windows": windowed_key_clarity(semitones, sample_rate)}


def onsets(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times in seconds (librosa's peak picking on :func:`onset_envelope`)."""
    return _onset_times(onset_envelope(y, sample_rate), sample_rate)


def _onset_times(envelope: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    return librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, hop_length=HOP, units="time")


def agreement(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict:
    """How well ``estimate`` keeps the notes of ``reference`` (the same music after a round trip).

    - ``pitch_agreement``: mean cosine similarity of the two :func:`semitone_spectrogram` frames, over the
      reference's sounding frames (1: the same notes at the same loudness ratios; a semitone off scores low).
    - ``onset_agreement``: F-measure of the estimate's onsets against the reference's within
      :data:`ONSET_WINDOW_SECONDS` (``mir_eval.onset.f_measure``).
    """
    n = min(len(reference), len(estimate))
    return _agreement(_analyse(reference[:n], sample_rate), _analyse(estimate[:n], sample_rate), sample_rate)


def _agreement(reference: tuple[np.ndarray, np.ndarray], estimate: tuple[np.ndarray, np.ndarray], sample_rate: int) -> dict:
    import mir_eval

    (ref, ref_envelope), (est, est_envelope) = reference, estimate
    energy = ref.sum(axis=0)
    sounding = energy > energy.max() * 10 ** (SOUNDING_DB / 10)
    cosine = (ref * est).sum(axis=0) / (np.linalg.norm(ref, axis=0) * np.linalg.norm(est, axis=0) + 1e-12)
    ref_onsets, est_onsets = _onset_times(ref_envelope, sample_rate), _onset_times(est_envelope, sample_rate)
    f_measure = mir_eval.onset.f_measure(ref_onsets, est_onsets, window=ONSET_WINDOW_SECONDS)[0] if len(ref_onsets) else 0.0
    return {"pitch_agreement": float(cosine[sounding].mean()) if sounding.any() else 0.0, "onset_agreement": float(f_measure)}


class MusicalScorer:
    """The three musical measures of a set of excerpts, scaled between noise (0) and the music (1).

    Args:
        music: ``(n, samples)`` excerpts of real music that are not the ones scored as "the music" (the scale's 1).
        noise: ``(n, samples)`` noise as loud as the music (the scale's 0).
    """

    KEYS = ("frame_tonality", "pulse_clarity", "key_clarity_windows")

    def __init__(self, music: np.ndarray, noise: np.ndarray, sample_rate: int):
        self.sample_rate = sample_rate
        self.music = self._mean_raw(music)
        self.noise = self._mean_raw(noise)

    def _mean_raw(self, excerpts: np.ndarray, analyses: list | None = None) -> dict:
        analyses = analyses if analyses is not None else [_analyse(y, self.sample_rate) for y in excerpts]
        per_excerpt = [_raw_scores(*analysis, self.sample_rate) for analysis in analyses]
        return {key: float(np.mean([scores[key] for scores in per_excerpt])) for key in self.KEYS}

    def __call__(self, excerpts: np.ndarray, references: np.ndarray | None = None) -> dict:
        """Scaled measures of ``excerpts`` (and, given the ``references`` they were made from, their agreement)."""
        analyses = [_analyse(y, self.sample_rate) for y in excerpts]  # each excerpt analysed once for every measure
        raw = self._mean_raw(excerpts, analyses)
        scores = {key: (raw[key] - self.noise[key]) / (self.music[key] - self.noise[key]) for key in self.KEYS}
        if references is not None:
            each = [_agreement(_analyse(r, self.sample_rate), analysis, self.sample_rate) if len(r) == len(e)
                    else agreement(r, e, self.sample_rate) for r, e, analysis in zip(references, excerpts, analyses)]
            scores.update({key: float(np.mean([a[key] for a in each])) for key in ("pitch_agreement", "onset_agreement")})
        return scores
