import numpy as np
import torch

from musiclib import AudioConfig, utils


def test_set_seed_reproducible():
    utils.set_seed(1)
    a = (np.random.rand(3), torch.rand(3))
    utils.set_seed(1)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    utils.set_seed(2)
    assert not torch.equal(torch.rand(3), b[1])


def test_get_device_cpu_here():
    device = utils.get_device()
    assert device.type in {"cpu", "cuda", "mps"}
    assert utils.get_device("cpu").type == "cpu"


def test_run_size(monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    assert utils.fast_mode() and utils.run_size(fast=1, cpu=10, gpu=100) == 1
    monkeypatch.setenv("MUSICLIB_FAST", "0")
    expected = 100 if torch.cuda.is_available() else 10
    assert utils.run_size(fast=1, cpu=10, gpu=100) == expected


def test_audio_config_round_trip(tmp_path):
    config = AudioConfig(sample_rate=16000, n_mels=64)
    config.save(tmp_path / "audio.json")
    assert AudioConfig.load(tmp_path / "audio.json") == config
    assert config.n_freqs == 513
    try:
        AudioConfig(hop_length=2048)
    except ValueError as err:
        assert "hop_length" in str(err)
    else:
        raise AssertionError("hop > n_fft must be rejected")
