"""Weight-free evaluation: distances between signals, and distribution scores for generated sets.

Pairwise (a generated or rebuilt signal against its reference): spectral
convergence, log-spectral distance, multi-resolution STFT distance, log-mel L1,
mel-cepstral distortion. One signal alone: the frame-rate comb, a vocoder's buzz.
Set-level (generated clips against training clips): NDB/K, nearest-neighbour
memorisation ratio, and two distances between the MFCC + chroma frames of two sets: the
Fréchet distance (Gaussians fitted to each set) and an unbiased kernel distance (KID-style
MMD) with a bootstrap interval. Neither is FAD, which is defined on the embeddings of a
trained network (VGGish); these hand-made features need no download. Beside them, what a
listener notices first: loudness, the share of silent frames, and how clearly a clip's
pitch classes point to one key.
Pitch: ``librosa.pyin`` statistics.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.signal
import scipy.stats

from musiclib import baselines, dsp, features
from musiclib.config import AudioConfig

spectral_convergence = dsp.spectral_convergence


def _match(reference: np.ndarray, estimate: np.ndarray):
    n = min(len(reference), len(estimate))
    return np.asarray(reference[:n], dtype=np.float32), np.asarray(estimate[:n], dtype=np.float32)


def signal_spectral_convergence(reference: np.ndarray, estimate: np.ndarray, config: AudioConfig) -> float:
    """Spectral convergence between the STFT magnitudes of two signals."""
    reference, estimate = _match(reference, estimate)
    return dsp.spectral_convergence(features.magnitude(reference, config), features.magnitude(estimate, config))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, config: AudioConfig) -> float:
    """Root-mean-square difference of the power spectra in dB, averaged over frames (dB)."""
    reference, estimate = _match(reference, estimate)
    p_ref = dsp.power_to_db(features.magnitude(reference, config) ** 2, amin=1e-10, top_db=None)
    p_est = dsp.power_to_db(features.magnitude(estimate, config) ** 2, amin=1e-10, top_db=None)
    return float(np.mean(np.sqrt(np.mean((p_ref - p_est) ** 2, axis=0))))


MRSTFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def multi_resolution_stft_distance(reference: np.ndarray, estimate: np.ndarray, resolutions=MRSTFT_RESOLUTIONS) -> float:
    """Mean over STFT resolutions of spectral convergence + mean |log magnitude difference|.

    The loss of Parallel WaveGAN (Yamamoto et al., 2020), used here as a distance: the same
    code as the vocoder's training loss (:func:`musiclib.losses.multi_resolution_stft_loss`).
    """
    import torch

    from musiclib.losses import multi_resolution_stft_loss

    reference, estimate = _match(reference, estimate)
    with torch.no_grad():
        return float(multi_resolution_stft_loss(torch.from_numpy(reference)[None], torch.from_numpy(estimate)[None], resolutions))


def log_mel_l1(reference: np.ndarray, estimate: np.ndarray, config: AudioConfig, per_band: bool = False) -> float | np.ndarray:
    """Mean absolute difference of the shared log-mel features (nats); with ``per_band``, one per mel band ``(n_mels,)``."""
    reference, estimate = _match(reference, estimate)
    difference = np.abs(features.log_mel(reference, config) - features.log_mel(estimate, config))
    return difference.mean(axis=-1) if per_band else float(difference.mean())


def mel_cepstral_distortion(reference: np.ndarray, estimate: np.ndarray, config: AudioConfig, n_coeffs: int = 13) -> float:
    """MCD in dB: ``(10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2)`` over cepstra 1..n, averaged over frames.

    Cepstra are the orthonormal DCT-II of the natural-log mel spectrum; the
    energy term ``c_0`` is left out, as usual.
    """
    import scipy.fft

    reference, estimate = _match(reference, estimate)
    c_ref = scipy.fft.dct(features.log_mel(reference, config), type=2, norm="ortho", axis=0)[1 : n_coeffs + 1]
    c_est = scipy.fft.dct(features.log_mel(estimate, config), type=2, norm="ortho", axis=0)[1 : n_coeffs + 1]
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * np.sum((c_ref - c_est) ** 2, axis=0))))


# ---------------------------------------------------------------------------
# Set-level scores
# ---------------------------------------------------------------------------


def frame_rate_comb(y: np.ndarray, config: AudioConfig, tolerance_hz: float = 4.0, prominence_db: float = 10.0) -> float:
    """Share of a signal's spectral-peak energy that sits on multiples of the frame rate ``sample_rate / hop_length``.

    A frame-by-frame generator (a vocoder that upsamples mel frames) starts out
    repeating one waveform per frame: a pulse train whose partials are the
    multiples of the frame rate (86 Hz at 22,050 Hz and hop 256), whatever notes
    the mel asks for. Real music puts a chance share there, about
    ``2 * tolerance_hz / frame_rate``; a buzzing vocoder puts nearly all.

    Args:
        y: ``(samples,)`` audio; one spectrum of the whole signal (Hann window) is used.
        tolerance_hz: How close to a multiple a peak must be to count.
        prominence_db: How far a peak must stand above its surroundings.

    Returns:
        A share in [0, 1] (0 for a signal without peaks).
    """
    frequencies, power = dsp.power_spectrum(y, config.sample_rate)
    peaks, _ = scipy.signal.find_peaks(10 * np.log10(power + 1e-12), prominence=prominence_db)
    if not len(peaks):
        return 0.0
    frame_rate = config.sample_rate / config.hop_length
    harmonic = frequencies[peaks] / frame_rate
    on_comb = np.abs(harmonic - np.round(harmonic)) * frame_rate < tolerance_hz
    return float(power[peaks][on_comb].sum() / power[peaks].sum())


def repeat_error(y: np.ndarray, period: int) -> float:
    """How far a signal is from repeating every ``period`` samples: ``max |y[t + period] - y[t]|`` over its swing ``max |y - mean|``.

    0 for an exactly periodic signal (a constant or silent one included). A mel-conditioned
    generator fed one frame over and over gives 0 at ``period = hop_length`` (see :func:`frame_rate_comb`).
    """
    y = np.asarray(y, dtype=np.float64)
    swing = np.abs(y - y.mean()).max()
    return 0.0 if swing == 0 else float(np.abs(y[period:] - y[:-period]).max() / swing)


def clip_features(clips: np.ndarray, config: AudioConfig) -> np.ndarray:
    """One vector per clip for the set-level scores: the mean and standard deviation of each log-mel band over time.

    ``(n, 2 * n_mels)``. Pooling over time describes what a clip sounds like (which
    pitches and timbres, how steady) without caring where in the clip a note starts,
    which a flattened spectrogram would.
    """
    return log_mel_features(np.stack([features.log_mel(np.asarray(c), config) for c in clips]))


def log_mel_features(log_mels: np.ndarray) -> np.ndarray:
    """:func:`clip_features` of ``(n, n_mels, frames)`` natural-log mel images that need no audio.

    A spectrogram model's images can so be scored before they are inverted to audio,
    which tells what the model gets wrong from what the inversion loses.
    """
    log_mels = np.asarray(log_mels)
    return np.concatenate([log_mels.mean(axis=-1), log_mels.std(axis=-1)], axis=1)


def ndb_k(train_features: np.ndarray, generated_features: np.ndarray, k: int = 10, alpha: float = 0.05, seed: int = 0) -> float:
    """Number of statistically Different Bins over K (Richardson & Weiss, 2018).

    Cluster the training features into ``k`` bins with k-means; assign the
    generated features to the nearest centre; count the bins whose share differs
    between the two sets by a two-proportion z-test at level ``alpha``.
    0 means the generated set fills the bins like the training set; 1, not at all.
    """
    return _different_bins(_ndb_bins(train_features, k, seed), generated_features, alpha)


def _ndb_bins(train_features: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(k, len(train_features)), n_init=4, random_state=seed).fit(train_features)


def _different_bins(bins, generated_features: np.ndarray, alpha: float = 0.05) -> float:
    k = bins.n_clusters
    p_train = np.bincount(bins.labels_, minlength=k) / len(bins.labels_)
    p_gen = np.bincount(bins.predict(generated_features), minlength=k) / len(generated_features)
    n1, n2 = len(bins.labels_), len(generated_features)
    pooled = (p_train * n1 + p_gen * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) + 1e-12
    p_values = 2 * scipy.stats.norm.sf(np.abs(p_train - p_gen) / se)
    return float(np.mean(p_values < alpha))


def _nearest_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    q = queries.astype(np.float64)
    r = references.astype(np.float64)
    squared = (q**2).sum(1)[:, None] - 2 * q @ r.T + (r**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared.min(axis=1), 0))


def memorization_ratio(train_features: np.ndarray, generated_features: np.ndarray, heldout_features: np.ndarray) -> float:
    """Median nearest-training distance of generated clips over that of held-out real clips.

    About 1: generated clips are as far from the training set as new real music is.
    Near 0: they are copies of training clips. Above 1: further than real music.
    """
    generated = np.median(_nearest_distances(generated_features, train_features))
    heldout = np.median(_nearest_distances(heldout_features, train_features))
    if heldout == 0:  # held-out clips that duplicate training clips: only exact copies are as close
        return 1.0 if generated == 0 else float("inf")
    return float(generated / heldout)


def frame_features(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame MFCC (20) and chroma (12) features, ``(n_frames, 32)``."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=20, n_fft=1024, hop_length=512)
    return np.concatenate([mfcc, chroma(y, sample_rate)], axis=0).T


def chroma(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(12, n_frames)`` chroma (C first) with the frames of :func:`frame_features`."""
    import librosa

    return librosa.feature.chroma_stft(y=np.asarray(y, dtype=np.float32), sr=sample_rate, n_fft=1024, hop_length=512)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(n, d)``.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})``, the formula of FID and FAD (here on
    whatever features are given).
    """
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.cov(features_a, rowvar=False) + 1e-6 * np.eye(features_a.shape[1])
    cov_b = np.cov(features_b, rowvar=False) + 1e-6 * np.eye(features_b.shape[1])
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


def mfcc_chroma_frechet_distance(clips_a: np.ndarray, clips_b: np.ndarray, sample_rate: int) -> float:
    """Fréchet distance between the MFCC + chroma frames (:func:`frame_features`) of two sets of clips.

    Not FAD: the features are hand-made, not a trained network's embeddings. Biased upwards
    at small set sizes; :func:`kernel_distance` is the unbiased companion.
    """
    return frechet_distance(_set_frames(clips_a, sample_rate), _set_frames(clips_b, sample_rate))


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int = 1000, n_subsets: int = 50,
                    seed: int = 0) -> dict:
    """Squared MMD with the cubic polynomial kernel of KID (Binkowski et al., 2018), with a bootstrap interval.

    ``k(x, y) = (x·y / d + 1)^3`` on features standardised by set ``b``'s mean and spread (the
    reference), so that no feature dominates by its units. Each of ``n_subsets`` draws takes
    ``min(subset_size, n_a, n_b)`` rows of each set with replacement and computes

    ``MMD² = mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j)``.

    Each draw's estimate is the unbiased one, but the draws are with replacement (KID draws without), so
    repeated rows bias it slightly upward when a subset is as large as its set. Unlike the Fréchet distance it
    hardly depends on the set size, so sets of different sizes compare fairly; it can come out slightly below 0
    for two samples of one distribution.

    Args:
        features_a, features_b: ``(n, d)`` feature rows (e.g. :func:`frame_features` stacked).

    Returns:
        ``{"mean": ..., "low": ..., "high": ...}``: the mean over draws and its 2.5 and 97.5 percentiles.
    """
    mean, spread = features_b.mean(0), features_b.std(0) + 1e-8
    a, b = (features_a - mean) / spread, (features_b - mean) / spread
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"the kernel distance needs at least 2 rows in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(n_subsets):
        x, y = a[rng.integers(0, len(a), m)], b[rng.integers(0, len(b), m)]
        k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2 * k_xy.mean())
    return {"mean": float(np.mean(values)), "low": float(np.percentile(values, 2.5)), "high": float(np.percentile(values, 97.5))}


def _set_frames(clips: np.ndarray, sample_rate: int) -> np.ndarray:
    return np.concatenate([frame_features(c, sample_rate) for c in clips])


SILENCE_DB = -60.0
"""A frame whose RMS is below this (dB relative to full scale, 1.0) counts as silent."""


def silent_share(clips: np.ndarray, threshold_db: float = SILENCE_DB, frame_length: int = 2048, hop_length: int = 512) -> float:
    """Share of frames, over all ``(n, samples)`` clips, whose RMS is below ``threshold_db`` dBFS.

    Real music from inside a piece has almost none; a model that collapsed to silence, or that
    leaves gaps, has many. It says nothing about what the sounding frames sound like.
    """
    import librosa

    level = 10 ** (threshold_db / 20)
    frame_rms = np.concatenate([librosa.feature.rms(y=np.asarray(c, dtype=np.float32), frame_length=frame_length,
                                                    hop_length=hop_length)[0] for c in clips])
    return float(np.mean(frame_rms < level))


# Krumhansl & Kessler's (1982) probe-tone ratings of the 12 pitch classes in C major and C minor.
MAJOR_KEY_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_KEY_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_correlations(pitch_class_profile: np.ndarray) -> np.ndarray:
    """``(24,)`` Pearson correlations of a 12-bin pitch-class profile (C first) with the 12 major then 12 minor keys.

    The Krumhansl-Schmuckler key finder: the key whose rotated profile correlates best is the estimate.
    """
    profile = np.asarray(pitch_class_profile, dtype=np.float64)
    keys = [np.roll(template, tonic) for template in (MAJOR_KEY_PROFILE, MINOR_KEY_PROFILE) for tonic in range(12)]
    if np.ptp(profile) == 0:  # a flat profile (silence, ideal noise) points to no key
        return np.zeros(24)
    return np.array([np.corrcoef(profile, key)[0, 1] for key in keys])


KEY_NAMES = tuple(f"{name} {mode}" for mode in ("major", "minor") for name in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"))
"""The 24 keys in the order of :func:`key_correlations`."""


def pitch_class_profile(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(12,)`` a clip's mean :func:`chroma`: how much of each pitch class it holds."""
    return chroma(y, sample_rate).mean(axis=1)


