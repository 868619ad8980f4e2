"""Signal processing from first principles: DFT, STFT, mel scale, dB and phase recovery.

Every transform here is written out from its formula and checked against
numpy/librosa in ``tests/test_dsp.py`` and in the notebooks. Shapes follow
librosa: a spectrogram is ``(n_freqs, n_frames)``.

Notebooks: 02_dft_and_fft.ipynb, 03_stft.ipynb, 04_mel_spectrograms.ipynb
"""
from __future__ import annotations

import numpy as np
import scipy.fft

# ---------------------------------------------------------------------------
# The discrete Fourier transform
# ---------------------------------------------------------------------------


def dft_loop(x: np.ndarray) -> np.ndarray:
    """DFT straight from the definition, one coefficient at a time, O(N^2).

    .. math:: X[k] = \\sum_{n=0}^{N-1} x[n] e^{-2\\pi i k n / N}

    Args:
        x: ``(N,)`` real or complex signal.

    Returns:
        ``(N,)`` complex128 spectrum, equal to ``np.fft.fft(x)``.

    Notebook: 02_dft_and_fft.ipynb
    """
    x = np.asarray(x, dtype=np.complex128)
    n_samples = len(x)
    n = np.arange(n_samples)
    spectrum = np.empty(n_samples, dtype=np.complex128)
    for k in range(n_samples):
        spectrum[k] = np.sum(x * np.exp(-2j * np.pi * k * n / n_samples))
    return spectrum


def dft_matrix(n_samples: int) -> np.ndarray:
    """The ``(N, N)`` DFT matrix ``W[k, n] = exp(-2 pi i k n / N)``.

    Notebook: 02_dft_and_fft.ipynb
    """
    k = np.arange(n_samples)[:, None]
    n = np.arange(n_samples)[None, :]
    return np.exp(-2j * np.pi * k * n / n_samples)


def dft(x: np.ndarray) -> np.ndarray:
    """DFT as one matrix-vector product ``W @ x`` (still O(N^2), but vectorised).

    Notebook: 02_dft_and_fft.ipynb
    """
    x = np.asarray(x, dtype=np.complex128)
    return dft_matrix(len(x)) @ x


def idft(spectrum: np.ndarray) -> np.ndarray:
    """Inverse DFT: ``x[n] = (1/N) sum_k X[k] exp(+2 pi i k n / N)``."""
    spectrum = np.asarray(spectrum, dtype=np.complex128)
    return np.conj(dft_matrix(len(spectrum))) @ spectrum / len(spectrum)


def fft(x: np.ndarray, n: int | None = None) -> np.ndarray:
    """Fast O(N log N) DFT (numpy's), optionally zero-padded or cropped to ``n`` samples."""
    return np.fft.fft(x, n=n)


def time_frequency_resolution(sample_rate: float, n_fft: int) -> tuple[float, float]:
    """Window duration in seconds and bin spacing in Hz of an ``n_fft``-point analysis.

    Their product is always 1: a longer window buys finer frequency resolution with
    coarser time resolution.

    Notebook: 03_stft.ipynb (reference solution of an exercise)
    """
    return n_fft / sample_rate, sample_rate / n_fft


