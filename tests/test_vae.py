"""Issue 6: autoencoder, VAE and conditional VAE on log-mel images, in PyTorch and Keras."""
import numpy as np
import pytest
import torch

from musiclib import audio, cli, features, keras_twins
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import windows
from musiclib.models import vae
from musiclib.models.layers import count_parameters

N_MELS = AudioConfig().n_mels


def small_vae(variational=True, condition_size=0, **settings):
    vocabulary = {"pitches": list(range(60, 60 + condition_size - 2)), "instruments": ["flute", "organ"]} if condition_size else None
    return vae.VAE(vae.VAESettings(variational=variational, conditional=bool(condition_size), vocabulary=vocabulary,
                                   **settings), AudioConfig())


@pytest.mark.tensorflow
@pytest.mark.parametrize("variational, condition_size", [(False, 0), (True, 0), (True, 17)])
def test_keras_and_pytorch_models_have_the_same_parameter_count(variational, condition_size):
    from musiclib import keras_training  # noqa: F401

    model = small_vae(variational, condition_size, width=8, latent_size=2)
    assert model.condition_size == condition_size
    encoder, decoder = keras_twins.vae_parts(N_MELS, width=8, latent_size=2, variational=variational, condition_size=condition_size)
    assert count_parameters(model.encoder) == encoder.count_params()
    assert count_parameters(model.decoder) == decoder.count_params()
    x = np.zeros((3, N_MELS, vae.FRAMES, 1), np.float32)
    inputs = [x] + ([np.zeros((3, condition_size), np.float32)] if condition_size else [])
    assert encoder(inputs).shape == (3, 4 if variational else 2)


def test_shapes_and_the_loss_terms():
    torch.manual_seed(0)
    model = small_vae(width=4, latent_size=3, beta=1.0)
    images = torch.randn(5, N_MELS, vae.FRAMES)
    reconstruction, mu, log_var = model(images[:, None])
    assert reconstruction.shape == (5, 1, N_MELS, vae.FRAMES) and mu.shape == log_var.shape == (5, 3)
    mse = float(((reconstruction - images[:, None]) ** 2).mean().detach())
    torch.manual_seed(1)
    total = float(model.loss(images).detach())
    assert total > mse * 0.5  # MSE plus a KL term that cannot be negative (up to the sampling noise)
    assert model.decode(np.zeros((2, 3))).shape == (2, N_MELS, vae.FRAMES)


def test_training_windows_are_contiguous_slices_of_each_clip():
    torch.manual_seed(0)
    clips = torch.arange(4 * 2 * 86, dtype=torch.float32).reshape(4, 2, 86)
    cut = windows(clips, vae.FRAMES, random=True)
    assert cut.shape == (4, 2, vae.FRAMES)
    starts = cut[:, 0, 0] - clips[:, 0, 0]
    for clip, window, start in zip(clips, cut, starts.long()):
        assert torch.equal(window, clip[:, start:start + vae.FRAMES])
    assert len(set(starts.tolist())) > 1
    assert torch.equal(windows(clips, vae.FRAMES, random=False), clips[..., :vae.FRAMES])


def test_prior_walks_keep_the_prior_marginal_and_relate_neighbouring_images():
    model = small_vae(width=4, latent_size=3, prior_components=2)
    z = vae.sample_latents(model, 4000, 3, np.random.default_rng(0), correlation=0.9)
    assert z.shape == (4000, 3, 3)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(0), 0, atol=0.05)  # unfitted: every component is N(0, I)
    np.testing.assert_allclose(z.reshape(-1, 3).std(0), 1, atol=0.05)
    assert 0.85 < np.corrcoef(z[:, 0, 0], z[:, 1, 0])[0, 1] < 0.95
    model.prior_weights.copy_(torch.tensor([0.25, 0.75]))
    model.prior_means.copy_(torch.tensor([[-4.0, 0, 0], [4.0, 0, 0]]))
    model.prior_cholesky.mul_(0.1)
    first = vae.sample_latents(model, 4000, 2, np.random.default_rng(1))[..., 0]
    assert abs(np.mean(first[:, 0] > 0) - 0.75) < 0.03
    assert np.all(np.sign(first[:, 0]) == np.sign(first[:, 1]))  # a clip stays inside its component


def test_a_continuation_starts_from_the_primes_last_image_not_its_first():
    torch.manual_seed(0)
    model = small_vae(width=4, latent_size=3, variation=0.0).eval()  # no walk: every image decodes the start code
    noise = np.random.default_rng(0).standard_normal(2 * 22050)
    prime = (np.r_[np.zeros(22050), noise[22050:]])[None].astype(np.float32)  # a second of silence, then a loud one
    made = model.continuation(prime, 1.0, seed=0)
    log_mel = features.log_mel(prime[0], AudioConfig())

    def decoded(frames):
        return model.to_log_mel(model.decode(model.encode_images(model.normalizer.normalize(frames)[None])))[0]

    np.testing.assert_allclose(made.values[0, :, :vae.FRAMES], decoded(log_mel[:, -vae.FRAMES:]), atol=1e-5)
    assert not np.allclose(made.values[0, :, :vae.FRAMES], decoded(log_mel[:, :vae.FRAMES]), atol=1e-3)
    assert made.values.shape[-1] == vae.images_for(1.0, AudioConfig()) * vae.FRAMES and made.start == 0


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
    from musiclib import runs

    _, model, _, run_config = runs.load(run)
    assert model.prior_means.shape[0] == run_config["model_config"]["prior_components"] > 1
    assert torch.allclose(model.prior_weights.sum(), torch.tensor(1.0))
    assert model.prior_means.abs().sum() > 0  # fitted to the trained codes when training ended
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    old_run = tmp_path / "old_vae"
    old_run.mkdir()
    (old_run / "config.json").write_text((run / "config.json").read_text())
    state["model"] = {key: value for key, value in state["model"].items() if not key.startswith("prior_")}
    torch.save(state, old_run / "checkpoint.pt")  # a run trained before the fitted prior existed
    with pytest.raises(ValueError, match="retrain it into a new --out folder"):
        runs.load(old_run)
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


@pytest.mark.tensorflow
def test_keras_vae_trains_with_its_kl_term_and_matches_the_pytorch_size():
    from musiclib import keras_training  # noqa: F401
    import keras

    keras.utils.set_random_seed(0)
    model, encoder, decoder = keras_twins.trainable_vae(N_MELS, width=8, latent_size=4, beta=1.0)
    assert encoder.count_params() + decoder.count_params() == count_parameters(small_vae(width=8, latent_size=4))
    rng = np.random.default_rng(0)
    x = (np.linspace(-1, 1, N_MELS)[None, :, None, None] + 0.05 * rng.standard_normal((32, N_MELS, vae.FRAMES, 1))).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(x, x, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    model(x[:4], training=False)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0  # the KL term is part of the objective
