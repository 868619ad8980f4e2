import librosa
import numpy as np
import pytest
import scipy.signal

from musiclib import AudioConfig, dsp, signals

SR = 22050


@pytest.fixture(scope="module")
def chord():
    return signals.chord(seconds=1.0, sample_rate=SR)


@pytest.mark.parametrize("n", [1, 7, 64, 100])
def test_dft_forms_equal_numpy_fft(n):
    x = np.random.default_rng(n).standard_normal(n)
    expected = np.fft.fft(x)
    np.testing.assert_allclose(dsp.dft_loop(x), expected, atol=1e-9)
    np.testing.assert_allclose(dsp.dft(x), expected, atol=1e-9)
    np.testing.assert_allclose(dsp.idft(expected), x, atol=1e-9)


@pytest.mark.parametrize("name", ["hann", "hamming", "boxcar"])
def test_windows_equal_scipy(name):
    np.testing.assert_allclose(dsp.get_window(name, 512), scipy.signal.get_window(name, 512, fftbins=True), atol=1e-12)


def test_frame_shape_and_content():
    x = np.arange(10.0)
    frames = dsp.frame(x, frame_length=4, hop_length=3)
    assert frames.shape == (3, 4)
    np.testing.assert_array_equal(frames[1], [3, 4, 5, 6])


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("n_fft,hop,win_length", [(1024, 256, None), (512, 128, 400), (2048, 512, None)])
def test_stft_equals_librosa(chord, center, n_fft, hop, win_length):
    ours = dsp.stft(chord, n_fft=n_fft, hop_length=hop, win_length=win_length, window="hann", center=center)
    theirs = librosa.stft(
        chord, n_fft=n_fft, hop_length=hop, win_length=win_length, window="hann", center=center, pad_mode="constant"
    )
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("center", [True, False])
def test_istft_recovers_signal(chord, center):
    x = chord.astype(np.float64)
    spec = dsp.stft(x, n_fft=1024, hop_length=256, center=center)
    y = dsp.istft(spec, hop_length=256, center=center, length=len(x))
    edge = 0 if center else 1024  # without centring, the first and last frame are covered only once
    assert snr_db(x[edge : len(x) - edge], y[edge : len(x) - edge]) >= 60
    np.testing.assert_allclose(y, librosa.istft(spec, hop_length=256, center=center, length=len(x)), atol=1e-6)


@pytest.mark.parametrize("htk", [True, False])
def test_mel_scale_round_trip_and_librosa(htk):
    f = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 11025.0])
    np.testing.assert_allclose(dsp.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk), rtol=1e-10)
    np.testing.assert_allclose(dsp.mel_to_hz(dsp.hz_to_mel(f, htk=htk), htk=htk), f, atol=1e-8)


