"""Simple baselines that every model is compared with.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np

from musiclib import features, signals, synth
from musiclib.config import AudioConfig


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(y, dtype=np.float64) ** 2)))


def white_noise_clips(n: int, clip_samples: int, level: float, seed: int = 0) -> np.ndarray:
    """``n`` clips of Gaussian white noise with RMS ``level``."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((n, clip_samples))).astype(np.float32)


def pink_noise_clips(n: int, clip_samples: int, level: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """``n`` clips of 1/f noise with RMS ``level``."""
    seconds = clip_samples / sample_rate
    return np.stack([signals.pink_noise(seconds, sample_rate, level, seed=seed + i)[:clip_samples] for i in range(n)])


def persistence_samples(context: np.ndarray, n_samples: int) -> np.ndarray:
    """Continue by repeating the last sample: ``x_hat[t] = x[t-1]`` run free."""
    return np.full(n_samples, context[-1], dtype=np.float32)


def persistence_blocks(context: np.ndarray, n_samples: int, block_size: int) -> np.ndarray:
    """Continue by repeating the last block of ``block_size`` samples."""
    block = np.asarray(context[-block_size:], dtype=np.float32)
    reps = -(-n_samples // block_size)
    return np.tile(block, reps)[:n_samples]


def one_step_persistence_mse(sequences: np.ndarray) -> float:
    """MSE of predicting each step by the previous one, over ``(n, steps, ...)`` sequences."""
    seq = np.asarray(sequences, dtype=np.float64)
    return float(np.mean((seq[:, 1:] - seq[:, :-1]) ** 2))


class PCABaseline:
    """PCA on flattened normalised spectrograms: a linear autoencoder with ``n_components`` latents.

    The reference any learned autoencoder must beat at the same latent size.
    """

    def __init__(self, n_components: int, seed: int = 0):
        from sklearn.decomposition import PCA

        self.pca = PCA(n_components=n_components, random_state=seed)
        self.shape = None

    def fit(self, spectrograms: np.ndarray) -> "PCABaseline":
        self.shape = spectrograms.shape[1:]
        self.pca.fit(spectrograms.reshape(len(spectrograms), -1))
        return self

    def encode(self, spectrograms: np.ndarray) -> np.ndarray:
        return self.pca.transform(spectrograms.reshape(len(spectrograms), -1))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.pca.inverse_transform(latents).reshape(len(latents), *self.shape).astype(np.float32)

    def reconstruct(self, spectrograms: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(spectrograms))


def griffin_lim_resynthesis(clips: np.ndarray, config: AudioConfig, n_iter: int = 32, initial_phase: str = features.INITIAL_PHASE) -> np.ndarray:
    """Each clip → log-mel → Griffin-Lim (from ``initial_phase``): the quality ceiling of any mel model that uses it."""
    log_mels = np.stack([features.log_mel(np.asarray(c), config) for c in clips])
    return features.log_mel_to_audio(log_mels, config, n_iter=n_iter, length=clips.shape[1], initial_phase=initial_phase)


VOICE_RANGES = ((60, 79), (55, 74), (48, 67), (40, 60))
"""MIDI ranges of soprano, alto, tenor and bass: where the reference notes below are drawn."""
HELD_CHORD = (72, 64, 55, 48)
"""A C major chord in four voices (C5 E4 G3 C3), transposed up one semitone per excerpt."""


def held_chord_parts(index: int, seconds: float) -> list[list[synth.Note]]:
    """Four voices holding one major chord for ``seconds``: notes, in tune, in a key, and nothing else happens."""
    return [[synth.Note(0.0, seconds, pitch + index % 12, 0.6)] for pitch in HELD_CHORD]


def random_note_parts(index: int, seconds: float, beat_seconds: float = 0.6, seed: int = 0) -> list[list[synth.Note]]:
    """Four voices of one note per beat, each pitch drawn uniformly from its voice's range: notes and a pulse, no key."""
    rng = np.random.default_rng(seed * 1000 + index)
    beats = int(np.ceil(seconds / beat_seconds))
    return [[synth.Note(b * beat_seconds, beat_seconds * 0.95, int(rng.integers(low, high + 1)), 0.6) for b in range(beats)]
            for low, high in VOICE_RANGES]


def note_excerpts(make_parts, n: int, seconds: float, sample_rate: int, level: float, ensembles: tuple[tuple[int, ...], ...] | None) -> np.ndarray:
    """``(n, samples)`` excerpts of ``make_parts(index, seconds)`` played as loud (RMS) as ``level``.

    Played by the GM SoundFont with ``ensembles`` (their programs, in turn: the timbres of the
    sampled chorales), or by :mod:`musiclib.synth`'s organ when ``ensembles`` is ``None``.
    """
    from musiclib import soundfont

    samples = int(round(seconds * sample_rate))
    out = np.zeros((n, samples), np.float32)
    for index in range(n):
        parts = make_parts(index, seconds)
        if ensembles:
            y = soundfont.render(parts, ensembles[index % len(ensembles)], sample_rate, seconds)
        else:
            voices = [synth.render(notes, "organ", sample_rate, seed=index * 4 + v) for v, notes in enumerate(parts)]
            y = np.sum([np.pad(v, (0, max(0, samples - len(v))))[:samples] for v in voices], axis=0)
        y = y[:samples]
        out[index, : len(y)] = y * (level / max(rms(y), 1e-9))
    return out
