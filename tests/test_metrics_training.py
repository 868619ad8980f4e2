import json

import numpy as np
import pytest
import torch

from musiclib import baselines, cli, features, metrics
from musiclib.datasets import bundled
from musiclib.training import Trainer, TrainConfig, load_checkpoint


@pytest.fixture(scope="module")
def chorales():
    ds = bundled.chorales(fast=True)
    return ds, np.asarray(ds.clips("train")), np.concatenate([ds.clips("val"), ds.clips("test")])


def test_pairwise_metrics_rank_signals(chorales):
    ds, train, heldout = chorales
    clean = heldout[0]
    slightly = clean + 0.01 * np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise = baselines.white_noise_clips(1, len(clean), baselines.rms(clean))[0]
    for metric in (metrics.log_spectral_distance, metrics.log_mel_l1, metrics.mel_cepstral_distortion, metrics.signal_spectral_convergence):
        assert metric(clean, clean, ds.config) < 1e-6
        assert metric(clean, slightly, ds.config) < metric(clean, noise, ds.config), metric.__name__
    assert metrics.multi_resolution_stft_distance(clean, slightly) < metrics.multi_resolution_stft_distance(clean, noise)


def test_set_metrics_separate_music_from_noise(chorales):
    ds, train, heldout = chorales
    half = len(heldout) // 2
    real, other = heldout[:half], heldout[half:]
    noise = baselines.white_noise_clips(len(heldout), ds.clip_samples, baselines.rms(train))
    f_train = metrics.clip_features(train, ds.config)
    f_real, f_other, f_noise = (metrics.clip_features(c, ds.config) for c in (heldout, other, noise))
    # NDB/K needs samples of a fair size: two halves of one distribution against as much noise
    half_a, half_b = f_train[::2], f_train[1::2]
    many_noise = metrics.clip_features(baselines.white_noise_clips(len(half_b), ds.clip_samples, baselines.rms(train)), ds.config)
    assert metrics.ndb_k(half_a, half_b, k=10) <= 0.2
    assert metrics.ndb_k(half_a, many_noise, k=10) >= 0.6
    fd_real = metrics.mfcc_chroma_frechet_distance(real, train, ds.config.sample_rate)
    fd_noise = metrics.mfcc_chroma_frechet_distance(noise[:half], train, ds.config.sample_rate)
    assert fd_real * 10 < fd_noise
    frames = lambda clips: np.concatenate([metrics.frame_features(c, ds.config.sample_rate) for c in clips])
    train_frames = frames(train)
    same = metrics.kernel_distance(frames(real), train_frames)
    far = metrics.kernel_distance(frames(noise[:half]), train_frames)
    assert same["low"] <= same["mean"] <= same["high"] and far["low"] > 0
    assert abs(same["mean"]) * 10 < far["mean"] and same["high"] < far["low"]
    copies = metrics.memorization_ratio(f_train, metrics.clip_features(train[:8], ds.config), f_other)
    fresh = metrics.memorization_ratio(f_train, metrics.clip_features(real, ds.config), f_other)
    assert copies < 0.01 and fresh > 0.5


def test_frame_rate_comb_hears_a_vocoder_buzz_and_not_music(chorales):
    ds, _, heldout = chorales
    config = ds.config
    samples = np.arange(config.sample_rate)

    def pulses(period):
        y = np.zeros(config.sample_rate, dtype=np.float32)
        y[(samples % period) == 0] = 1.0
        return y

    assert metrics.frame_rate_comb(pulses(config.hop_length), config) > 0.95  # one click per frame: all on the comb
    assert metrics.frame_rate_comb(pulses(173), config) < 0.3  # 127.5 Hz: off the 86-Hz comb
    assert np.mean([metrics.frame_rate_comb(clip, config) for clip in heldout]) < 0.2
    assert metrics.frame_rate_comb(np.zeros(config.sample_rate), config) == 0.0


def test_pitch_statistics_find_the_note():
    from musiclib import signals

    y = signals.chord(notes=(69,), seconds=1.0, sample_rate=22050)
    stats = metrics.pitch_statistics(y, 22050, target_midi=69)
    assert stats["voiced_fraction"] > 0.5 and stats["within_tolerance"] >= 0.8
    assert metrics.pitch_statistics(y, 22050, target_midi=72)["within_tolerance"] < 0.2