def estimate_key(y: np.ndarray, sample_rate: int) -> int:
    """The key (an index into :data:`KEY_NAMES`) whose profile correlates best with a clip's :func:`pitch_class_profile`.

    Notebook: 12_audio_tokens.ipynb
    """
    return int(np.argmax(key_correlations(pitch_class_profile(y, sample_rate))))


def key_clarity(chroma_frames: np.ndarray) -> float:
    """How clearly one clip's chroma ``(frames, 12)`` points to a key: its best key correlation, in [-1, 1].

    Tonal music scores higher than noise, whose chroma is nearly flat (one-second chorale clips
    score about 0.6, white noise about 0.3: a short clip's chroma is never quite flat). It rewards a
    clip that sits in one key, however dull; it cannot hear whether the harmony moves well.
    """
    return float(key_correlations(np.asarray(chroma_frames).mean(axis=0)).max())


def pitch_track(y: np.ndarray, sample_rate: int, fmin: float = 65.0, fmax: float = 2100.0):
    """``librosa.pyin`` f0 (Hz, NaN where unvoiced) and the voiced flag per frame."""
    import librosa

    f0, voiced, _ = librosa.pyin(np.asarray(y, dtype=np.float32), fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=2048)
    return f0, voiced


def pitch_statistics(y: np.ndarray, sample_rate: int, target_midi: float | None = None, tolerance_cents: float = 50.0) -> dict:
    """Voiced fraction, median pitch, and (with ``target_midi``) the share of voiced frames within tolerance."""
    f0, voiced = pitch_track(y, sample_rate)
    stats = {"voiced_fraction": float(np.mean(voiced))}
    if np.any(voiced):
        midi = 69 + 12 * np.log2(f0[voiced] / 440.0)
        stats["median_midi"] = float(np.median(midi))
        if target_midi is not None:
            stats["within_tolerance"] = float(np.mean(np.abs(midi - target_midi) * 100 <= tolerance_cents))
    elif target_midi is not None:
        stats["within_tolerance"] = 0.0
    return stats


