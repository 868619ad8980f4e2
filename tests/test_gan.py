"""Issue 5: the seed's spectrogram DCGAN, its fixed version, and adversarial training in the shared loop."""
import json

import numpy as np
import pytest
import torch

from musiclib import AudioConfig, baselines, cli, set_seed
from musiclib.models import dcgan, render
from musiclib.models.layers import count_parameters
from musiclib.training import Trainer, TrainConfig


def test_seed_replica_shapes_and_parameter_counts():
    model = dcgan.SeedDCGAN(dcgan.SeedDCGAN.Settings(), AudioConfig())
    assert count_parameters(model.generator) == 253_913
    assert count_parameters(model.discriminator) == 73_485
    images = model.generator(model.generator.noise(5))
    assert images.shape == (5, 1, 64, 16)
    probabilities = model.discriminator(images)
    assert probabilities.shape == (5, 1) and torch.all((probabilities > 0) & (probabilities < 1))
    weights = model.generator.net[2].weight.detach()
    assert abs(float(weights.std()) - 0.02) < 0.002  # DCGAN initialisation


def test_fixed_generator_is_bounded_and_matches_the_audio_config():
    model = dcgan.DCGAN(dcgan.DCGAN.Settings(), AudioConfig())
    images = model.images(4, seed=1)
    assert images.shape == (4, 1, AudioConfig().n_mels, AudioConfig().seconds_to_frames(1.0))
    assert float(images.abs().max()) <= 1
    torch.testing.assert_close(images, model.images(4, seed=1))


def _gan_trainer(run_dir, steps, model):
    set_seed(0)
    model = model()
    image = dcgan.SEED_IMAGE if isinstance(model, dcgan.SeedDCGAN) else (AudioConfig().n_mels, model.frames)
    data = np.abs(np.random.default_rng(0).standard_normal((40, *image))).astype(np.float32)
    config = TrainConfig(steps=steps, batch_size=8, learning_rate=2e-4, betas=(0.5, 0.999), seed=1, checkpoint_every=3,
                         progress=False, device="cpu")
    return Trainer(model, data, run_dir, config, AudioConfig(),
                   model.settings.to_dict())


def _straight_and_resumed(tmp_path, steps, model=lambda: dcgan.SeedDCGAN(dcgan.SeedDCGAN.Settings(), AudioConfig())):
    """Trainers run straight to ``steps`` and stopped at ``steps // 2`` then resumed; asserts they end equal."""
    straight = _gan_trainer(tmp_path / "straight", steps, model)
    straight.fit()
    _gan_trainer(tmp_path / "resumed", steps // 2, model).fit()
    resumed = _gan_trainer(tmp_path / "resumed", steps, model)
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    return straight, resumed


def test_adversarial_training_resumes_exactly_and_logs_like_the_seed(tmp_path):
    straight, _ = _straight_and_resumed(tmp_path, 8)
    assert {"loss_discriminator", "loss_generator", "D(x)", "D(G(z))"} <= set(straight.history[-1])


def test_fixed_dcgan_keeps_channels_last_weights_through_a_resumed_run(tmp_path):
    _, resumed = _straight_and_resumed(tmp_path, 4, lambda: dcgan.DCGAN(dcgan.DCGAN.Settings(width=4), AudioConfig()))
    convolutions = [p for p in resumed.model.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)


def test_the_replicas_log_mel_is_in_its_own_features_which_no_vocoder_takes():
    from musiclib.models import melgan

    replica = dcgan.SeedDCGAN(dcgan.SeedDCGAN.Settings(), AudioConfig())
    made = replica.sample(2, 1.0, seed=0)
    assert made.config == dcgan.seed_audio_config(AudioConfig().sample_rate) and made.values.shape[1] == 64
    assert render(made, AudioConfig().sample_rate).shape == (2, AudioConfig().sample_rate)
    vocoder = melgan.MelGAN(melgan.MelGAN.Settings(), AudioConfig())
    with pytest.raises(ValueError, match="use Griffin-Lim"):
        render(made, AudioConfig().sample_rate, inverter=vocoder)


def test_cli_trains_both_dcgans_and_generates_audio(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    for name in ("dcgan-seed", "dcgan"):
        run = tmp_path / name
        assert cli.main(["train", name, "--out", str(run), "--steps", "6"]) == 0
        assert "D(G(z))" in json.loads((run / "history.json").read_text())[-1]
        assert cli.main(["generate", str(run), "--seconds", "1.5", "--out", str(tmp_path / f"{name}.wav")]) == 0
        from musiclib import audio

        y, sr = audio.load(tmp_path / f"{name}.wav")
        assert len(y) == int(1.5 * sr) and np.all(np.isfinite(y)) and baselines.rms(y) > 0


def test_a_generated_second_is_one_fixed_dcgan_image(monkeypatch):
    # Two images side by side would average two independent samples in every clip
    # feature, which makes generated clips look more alike than real ones.
    config = AudioConfig()
    model = dcgan.DCGAN(dcgan.DCGAN.Settings(), config)
    requested = []
    images = model.images
    monkeypatch.setattr(model, "images", lambda n, seed=0: requested.append(n) or images(n, seed))
    y = render(model.sample(3, 1.0, seed=0), config.sample_rate)
    assert requested == [3] and y.shape == (3, config.sample_rate)
    made = model.sample(3, 1.5, seed=0)
    assert requested[-1] == 6 and made.values.shape == (3, config.n_mels, 2 * model.frames)


def test_fixed_dcgan_cuts_random_windows_from_clips_longer_than_an_image(monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    from musiclib.datasets import bundled

    model = dcgan.DCGAN(dcgan.DCGAN.Settings(image_seconds=0.5), AudioConfig())
    clips = model.features(bundled.chorales(), "train")
    assert clips.shape[-1] > model.frames == AudioConfig().seconds_to_frames(0.5)
    batch = torch.from_numpy(np.array(clips[:4], dtype=np.float32))
    torch.manual_seed(0)
    loss, logs = model.loss(batch, "discriminator")
    assert torch.isfinite(loss) and set(logs) == {"D(x)", "D(G(z))"}
    first = dcgan.windows(batch, model.frames, random=True)
    assert not torch.equal(first, dcgan.windows(batch, model.frames, random=True))


def test_scores_before_inversion_compare_images_with_the_clips_they_came_from(monkeypatch):
    # The pre-inversion NDB/K bins images by the same features as the audio's NDB/K; that is fair
    # only if a training clip's own image, denormalised, has the clip's features.
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    from musiclib import metrics
    from musiclib.datasets import bundled

    chorales = bundled.chorales()
    model = dcgan.DCGAN(dcgan.DCGAN.Settings(), chorales.config)
    model.fit(chorales)
    images, _ = dcgan.fixed_images(chorales, "train")
    log_mel = model.images_to_log_mel(torch.from_numpy(np.array(images))[:, None]).values
    clip_features = metrics.clip_features(np.asarray(chorales.clips("train")), chorales.config)
    np.testing.assert_allclose(metrics.log_mel_features(log_mel), clip_features, atol=1e-4)
    score = model.heldout_scores(chorales)["ndb_k_before_inversion"]
    assert score > metrics.ndb_k(clip_features, metrics.log_mel_features(log_mel)) == 0.0