def test_pca_and_persistence_baselines(chorales):
    ds, train, heldout = chorales
    spec = np.stack([features.log_mel(c, ds.config) for c in train[:40]])
    pca = baselines.PCABaseline(8).fit(spec)
    assert pca.reconstruct(spec).shape == spec.shape
    err_8 = np.mean(np.abs(pca.reconstruct(spec) - spec))
    err_2 = np.mean(np.abs(baselines.PCABaseline(2).fit(spec).reconstruct(spec) - spec))
    assert err_8 < err_2
    y = baselines.persistence_blocks(np.arange(10.0), 7, block_size=4)
    np.testing.assert_array_equal(y, [6, 7, 8, 9, 6, 7, 8])
    seq = np.arange(12, dtype=np.float64).reshape(1, 12)
    assert baselines.one_step_persistence_mse(seq) == 1.0


def _tiny_trainer(run_dir, steps, learning_rate_schedule=()):
    from musiclib import AudioConfig

    from helpers import TinyModel

    torch.manual_seed(0)
    model = TinyModel()
    data = np.random.default_rng(0).standard_normal((37, 8)).astype(np.float32)

    config = TrainConfig(steps=steps, batch_size=8, learning_rate=1e-2, seed=3, checkpoint_every=5, progress=False, device="cpu",
                         learning_rate_schedule=learning_rate_schedule)
    return Trainer(model, data, run_dir, config, AudioConfig(), {"kind": "tiny"}, val_data=data[:10])


def test_resume_ends_with_the_same_weights(tmp_path):
    straight = _tiny_trainer(tmp_path / "straight", 20)
    straight.fit()
    first = _tiny_trainer(tmp_path / "resumed", 10)
    first.fit()
    second = _tiny_trainer(tmp_path / "resumed", 20)  # a fresh process would do the same
    assert second.resume() and second.step == 10
    second.step = 0  # fit() resumes by itself
    second.fit()
    for a, b in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    state = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert state["step"] == 20 and state["audio_config"]["hop_length"] == 256 and state["model_config"] == {"kind": "tiny"}
    assert not list((tmp_path / "resumed").glob(".*tmp"))


def test_learning_rate_schedule_survives_a_resume(tmp_path):
    schedule = ((16, 0.01), (7, 0.1))  # given out of order on purpose
    straight = _tiny_trainer(tmp_path / "straight", 20, schedule)
    straight.fit()
    assert [record["learning_rate_factor"] for record in straight.history] == [1.0, 0.1, 0.1, 0.01]
    assert straight.optimizers[""].param_groups[0]["lr"] == pytest.approx(1e-4)
    _tiny_trainer(tmp_path / "resumed", 10, schedule).fit()
    resumed = _tiny_trainer(tmp_path / "resumed", 20, schedule)
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    constant = _tiny_trainer(tmp_path / "constant", 20)
    constant.fit()
    assert not torch.equal(constant.model.net[0].weight, straight.model.net[0].weight)
    with pytest.raises(ValueError, match="factors > 0"):
        TrainConfig(learning_rate_schedule=((5, 0.0),))
    with pytest.raises(ValueError, match="pairs"):
        TrainConfig(learning_rate_schedule=[16000, 0.1])


def test_cli_train_generate_evaluate_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    run = tmp_path / "run"
    assert cli.main(["train", "spectral-noise", "--data", "chorales", "--out", str(run), "--steps", "30"]) == 0
    assert (run / "config.json").exists() and (run / "checkpoint.pt").exists() and list((run / "samples").glob("*.wav"))
    assert cli.main(["generate", str(run), "--seconds", "2", "--out", str(tmp_path / "g.wav")]) == 0
    from musiclib import audio

    y, sr = audio.load(tmp_path / "g.wav")
    assert len(y) == 2 * sr and 0.001 < baselines.rms(y) < 1
    assert cli.main(["evaluate", str(run), "--n-clips", "8"]) == 0
    scores = json.loads((run / "eval.json").read_text())
    assert scores["generated"]["frechet_distance"] < scores["white_noise"]["frechet_distance"]
    assert scores["generated"]["kernel_distance"] < scores["white_noise"]["kernel_distance_interval"][0]
    # real music's memorisation ratio is measured against a disjoint yardstick, so it is not 1 by construction
    assert scores["heldout_real"]["memorization_ratio"] != 1.0 and 0.5 < scores["heldout_real"]["memorization_ratio"] < 2
    assert cli.main(["generate", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.wav")]) == 2
    assert "not a trained run" in capsys.readouterr().err