class SetScorer:
    """Set-level scores of generated clips against one training set, beside one held-out set.

    The training and held-out clips are featurised, and NDB/K's bins fitted, once, so
    scoring several sets (a model, real music, noise) costs only their own features.

    Args:
        train: Training clips: NDB/K's bins, the memorisation ratio's neighbours and the distances' reference.
        heldout: Real clips the generated ones are not compared with otherwise: the memorisation
            ratio's yardstick (how far new real music lies from the training clips). Must not be the
            clips scored as real music, or their ratio is 1 by construction.
        k: NDB/K's number of bins.
        frechet: Also compute the scores of MFCC + chroma frames (the slowest): the Fréchet and kernel
            distances, and the mean key clarity of the clips.
    """

    def __init__(self, train: np.ndarray, heldout: np.ndarray, config: AudioConfig, k: int = 10, frechet: bool = True):
        self.config = config
        self.train_features = clip_features(train, config)
        self.heldout_features = clip_features(heldout, config)
        self.bins = _ndb_bins(self.train_features, k, seed=0)
        self.train_frames = _set_frames(train, config.sample_rate) if frechet else None

    def __call__(self, generated: np.ndarray) -> dict:
        """Scores of ``(n, clip_samples)`` clips: NDB/K, memorisation ratio, RMS and silent share, and (if asked for)
        the Fréchet and kernel distances and key clarity."""
        generated_features = clip_features(generated, self.config)
        scores = {"ndb_k": _different_bins(self.bins, generated_features),
                  "memorization_ratio": memorization_ratio(self.train_features, generated_features, self.heldout_features)}
        if self.train_frames is not None:
            per_clip = [frame_features(c, self.config.sample_rate) for c in generated]
            frames = np.concatenate(per_clip)
            scores["frechet_distance"] = frechet_distance(frames, self.train_frames)
            kernel = kernel_distance(frames, self.train_frames)
            scores["kernel_distance"] = kernel["mean"]
            scores["kernel_distance_interval"] = [kernel["low"], kernel["high"]]
            scores["key_clarity"] = float(np.mean([key_clarity(f[:, -12:]) for f in per_clip]))
        scores["rms"] = baselines.rms(generated)
        scores["silent_share"] = silent_share(generated)
        return scores
