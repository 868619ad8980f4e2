"""Issue 5: the MelGAN vocoder, its training phases, and spectrogram models speaking through it from the CLI."""
import librosa
import numpy as np
import pytest
import torch

from musiclib import AudioConfig, audio, baselines, cli, features, metrics, set_seed
from musiclib.datasets import bundled
from musiclib.models import melgan
from musiclib.models.layers import count_parameters
from musiclib.training import Trainer, TrainConfig


def test_paper_generator_has_the_published_parameter_count():
    generator = melgan.Generator(n_mels=80, hop_length=256, ngf=32)
    assert count_parameters(generator) == 4_266_050
    assert generator(torch.zeros(2, 80, 5)).shape == (2, 1, 5 * 256)


def test_upsampling_must_multiply_to_the_hop_length():
    with pytest.raises(ValueError, match="hop length is 512"):
        melgan.Generator(hop_length=512)


def test_multi_scale_discriminator_sees_three_resolutions():
    outputs = melgan.MultiScaleDiscriminator(n_scales=3, ndf=4, max_channels=64)(torch.zeros(2, 1, 4096))
    assert len(outputs) == 3
    lengths = [scale[0].shape[-1] for scale in outputs]
    assert lengths == [4096, 2048, 1024]


def test_a_steady_mel_frame_gives_audio_that_repeats_every_hop():
    # Any weights: a fully convolutional generator with total stride = hop is shift-equivariant by one frame,
    # so the same frame over and over can only give a signal of period hop (partials on multiples of sr / hop).
    torch.manual_seed(0)
    generator = melgan.Generator(n_mels=80, hop_length=256, ngf=4)
    middle = slice(15 * 256, 25 * 256)  # away from the padded edges

    def hop_repeat_error(log_mel):
        with torch.no_grad():
            return metrics.repeat_error(generator(log_mel)[0, 0, middle].numpy(), 256)

    assert hop_repeat_error(3 * torch.randn(1, 80, 1).repeat(1, 1, 40)) < 1e-3
    assert hop_repeat_error(3 * torch.randn(1, 80, 40)) > 1e-3  # frames that change break the period


def test_comparison_ranks_griffin_lim_above_random_phases_on_held_out_music():
    dataset = bundled.chorales(fast=True)
    clips = dataset.heldout_clips()[:6]
    set_seed(0)
    untrained = melgan.MelGAN(melgan.MelGAN.Settings(), dataset.config)
    scores = melgan.compare_with_griffin_lim(untrained, clips, dataset.config)
    assert set(scores) == {"vocoder", "griffin_lim_32", "random_phase"}
    # 32 iterations make the phases consistent: closer to the original by both distances, and off the buzz.
    assert scores["griffin_lim_32"]["log_mel_l1"] < scores["random_phase"]["log_mel_l1"] - 0.1
    assert scores["griffin_lim_32"]["mrstft"] < scores["random_phase"]["mrstft"]
    assert scores["vocoder"]["frame_rate_comb"] > 0.9 > 0.2 > scores["griffin_lim_32"]["frame_rate_comb"]


def test_a_signal_that_repeats_every_hop_could_beat_griffin_lim_only_above_synthesised_notes():
    config = AudioConfig()
    n, rng = np.arange(config.sample_rate), np.random.default_rng(0)
    comb = sum(rng.random() * np.cos(2 * np.pi * k * n / config.hop_length + rng.uniform(0, 2 * np.pi)) for k in range(1, 60))
    assert melgan.comb_floor(features.log_mel(0.05 * comb.astype(np.float32), config)[:, 4:-4], config) < 0.02
    sine = 0.5 * np.sin(2 * np.pi * 470 * n / config.sample_rate).astype(np.float32)  # between the 431- and 517-Hz teeth
    assert melgan.comb_floor(features.log_mel(sine, config)[:, 4:-4], config) > 0.1
    with pytest.raises(ValueError, match="not a multiple of hop"):
        melgan.comb_floor(np.zeros((80, 3)), AudioConfig(n_fft=1000))

    def floor_and_griffin_lim(dataset):
        clips, config = dataset.heldout_clips()[:8], dataset.config
        log_mel = np.stack([features.log_mel(c, config) for c in clips])
        griffin_lim = baselines.griffin_lim_resynthesis(clips, config)
        griffin_lim_bands = np.mean([metrics.log_mel_l1(c, y, config, per_band=True) for c, y in zip(clips, griffin_lim)], axis=0)
        np.testing.assert_allclose(griffin_lim_bands.mean(), np.mean([metrics.log_mel_l1(c, y, config) for c, y in zip(clips, griffin_lim)]), rtol=1e-5)
        floor_bands = melgan.comb_floor(log_mel, config, per_band=True)
        assert floor_bands.shape == (config.n_mels,)
        return floor_bands, griffin_lim_bands

    # Synthesised chorales: steady partials and empty high bands, the comb's best case.
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.max_frequency, htk=config.mel_htk)[1:-1]
    notes = int(np.searchsorted(centres, 1300.0))  # the bands below 1.3 kHz, where the notes are
    floor_bands, griffin_lim_bands = floor_and_griffin_lim(bundled.chorales_synth(fast=True))
    assert floor_bands[notes:].mean() < griffin_lim_bands[notes:].mean() - 0.1  # above the notes a comb could beat Griffin-Lim...
    assert floor_bands[:notes].mean() > griffin_lim_bands[:notes].mean() + 0.1  # ...but not where the notes are
    # Sampled instruments fill the upper bands, so Griffin-Lim loses little there: the comb is behind over all bands too.
    floor_bands, griffin_lim_bands = floor_and_griffin_lim(bundled.chorales(fast=True))
    assert floor_bands.mean() > griffin_lim_bands.mean() + 0.04


