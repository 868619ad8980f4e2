import numpy as np
import pytest
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
    monkeypatch.delenv("MUSICLIB_SIZE", raising=False)
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    assert utils.fast_mode() and utils.run_size(fast=1, cpu=10, gpu=100) == 1
    monkeypatch.setenv("MUSICLIB_FAST", "0")
    expected = 100 if torch.cuda.is_available() else 10
    assert utils.run_size(fast=1, cpu=10, gpu=100) == expected


def test_the_setup_cells_run_size_selector(monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "0")
    monkeypatch.setenv("MUSICLIB_SIZE", "")
    on_cuda = torch.cuda.is_available()
    assert utils.choose_run_size("auto") == ("gpu" if on_cuda else "fast"), "auto never starts the long CPU size unasked"
    assert utils.fast_mode() == (not on_cuda)
    assert utils.choose_run_size("cpu") == "cpu" and not utils.fast_mode()
    assert utils.run_size(fast=1, cpu=10, gpu=100) == 10
    assert utils.choose_run_size("gpu") == "gpu" and utils.run_size(fast=1, cpu=10, gpu=100) == 100
    assert utils.run_size(fast=1, cpu=10) == 10, "without a gpu size the gpu run takes the cpu size"
    assert utils.choose_run_size(" Fast ") == "fast" and utils.fast_mode() and utils.run_size(fast=1, cpu=10) == 1
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    assert utils.choose_run_size("auto") == "fast", "CI's fast mode wins over the hardware"
    with pytest.raises(ValueError, match="auto, fast, cpu, gpu"):
        utils.choose_run_size("huge")


def test_play_shows_its_player_wherever_it_is_called(monkeypatch):
    from IPython.display import Audio

    from musiclib import audio

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects: shown.extend(objects))
    for _ in range(2):  # inside a loop: nothing is the cell's last expression
        assert audio.play(np.zeros(100), 8000) is None
    assert len(shown) == 2 and all(isinstance(player, Audio) for player in shown)
    assert isinstance(audio.player(np.full(10, 3.0), 8000), Audio)


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