@pytest.mark.parametrize("htk", [True, False])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("n_mels,fmin,fmax", [(80, 0.0, None), (64, 50.0, 8000.0), (128, 0.0, None)])
def test_mel_filterbank_equals_librosa(htk, norm, n_mels, fmin, fmax):
    ours = dsp.mel_filterbank(SR, 1024, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    theirs = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    np.testing.assert_allclose(ours, theirs, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("htk", [True, False])
def test_mel_spectrogram_equals_librosa(chord, htk):
    ours = dsp.mel_spectrogram(chord, SR, n_fft=1024, hop_length=256, n_mels=80, htk=htk)
    theirs = librosa.feature.melspectrogram(
        y=chord, sr=SR, n_fft=1024, hop_length=256, n_mels=80, htk=htk, norm="slaney", center=True, pad_mode="constant", power=2.0
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * theirs.max())


def test_db_conversions_equal_librosa(chord):
    power = np.abs(dsp.stft(chord)) ** 2
    np.testing.assert_allclose(dsp.power_to_db(power, ref=1.0, top_db=80.0), librosa.power_to_db(power, ref=1.0, top_db=80.0), atol=1e-4)
    amp = np.sqrt(power)
    np.testing.assert_allclose(dsp.amplitude_to_db(amp, top_db=None), librosa.amplitude_to_db(amp, top_db=None), atol=1e-4)
    db = dsp.power_to_db(power, top_db=None)
    np.testing.assert_allclose(dsp.db_to_power(db), np.maximum(power, 1e-10), rtol=1e-4)


def test_griffin_lim_beats_zero_phase(chord):
    magnitude = np.abs(dsp.stft(chord, n_fft=1024, hop_length=256))
    recovered = dsp.griffin_lim(magnitude, n_iter=32, momentum=0.99, hop_length=256, length=len(chord))
    zero_phase = dsp.zero_phase_inversion(magnitude, hop_length=256, length=len(chord))
    sc_gl = dsp.spectral_convergence(magnitude, np.abs(dsp.stft(recovered, n_fft=1024, hop_length=256)))
    sc_zero = dsp.spectral_convergence(magnitude, np.abs(dsp.stft(zero_phase, n_fft=1024, hop_length=256)))
    assert sc_gl <= 0.12, sc_gl
    assert sc_zero >= 0.5, sc_zero


def test_griffin_lim_is_seeded_and_batched(chord):
    magnitude = np.abs(dsp.stft(chord[:8192], n_fft=512, hop_length=128))
    a = dsp.griffin_lim(magnitude, n_iter=4, seed=3)
    b = dsp.griffin_lim(magnitude, n_iter=4, seed=3)
    np.testing.assert_array_equal(a, b)
    batch = dsp.griffin_lim(np.stack([magnitude, magnitude]), n_iter=4, seed=3)
    assert batch.shape == (2, a.shape[0])


def test_mel_to_linear_is_a_right_inverse_on_the_mel_bands(chord):
    fb = dsp.mel_filterbank(SR, 1024, n_mels=128)
    power = np.abs(dsp.stft(chord)) ** 2
    mel = fb @ power
    recovered = dsp.mel_to_linear(mel, fb)
    assert recovered.shape == power.shape and recovered.min() >= 0
    assert dsp.spectral_convergence(mel, fb @ recovered) < 0.1


@pytest.mark.parametrize("settings,message", [
    ({"center": False}, "center must be True"),
    ({"fmax": 12000.0}, "fmax <= sample_rate / 2"),
    ({"fmin": 4000.0, "fmax": 3000.0}, "fmin < fmax"),
    ({"fmin": -5.0}, "0 <= fmin"),
    ({"n_fft": 1023, "hop_length": 256}, "n_fft must be even"),
    ({"n_mels": 256, "n_fft": 256, "hop_length": 64}, "mel bands hold no FFT bin"),
])
def test_audio_config_refuses_what_the_stft_and_filterbank_cannot_use(settings, message):
    with pytest.raises(ValueError, match=message):
        AudioConfig(**settings)


def test_silent_input_gives_numbers_not_division_by_zero():
    import warnings

    from musiclib import metrics

    silent = np.zeros((5, 7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/0 would warn
        assert dsp.spectral_convergence(silent, silent) == 0.0
        assert dsp.spectral_convergence(silent, silent + 1) == float("inf")
        assert metrics.repeat_error(np.zeros(1000), 256) == 0.0
        features = np.ones((4, 3))
        assert metrics.memorization_ratio(features, features, features) == 1.0
        assert metrics.memorization_ratio(features, features + 1, features) == float("inf")


def test_amplitude_to_db_takes_the_magnitude_of_a_complex_stft():
    spectrum = np.array([3 + 4j, -5, 5j, 1e-9])
    np.testing.assert_allclose(dsp.amplitude_to_db(spectrum, top_db=None), 20 * np.log10(np.maximum(np.abs(spectrum), 1e-5)))
    np.testing.assert_allclose(dsp.amplitude_to_db(spectrum), librosa.amplitude_to_db(np.abs(spectrum)), atol=1e-4)


def test_dcgan_seed_images_are_inverted_as_mel_power():
    import torch

    from musiclib import features, signals
    from musiclib.models import dcgan

    config = dcgan.seed_audio_config(22050)
    y = signals.chord(notes=(57, 61, 64), seconds=1.0, sample_rate=22050)
    power = features.filterbank(config) @ features.magnitude(y, config) ** 2  # the seed's image
    model = dcgan.SeedDCGAN(dcgan.SeedDCGAN.Settings(), AudioConfig())
    made = model.images_to_log_mel(torch.from_numpy(power[None, None].astype(np.float32)))
    log_mel, out_config = made.values, made.config
    truth = features.log_mel(y, config)
    as_if_magnitude = np.log(np.maximum(np.sqrt(power), features.LOG_FLOOR))  # the old inversion
    loud = truth > truth.max() - 5  # where the notes are; the pseudo-inverse is loose in near-silent bands
    assert out_config == config
    assert np.abs(log_mel[0] - truth)[loud].mean() < 0.5 < np.abs(as_if_magnitude - truth)[loud].mean()


def test_the_phase_gradient_predicts_how_a_steady_partial_turns_from_frame_to_frame():
    sr, hop, n_fft = 22050, 256, 1024
    n = np.arange(sr)
    y = np.sin(2 * np.pi * 441.3 * n / sr).astype(np.float32)
    spectrum = dsp.stft(y, n_fft=n_fft, hop_length=hop)
    peak = int(np.argmax(np.abs(spectrum[:, 20])))
    true_steps = np.angle(spectrum[peak, 11:30] * np.conj(spectrum[peak, 10:29]))
    predicted = dsp.time_integrated_phase(np.abs(spectrum), hop)[peak]
    predicted_steps = np.angle(np.exp(1j * (predicted[11:30] - predicted[10:29])))
    assert np.max(np.abs(np.angle(np.exp(1j * (true_steps - predicted_steps))))) < 0.1  # radians


def test_pghi_finds_a_phase_that_random_phases_do_not():
    sr, hop = 22050, 256
    y = signals.chord(notes=(57, 61, 64, 69), seconds=1.0, sample_rate=sr)
    magnitude = np.abs(dsp.stft(y, n_fft=1024, hop_length=hop))
    convergence = {}
    for start in dsp.INITIAL_PHASES:
        rebuilt = dsp.griffin_lim(magnitude, n_iter=0, hop_length=hop, length=len(y), initial_phase=start)
        convergence[start] = dsp.spectral_convergence(magnitude, np.abs(dsp.stft(rebuilt, n_fft=1024, hop_length=hop)))
    assert convergence["pghi"] < 0.5 * convergence["random"] and convergence["time-integrated"] < convergence["random"]
    with pytest.raises(ValueError, match="initial_phase"):
        dsp.griffin_lim(magnitude, n_iter=1, hop_length=hop, initial_phase="zero")