def test_torch_log_mel_equals_the_shared_features():
    config = AudioConfig()
    y = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * 0.1
    ours = melgan.LogMelLayer(config)(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(ours, features.log_mel(y, config), atol=2e-3)


def test_segments_pair_each_audio_segment_with_its_mel_frames():
    dataset = bundled.chorales(fast=True)
    log_mel, waves = melgan.segments(dataset, "val", segment_frames=8)
    hop = dataset.config.hop_length
    assert log_mel.shape[1:] == (dataset.config.n_mels, 8) and waves.shape[1] == 8 * hop
    # Away from the segment's edges (where the STFT pads), the segment's own log-mel is the clip's.
    own = features.log_mel(waves[3], dataset.config)
    edge = dataset.config.n_fft // (2 * hop)
    np.testing.assert_allclose(own[:, edge : 8 - edge], log_mel[3][:, edge : 8 - edge], atol=1e-3)


def _vocoder_trainer(run_dir, steps):
    set_seed(0)
    settings = melgan.MelGAN.Settings(ngf=4, ndf=4, max_channels=32, warmup_steps=3)
    model = melgan.MelGAN(settings, AudioConfig())
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((12, AudioConfig().n_mels, 16)).astype(np.float32) - 5, 0.1 * rng.standard_normal((12, 4096)).astype(np.float32))
    train_config = TrainConfig(steps=steps, batch_size=4, learning_rate=1e-3, betas=(0.5, 0.9), seed=2, checkpoint_every=2,
                               progress=False, device="cpu")
    return Trainer(model, data, run_dir, train_config, AudioConfig(),
                   settings.to_dict())


def test_warmup_then_adversarial_phases_resume_exactly(tmp_path):
    straight = _vocoder_trainer(tmp_path / "straight", 6)
    rates = {phase: optimizer.param_groups[0]["lr"] for phase, optimizer in straight.optimizers.items()}
    assert rates == {"reconstruction": 1e-3, "discriminator": 1e-4, "generator": 1e-4}  # the warm-up's rate, then the paper's
    history = straight.fit()
    assert "loss_reconstruction" in history[0] and "loss_discriminator" not in history[0]
    assert {"loss_discriminator", "loss_generator", "feature_matching", "D(x)"} <= set(history[-1])
    _vocoder_trainer(tmp_path / "resumed", 3).fit()
    resumed = _vocoder_trainer(tmp_path / "resumed", 6)
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_vocoder_renders_held_out_audio_and_speaks_for_the_dcgan(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    vocoder = tmp_path / "melgan"
    assert cli.main(["train", "melgan", "--out", str(vocoder), "--steps", "3", "--set", '{"warmup_steps": 1}']) == 0
    assert cli.main(["generate", str(vocoder), "--out", str(tmp_path / "resynthesis.wav")]) == 0
    assert "vocoder's rendering" in capsys.readouterr().out
    y, sr = audio.load(tmp_path / "resynthesis.wav")
    assert len(y) == 2 * sr and np.all(np.isfinite(y))

    gan = tmp_path / "dcgan"
    assert cli.main(["train", "dcgan", "--out", str(gan), "--steps", "2"]) == 0
    assert cli.main(["generate", str(gan), "--seconds", "1.0", "--vocoder", str(vocoder), "--out", str(tmp_path / "gan.wav")]) == 0
    y, sr = audio.load(tmp_path / "gan.wav")
    assert len(y) == sr and np.all(np.isfinite(y))
    # A vocoder cannot speak for a model without log-mel output, nor can a non-vocoder be used as one.
    assert cli.main(["generate", str(gan), "--vocoder", str(gan), "--out", str(tmp_path / "x.wav")]) == 2
    assert "not a vocoder" in capsys.readouterr().err
    seed_gan = tmp_path / "dcgan-seed"
    assert cli.main(["train", "dcgan-seed", "--out", str(seed_gan), "--steps", "1"]) == 0
    assert cli.main(["generate", str(seed_gan), "--vocoder", str(vocoder), "--out", str(tmp_path / "x.wav")]) == 2
    assert "the inverter was trained on features" in capsys.readouterr().err  # the replica's log-mel has its own settings
    assert not (tmp_path / "x.wav").exists()
