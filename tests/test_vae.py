"""Issue 6 (in progress): autoencoder, VAE and conditional VAE on log-mel images, in PyTorch and Keras."""
import numpy as np
import pytest
import torch

from musiclib import AudioConfig, audio, cli
from musiclib.models import vae
from musiclib.models.layers import count_parameters


@pytest.mark.parametrize("variational, condition_size", [(False, 0), (True, 0), (True, 17)])
def test_keras_and_pytorch_models_have_the_same_parameter_count(variational, condition_size):
    from musiclib import keras_training  # noqa: F401

    model = vae.SpectrogramVAE(80, width=8, latent_size=2, variational=variational, condition_size=condition_size)
    encoder, decoder = vae.build_keras(80, width=8, latent_size=2, variational=variational, condition_size=condition_size)
    assert count_parameters(model.encoder) == encoder.count_params()
    assert count_parameters(model.decoder) == decoder.count_params()
    x = np.zeros((3, 80, vae.FRAMES, 1), np.float32)
    inputs = [x] + ([np.zeros((3, condition_size), np.float32)] if condition_size else [])
    assert encoder(inputs).shape == (3, 4 if variational else 2)


def test_shapes_and_the_loss_terms():
    torch.manual_seed(0)
    model = vae.SpectrogramVAE(80, width=4, latent_size=3, beta=1.0)
    images = torch.randn(5, 80, vae.FRAMES)
    reconstruction, mu, log_var = model(images[:, None])
    assert reconstruction.shape == (5, 1, 80, vae.FRAMES) and mu.shape == log_var.shape == (5, 3)
    mse = float(((reconstruction - images[:, None]) ** 2).mean().detach())
    torch.manual_seed(1)
    total = float(vae.loss(model, images).detach())
    assert total > mse * 0.5  # MSE plus a KL term that cannot be negative (up to the sampling noise)
    model.beta = 0.0
    assert model.decode(np.zeros((2, 3))).shape == (2, 80, vae.FRAMES)


def test_condition_labels_must_exist_in_the_training_set():
    vocabulary = {"pitches": [60, 62], "instruments": ["flute", "organ"]}
    vector = vae.one_hot([{"pitch": 62, "instrument": "organ"}], vocabulary)
    assert vector.tolist() == [[0, 1, 0, 1]]
    with pytest.raises(ValueError, match="choose a pitch in"):
        vae.one_hot([{"pitch": 61, "instrument": "organ"}], vocabulary)


def test_cli_trains_vae_and_cvae_and_generates_in_each_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    run = tmp_path / "vae"
    assert cli.main(["train", "vae", "--out", str(run), "--steps", "4"]) == 0
    for mode in ("autonomous", "continue"):
        out = tmp_path / f"{mode}.wav"
        assert cli.main(["generate", str(run), "--seconds", "1.0", "--mode", mode, "--out", str(out)]) == 0
        y, sr = audio.load(out)
        assert np.all(np.isfinite(y)) and len(y) == (2 if mode == "continue" else 1) * sr
    assert cli.main(["generate", str(run), "--mode", "condition", "--out", str(tmp_path / "x.wav")]) == 2
    assert "cvae" in capsys.readouterr().err

    assert cli.main(["train", "cvae", "--data", "chorales", "--out", str(tmp_path / "bad"), "--steps", "1"]) == 2
    assert "labelled with pitch and instrument" in capsys.readouterr().err
    conditional = tmp_path / "cvae"
    assert cli.main(["train", "cvae", "--data", "notes", "--out", str(conditional), "--steps", "4"]) == 0
    out = tmp_path / "note.wav"
    assert cli.main(["generate", str(conditional), "--seconds", "1.0", "--mode", "condition", "--pitch", "60",
                     "--instrument", "flute", "--out", str(out)]) == 0
    assert np.all(np.isfinite(audio.load(out)[0]))
    assert cli.main(["generate", str(conditional), "--mode", "condition", "--pitch", "61", "--out", str(out)]) == 2