def fft_frequencies(sample_rate: float, n_fft: int) -> np.ndarray:
    """Centre frequency in Hz of each of the ``n_fft // 2 + 1`` non-negative bins."""
    return np.arange(n_fft // 2 + 1) * sample_rate / n_fft


def power_spectrum(y: np.ndarray, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """One Hann-windowed spectrum of a whole signal: ``(frequencies in Hz, power)``, each ``(len(y) // 2 + 1,)``."""
    y = np.asarray(y, dtype=np.float64)
    power = np.abs(np.fft.rfft(y * get_window("hann", len(y)))) ** 2
    return fft_frequencies(sample_rate, len(y)), power


# ---------------------------------------------------------------------------
# Windows and framing
# ---------------------------------------------------------------------------


def get_window(name: str, length: int) -> np.ndarray:
    """A periodic (DFT-even) window, as used for spectral analysis.

    ``hann``: ``0.5 - 0.5 cos(2 pi n / N)``; ``hamming``: ``0.54 - 0.46 cos(2 pi n / N)``;
    ``rectangular``/``boxcar``: ones. Equal to ``scipy.signal.get_window(name, N, fftbins=True)``.

    Args:
        name: Window name.
        length: ``N``, samples.

    Returns:
        ``(N,)`` float64 window.
    """
    n = np.arange(length)
    if name in ("hann", "hanning"):
        return 0.5 - 0.5 * np.cos(2 * np.pi * n / length)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * n / length)
    if name in ("rectangular", "boxcar", "ones"):
        return np.ones(length)
    raise ValueError(f"unknown window {name!r}; choose 'hann', 'hamming' or 'rectangular'")


def frame(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Cut ``x`` into overlapping frames without copying (a strided view).

    Args:
        x: ``(samples,)`` signal, at least ``frame_length`` long.
        frame_length: Samples per frame.
        hop_length: Samples between frame starts.

    Returns:
        ``(n_frames, frame_length)`` read-only view, ``n_frames = 1 + (samples - frame_length) // hop_length``.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"frame expects a 1-D signal, got shape {x.shape}")
    if len(x) < frame_length:
        raise ValueError(f"signal of {len(x)} samples is shorter than one frame ({frame_length})")
    windows = np.lib.stride_tricks.sliding_window_view(x, frame_length)
    return windows[::hop_length]


def _window_padded(window: str | np.ndarray, win_length: int, n_fft: int) -> np.ndarray:
    win = get_window(window, win_length) if isinstance(window, str) else np.asarray(window, dtype=np.float64)
    if len(win) != win_length:
        raise ValueError(f"window has {len(win)} samples, expected win_length={win_length}")
    left = (n_fft - win_length) // 2
    return np.pad(win, (left, n_fft - win_length - left))


def stft(
    x: np.ndarray,
    n_fft: int = 1024,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Short-time Fourier transform: window each frame, then take its real FFT.

    .. math:: X[k, m] = \\sum_n w[n] x[n + mH] e^{-2\\pi i k n / N}

    With ``center=True`` the signal is first padded by ``n_fft // 2`` on both
    sides (``pad_mode`` zeros by default, like librosa >= 0.10), so frame ``m``
    is centred on sample ``m * hop_length``. With ``center=False`` frame ``m``
    starts at that sample.

    Args:
        x: ``(samples,)`` real signal.
        n_fft: FFT size ``N``.
        hop_length: ``H``; default ``n_fft // 4``.
        win_length: Window length (``<= n_fft``, zero-padded to ``n_fft``); default ``n_fft``.
        window: Name for :func:`get_window` or an explicit array.
        center: See above.
        pad_mode: ``numpy.pad`` mode used when ``center=True``.

    Returns:
        ``(n_fft // 2 + 1, n_frames)`` complex spectrogram; complex64 for float32 input.

    Notebook: 03_stft.ipynb
    """
    x = np.asarray(x)
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    real_dtype = np.float32 if x.dtype == np.float32 else np.float64
    win = _window_padded(window, win_length, n_fft).astype(real_dtype)
    frames = frame(x.astype(real_dtype, copy=False), n_fft, hop_length)
    out = np.empty((len(frames), n_fft // 2 + 1), dtype=np.complex64 if real_dtype == np.float32 else np.complex128)
    # blocks of frames keep the windowed copy in cache; scipy's FFT uses every core
    block = max(1, 2**18 // n_fft)
    for start in range(0, len(frames), block):
        out[start : start + block] = scipy.fft.rfft(frames[start : start + block] * win, axis=-1, workers=-1)
    return out.T


def istft(
    spectrogram: np.ndarray,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    length: int | None = None,
) -> np.ndarray:
    """Inverse STFT by weighted overlap-add (least-squares estimate of Griffin & Lim, 1984).

    Each frame's inverse FFT is multiplied by the window again and added into place;
    the sum is divided by the overlapped squared windows ``sum_m w[n - mH]^2``.

    Args:
        spectrogram: ``(n_fft // 2 + 1, n_frames)`` complex.
        hop_length, win_length, window, center: As used for :func:`stft`.
        length: Trim or zero-pad the output to this many samples.

    Returns:
        ``(samples,)`` real signal.

    Notebook: 03_stft.ipynb
    """
    spectrogram = np.asarray(spectrogram)
    n_fft = 2 * (spectrogram.shape[0] - 1)
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    n_frames = spectrogram.shape[1]
    real_dtype = np.float32 if spectrogram.dtype == np.complex64 else np.float64
    win = _window_padded(window, win_length, n_fft).astype(real_dtype)
    frames = np.fft.irfft(spectrogram.T, n=n_fft, axis=-1).astype(real_dtype) * win
    total = n_fft + hop_length * (n_frames - 1)
    signal = np.zeros(total, dtype=real_dtype)
    norm = np.zeros(total, dtype=real_dtype)
    win_sq = win**2
    for m in range(n_frames):
        start = m * hop_length
        signal[start : start + n_fft] += frames[m]
        norm[start : start + n_fft] += win_sq
    nonzero = norm > np.finfo(real_dtype).tiny
    signal[nonzero] /= norm[nonzero]
    if center:
        signal = signal[n_fft // 2 :]
        if length is None:
            signal = signal[: total - n_fft]
    if length is not None:
        signal = signal[:length] if len(signal) >= length else np.pad(signal, (0, length - len(signal)))
    return signal


# ---------------------------------------------------------------------------
# Mel scale
# ---------------------------------------------------------------------------

_SLANEY_F_SP = 200.0 / 3  # Hz per mel in the linear part
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # = 15
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies, htk: bool = False):
    """Hz to mel.

    HTK: ``m = 2595 log10(1 + f / 700)``. Slaney (Auditory Toolbox, librosa's default):
    linear ``m = f / (200/3)`` below 1 kHz, logarithmic above with step ``ln(6.4) / 27``.

    Notebook: 04_mel_spectrograms.ipynb
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(f >= _SLANEY_MIN_LOG_HZ, log, linear)


def mel_to_hz(mels, htk: bool = False):
    """Mel to Hz, the exact inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = _SLANEY_F_SP * m
    log = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (m - _SLANEY_MIN_LOG_MEL))
    return np.where(m >= _SLANEY_MIN_LOG_MEL, log, linear)


def mel_frequencies(n_mels: int, fmin: float, fmax: float, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies in Hz, equally spaced on the mel scale from ``fmin`` to ``fmax``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels), htk)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters as a matrix that maps a linear spectrum to mel bands.

    Band ``i`` rises linearly from edge ``f[i]`` to ``f[i+1]`` and falls to ``f[i+2]``,
    where ``f`` holds ``n_mels + 2`` edges equally spaced in mel. With
    ``norm="slaney"`` each triangle is scaled by ``2 / (f[i+2] - f[i])`` so all
    bands have equal area.

    Returns:
        ``(n_mels, n_fft // 2 + 1)`` float32 weights; equal to
        ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., htk=..., norm=...)``.

    Notebook: 04_mel_spectrograms.ipynb
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    bins_hz = fft_frequencies(sample_rate, n_fft)
    edges = mel_frequencies(n_mels + 2, fmin, fmax, htk)
    widths = np.diff(edges)
    # distance of every FFT bin from every edge: (n_mels + 2, n_freqs)
    offsets = edges[:, None] - bins_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(
    x: np.ndarray,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
    power: float = 2.0,
    htk: bool = False,
    norm: str | None = "slaney",
    center: bool = True,
) -> np.ndarray:
    """Mel spectrogram ``M = F |STFT(x)|^power`` with ``F`` from :func:`mel_filterbank`.

    Returns:
        ``(n_mels, n_frames)``; equal to ``librosa.feature.melspectrogram`` with the same keywords.

    Notebook: 04_mel_spectrograms.ipynb
    """
    magnitude = np.abs(stft(x, n_fft=n_fft, hop_length=hop_length, center=center)) ** power
    fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm)
    return fb @ magnitude.astype(np.float32 if np.asarray(x).dtype == np.float32 else np.float64)


def mel_to_linear(mel: np.ndarray, filterbank: np.ndarray, rcond: float = 0.01) -> np.ndarray:
    """Approximate inverse of the mel projection: least squares (pseudo-inverse), clipped at zero.

    Singular values of the filterbank below ``rcond`` times the largest are left out of the
    pseudo-inverse. Where mel bands are narrower than an FFT bin (the lowest bands of a grid that
    resolves the bass), neighbouring bands hold nearly the same bins and the filterbank is close to
    singular: the plain pseudo-inverse then multiplies any disagreement between those bands, which a
    model's output always has and a real spectrogram never does, by thousands.

    Args:
        mel: ``(n_mels, n_frames)`` mel magnitudes (same power as the target).
        filterbank: ``(n_mels, n_freqs)`` from :func:`mel_filterbank`.
        rcond: Relative cut-off of the singular values (``np.linalg.pinv``'s).

    Returns:
        ``(n_freqs, n_frames)`` non-negative linear-frequency estimate.
    """
    return np.maximum(0.0, _pseudo_inverse(filterbank, rcond) @ mel).astype(mel.dtype)


def _pseudo_inverse(filterbank: np.ndarray, rcond: float) -> np.ndarray:
    key = (filterbank.shape, filterbank.dtype.str, rcond, hash(filterbank.tobytes()))
    if key not in _PSEUDO_INVERSES:
        _PSEUDO_INVERSES[key] = np.linalg.pinv(filterbank, rcond=rcond)
    return _PSEUDO_INVERSES[key]


_PSEUDO_INVERSES: dict = {}


# ---------------------------------------------------------------------------
# Decibels
# ---------------------------------------------------------------------------


def power_to_db(power, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0):
    """``10 log10(max(S, amin) / ref)``, floored at ``max - top_db``. Equals ``librosa.power_to_db``."""
    power = np.asarray(power)
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def amplitude_to_db(amplitude, ref: float = 1.0, amin: float = 1e-5, top_db: float | None = 80.0):
    """``20 log10(max(|A|, amin) / ref)``: the same as :func:`power_to_db` on ``|A|**2``; a complex STFT is fine."""
    amplitude = np.abs(np.asarray(amplitude))
    return power_to_db(amplitude**2, ref=ref**2, amin=amin**2, top_db=top_db)


def db_to_power(db, ref: float = 1.0):
    """Inverse of :func:`power_to_db` (above its floor)."""
    return ref * 10.0 ** (np.asarray(db) / 10.0)


def db_to_amplitude(db, ref: float = 1.0):
    """Inverse of :func:`amplitude_to_db` (above its floor)."""
    return ref * 10.0 ** (np.asarray(db) / 20.0)


# ---------------------------------------------------------------------------
# Phase recovery
# ---------------------------------------------------------------------------


def spectral_convergence(reference_magnitude: np.ndarray, estimate_magnitude: np.ndarray) -> float:
    """``||S - S_hat||_F / ||S||_F``: 0 is a perfect match, 1 is as far as silence.

    Both arguments are magnitude spectrograms of the same shape. A silent reference gives 0
    against a silent estimate and ``inf`` against any other (no division by zero).
    """
    reference_magnitude = np.asarray(reference_magnitude, dtype=np.float64)
    estimate_magnitude = np.asarray(estimate_magnitude, dtype=np.float64)
    if reference_magnitude.shape != estimate_magnitude.shape:
        raise ValueError(f"shapes differ: {reference_magnitude.shape} vs {estimate_magnitude.shape}")
    difference, norm = np.linalg.norm(reference_magnitude - estimate_magnitude), np.linalg.norm(reference_magnitude)
    if norm == 0:
        return 0.0 if difference == 0 else float("inf")
    return float(difference / norm)


def zero_phase_inversion(magnitude: np.ndarray, hop_length: int | None = None, length: int | None = None, center: bool = True):
    """The seeds' "Griffin-Lim": an inverse STFT of the magnitude with every phase set to 0.

    Kept to show what goes wrong: all partials start in phase in every frame,
    which turns tones into a buzzy pulse train.
    """
    return istft(np.asarray(magnitude).astype(np.complex64), hop_length=hop_length, center=center, length=length)


HANN_GAUSSIAN_LAMBDA = 0.25645
"""The Gaussian window ``exp(-pi t^2 / lambda)`` closest to a Hann window of ``L`` samples has ``lambda = 0.25645 L^2``
(Průša, Balazs and Søndergaard 2017): the constant that lets a Hann STFT use the Gaussian's phase-gradient relations."""


def phase_gradient(magnitude: np.ndarray, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The phase's change from frame to frame and from bin to bin, read off the log-magnitude alone.

    For a Gaussian window of parameter ``lambda`` (samples²) the STFT is, up to a factor, an analytic
    function of ``x - i lambda omega``; its log-magnitude and phase are then tied like the real and
    imaginary parts of an analytic function (Portnoff 1979; Průša et al. 2017). With ``a`` the hop and
    ``N`` the FFT size, for the phase of each frame measured from its start (as :func:`stft` does)::

        phase(m + 1, k) - phase(m, k) ≈ a N / lambda · d/dk ln|X| + 2 pi a k / N
        phase(m, k + 1) - phase(m, k) ≈ -lambda / (a N) · d/dm ln|X| + pi

    The first is the instantaneous frequency of each bin (a steady partial advances by its frequency
    times the hop); the second is the group delay (a click at one time lines up the bins' phases).

    Args:
        magnitude: ``(..., n_fft // 2 + 1, frames)`` of a Hann-window STFT.
        hop_length: ``a``, in samples.

    Returns:
        ``(time_step, frequency_step)``: each shaped like ``magnitude``, in radians.
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    n_fft = 2 * (magnitude.shape[-2] - 1)
    lam = HANN_GAUSSIAN_LAMBDA * n_fft**2
    log_magnitude = np.log(np.maximum(magnitude, 1e-10))
    bins = np.arange(magnitude.shape[-2])[:, None]
    time_step = hop_length * n_fft / lam * np.gradient(log_magnitude, axis=-2) + 2 * np.pi * hop_length * bins / n_fft
    frequency_step = -lam / (hop_length * n_fft) * np.gradient(log_magnitude, axis=-1) + np.pi
    return time_step, frequency_step


def time_integrated_phase(magnitude: np.ndarray, hop_length: int) -> np.ndarray:
    """Each bin's phase integrated along time from :func:`phase_gradient` (trapezoid rule, 0 in the first frame).

    Steady partials get the phase that advances at their frequency from frame to frame (what Griffin-Lim
    from random phases has to find by itself, and often does not: sustained notes then sound "phasy").
    The bins' phases within a frame stay unrelated; :func:`pghi` integrates across frequency too.
    """
    time_step, _ = phase_gradient(magnitude, hop_length)
    steps = (time_step[..., :-1] + time_step[..., 1:]) / 2
    return np.concatenate([np.zeros(steps.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], axis=-1)


def pghi(magnitude: np.ndarray, hop_length: int, tolerance_db: float = 87.0, seed: int = 0) -> np.ndarray:
    """Phase-gradient heap integration (Průša, Balazs and Søndergaard 2017): a phase for a magnitude, with no iterations.

    Start at the loudest coefficient (phase 0) and always continue from the loudest coefficient that
    has a phase, giving each of its neighbours without one the phase reached along the
    :func:`phase_gradient` (trapezoid rule, in time or in frequency). Integration thus follows the
    ridges of the spectrogram, where the gradient estimates are reliable. Coefficients more than
    ``tolerance_db`` below the loudest get a random phase. A Python loop: about a second per 6 s of audio.

    Args:
        magnitude: ``(n_fft // 2 + 1, frames)`` of a Hann-window STFT (redundancy ``n_fft / hop`` of 4 or more).

    Returns:
        ``(n_fft // 2 + 1, frames)`` phases in radians.
    """
    import heapq

    magnitude = np.asarray(magnitude, dtype=np.float64)
    time_step, frequency_step = phase_gradient(magnitude, hop_length)
    log_magnitude = np.log(np.maximum(magnitude, 1e-10))
    n_bins, n_frames = magnitude.shape
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, magnitude.shape)
    done = log_magnitude < log_magnitude.max() - tolerance_db * np.log(10) / 20
    while not done.all():
        start = np.unravel_index(np.argmax(np.where(done, -np.inf, log_magnitude)), magnitude.shape)
        phase[start], done[start] = 0.0, True
        heap = [(-log_magnitude[start], *start)]
        while heap:
            _, k, m = heapq.heappop(heap)
            for kk, mm in ((k, m + 1), (k, m - 1), (k + 1, m), (k - 1, m)):
                if 0 <= kk < n_bins and 0 <= mm < n_frames and not done[kk, mm]:
                    if kk == k:
                        phase[kk, mm] = phase[k, m] + (mm - m) * (time_step[k, m] + time_step[k, mm]) / 2
                    else:
                        phase[kk, mm] = phase[k, m] + (kk - k) * (frequency_step[k, m] + frequency_step[kk, m]) / 2
                    done[kk, mm] = True
                    heapq.heappush(heap, (-log_magnitude[kk, mm], kk, mm))
    return phase


INITIAL_PHASES = ("random", "time-integrated", "pghi")


def griffin_lim(
    magnitude: np.ndarray,
    n_iter: int = 32,
    momentum: float = 0.99,
    hop_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    length: int | None = None,
    seed: int | None = 0,
    device: str | None = None,
    initial_phase: str = "random",
) -> np.ndarray:
    """Phase recovery by the fast Griffin-Lim algorithm (Perraudin et al., 2013).

    Starting from random phases (or, with ``initial_phase``, from :func:`time_integrated_phase` or
    :func:`pghi`: phases read off the magnitude), alternate between the two constraint sets: a
    spectrogram with the target magnitude, and a spectrogram that is the STFT of
    some signal. Each step rebuilds ``c_n = STFT(ISTFT(|S| e^{i phi}))`` and keeps
    the phase of ``c_n - alpha / (1 + alpha) * c_{n-1}``: the momentum term
    ``alpha`` pushes past the previous estimate. ``momentum=0`` is the original
    algorithm of Griffin & Lim (1984).

    Runs in PyTorch (vectorised STFTs, float32), also on a GPU via ``device``.

    Args:
        magnitude: ``(n_fft // 2 + 1, n_frames)`` or batched ``(batch, n_freqs, n_frames)``.
        n_iter: Iterations.
        momentum: ``alpha``; values above 1 may diverge.
        hop_length, window, center, length: As for :func:`istft`.
        seed: Seed for the initial random phases (``None``: unseeded).
        device: torch device name; default CPU.
        initial_phase: One of :data:`INITIAL_PHASES`: ``"random"``, ``"time-integrated"`` or ``"pghi"``.

    Returns:
        ``(samples,)`` (or ``(batch, samples)``) float32 signal.

    Notebook: 04_mel_spectrograms.ipynb
    """
    import torch

    mag = torch.as_tensor(np.asarray(magnitude, dtype=np.float32), device=device or "cpu")
    n_fft = 2 * (mag.shape[-2] - 1)
    hop_length = hop_length or n_fft // 4
    win = torch.as_tensor(get_window(window, n_fft), dtype=torch.float32, device=mag.device)
    if length is None:
        length = hop_length * (mag.shape[-1] - 1) if center else n_fft + hop_length * (mag.shape[-1] - 1)
    generator = torch.Generator(device=mag.device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    if initial_phase not in INITIAL_PHASES:
        raise ValueError(f"initial_phase must be one of {INITIAL_PHASES}, got {initial_phase!r}")
    if initial_phase == "random":
        phase = torch.rand(mag.shape, generator=generator, device=mag.device) * (2 * np.pi)
    else:
        numpy_magnitude = np.asarray(magnitude, dtype=np.float32)
        if initial_phase == "time-integrated":
            start = time_integrated_phase(numpy_magnitude, hop_length)
        else:
            start = np.stack([pghi(m, hop_length, seed=seed or 0) for m in numpy_magnitude.reshape(-1, *numpy_magnitude.shape[-2:])])
        phase = torch.as_tensor(start.reshape(mag.shape), dtype=torch.float32, device=mag.device)
    angles = torch.polar(torch.ones_like(mag), phase)

    def to_signal(spec):
        return torch.istft(spec, n_fft, hop_length, window=win, center=center, length=length)

    def to_spec(signal):
        return torch.stft(signal, n_fft, hop_length, window=win, center=center, pad_mode="constant", return_complex=True)

    previous = torch.zeros_like(angles)
    step = momentum / (1 + momentum)
    spec = mag * angles
    with torch.no_grad():
        for _ in range(n_iter):
            rebuilt = to_spec(to_signal(spec))
            angles = rebuilt.sub(previous, alpha=step) if momentum else rebuilt.clone()
            # keep the phase of `angles`, impose the target magnitude: one real division, one product
            spec = angles.mul_(mag / angles.abs().add_(1e-16))
            previous = rebuilt
        return to_signal(spec).cpu().numpy()
