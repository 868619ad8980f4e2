import numpy as np
import pytest
import soundfile as sf

from musiclib import audio, signals

SR = 22050


@pytest.fixture
def tone():
    return signals.sine(440.0, 0.5, SR)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_each_format(tmp_path, tone, ext):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone, SR)
    y, sr = audio.load(path)
    assert sr == SR and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(tone)) < 0.1 * SR  # mp3 adds encoder padding
    # the decoded tone still peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(y[: SR // 4]))
    assert abs(np.argmax(spectrum) * SR / (SR // 4) - 440) < 10


def test_stereo_to_mono_resample_normalize(tmp_path, tone):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone, 0.5 * tone]).T, SR)
    y, sr = audio.load(path, sample_rate=16000, normalize=True)
    assert sr == 16000 and abs(len(y) - 8000) <= 1
    assert np.isclose(np.abs(y).max(), 1.0)
    stereo, _ = audio.load(path, mono=False)
    assert stereo.shape == (2, len(tone))


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        audio.load(tmp_path / "nope.wav")


def test_not_audio(tmp_path):
    path = tmp_path / "readme.mp3"
    path.write_text("hello, I am text")
    with pytest.raises(audio.AudioFileError, match="readme.mp3.*not readable audio"):
        audio.load(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(audio.AudioFileError, match="empty.wav.*empty"):
        audio.load(path)


def test_no_samples(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(audio.AudioFileError, match="silent.wav.*no samples"):
        audio.load(path)


def test_truncated_file(tmp_path, tone):
    path = tmp_path / "cut.wav"
    sf.write(path, tone, SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(audio.AudioFileError, match="cut.wav.*truncated"):
        audio.load(path)


def test_nan_samples(tmp_path, tone):
    path = tmp_path / "nan.wav"
    bad = tone.copy()
    bad[100] = np.nan
    sf.write(path, bad, SR, subtype="FLOAT")
    with pytest.raises(audio.AudioFileError, match="nan.wav.*NaN"):
        audio.load(path)


def test_save_is_atomic_and_round_trips(tmp_path, tone):
    path = audio.save(tmp_path / "out" / "x.wav", tone, SR)
    y, _ = audio.load(path)
    np.testing.assert_allclose(y, tone, atol=1e-4)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]
    with pytest.raises(ValueError, match="NaN"):
        audio.save(tmp_path / "bad.wav", np.array([np.nan]), SR)


def test_int16_conversions_and_quantize():
    ints = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    floats = audio.int16_to_float(ints)
    assert floats.min() == -1.0 and floats.max() < 1.0
    np.testing.assert_array_equal(audio.float_to_int16(floats), ints)
    assert len(np.unique(audio.quantize(np.linspace(-1, 1, 1000), 3))) == 8


def test_alias_and_quantization_formulas():
    assert signals.alias_frequency(5000, 8000) == 3000
    assert signals.alias_frequency(15000, 22050) == 7050
    assert abs(signals.quantization_snr_db(16) - 98.08) < 0.05
