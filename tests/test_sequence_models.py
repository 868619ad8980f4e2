"""Issue 4: the GRUV LSTM and the sample-level LSTM (seeds 002 and 003)."""
import json

import numpy as np
import pytest
import torch

from musiclib import AudioConfig, baselines, cli, keras_twins, runs, set_seed
from musiclib.datasets import gruv
from musiclib.models import gruv_lstm, sample_lstm
from musiclib.models.layers import count_parameters, keras_lstm


def small_gruv(block_size, hidden_size):
    return gruv_lstm.GRUV(gruv_lstm.GRUV.Settings(block_size=block_size, hop=block_size // 2, hidden_size=hidden_size), AudioConfig())


def test_keras_style_lstm_has_one_bias_and_matches_torch_lstm():
    set_seed(0)
    reference = torch.nn.LSTM(5, 7, batch_first=True)
    single = keras_lstm(5, 7)
    assert count_parameters(single) == 4 * (5 * 7 + 7 * 7 + 7) == count_parameters(reference) - 4 * 7
    with torch.no_grad():
        single.weight_ih_l0.copy_(reference.weight_ih_l0)
        single.weight_hh_l0.copy_(reference.weight_hh_l0)
        single.bias_ih_l0.copy_(reference.bias_ih_l0 + reference.bias_hh_l0)
    x = torch.randn(3, 11, 5)
    torch.testing.assert_close(single(x)[0], reference(x)[0])


@pytest.mark.tensorflow
def test_gruv_seed_replica_parameter_count_in_both_frameworks():
    settings = gruv_lstm.SeedGRUV.Settings()
    size = gruv.feature_size(settings.block_size, settings.form)
    assert count_parameters(gruv_lstm.SeedGRUV(settings, AudioConfig())) == 16_786_432
    assert count_parameters(keras_twins.gruv(size, settings.hidden_size)) == 16_786_432


@pytest.mark.tensorflow
def test_gruv_keras_and_torch_give_the_same_outputs():
    import keras

    keras.utils.set_random_seed(0)
    keras_model = keras_twins.gruv(18, 8)
    model = keras_twins.copy_gruv(small_gruv(block_size=16, hidden_size=8), keras_model)
    assert count_parameters(model) == keras_model.count_params()
    x = np.random.default_rng(0).standard_normal((2, 6, 18)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(x))[0].numpy(), keras_model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.tensorflow
def test_sample_lstm_replica_count_keras_parity_and_relu_lesson():
    import keras

    assert count_parameters(sample_lstm.SampleLSTM(sample_lstm.SampleLSTM.Settings(), AudioConfig())) == 48_250
    keras.utils.set_random_seed(0)
    keras_model = keras_twins.sample_lstm(3, 100)
    assert keras_model.count_params() == 48_250
    model = keras_twins.copy_sample_lstm(sample_lstm.SampleLSTM(sample_lstm.SampleLSTM.Settings(), AudioConfig()), keras_model)
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
        through_lstm = model.head(model.lstm(torch.from_numpy(x)[:, None])[0][:, 0]).squeeze(-1).numpy()
    np.testing.assert_allclose(ours, keras_model.predict(x[:, None, :], verbose=0)[:, 0], atol=1e-5)
    np.testing.assert_allclose(ours, through_lstm, atol=1e-6)
    set_seed(0)
    relu = sample_lstm.SampleLSTM(sample_lstm.SampleLSTM.Settings(output_activation="relu"), AudioConfig())
    with torch.no_grad():
        assert relu(torch.randn(4096, 3) * 3).min() >= 0  # a ReLU output can never be a negative sample


def test_free_running_equals_the_seeds_refeeding():
    set_seed(0)
    model = small_gruv(block_size=8, hidden_size=6).eval()
    model.residual_std.fill_(0.3)
    prime = torch.randn(2, 4, 10)
    stateful = gruv_lstm.free_run(model, prime, 12, temperature=1.0, seed=5)
    refed = gruv_lstm.refeed_run(model, prime, 12, temperature=1.0, seed=5)
    assert stateful.shape == (2, 12, 10)
    torch.testing.assert_close(stateful, refed, atol=1e-5, rtol=1e-5)


def test_windowed_overlap_add_removes_block_edge_clicks():
    rng = np.random.default_rng(0)
    t = np.arange(2048) / 22050
    # Blocks of tones that start with unrelated phases, as independently generated blocks do.
    blocks = np.stack([np.sin(2 * np.pi * 440 * t + rng.uniform(0, 2 * np.pi)) for _ in range(20)]).astype(np.float32)
    rectangular = gruv.blocks_to_audio(blocks)
    windowed = gruv.blocks_to_audio(blocks * gruv.synthesis_window(2048), hop=1024)
    assert gruv.boundary_click_ratio(rectangular, 2048) > 5
    assert gruv.boundary_click_ratio(windowed, 1024) < 1.5
    y = rng.standard_normal(5000).astype(np.float32)
    np.testing.assert_allclose(gruv.blocks_to_audio(gruv.to_blocks(y, 512, 256), 256)[: len(y)], y, atol=1e-5)
    with pytest.raises(ValueError, match="hop must be"):
        gruv.to_blocks(y, 512, 100)


def test_cli_gruv_and_sample_lstm(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    for name, settings in (("gruv", {"hidden_size": 32}), ("sample-lstm", {"windows": 5000, "hidden_size": 16})):
        run = tmp_path / name
        assert cli.main(["train", name, "--out", str(run), "--steps", "40", "--set", json.dumps(settings)]) == 0
        assert cli.main(["generate", str(run), "--seconds", "0.5", "--out", str(tmp_path / f"{name}.wav")]) == 0
        assert "held-out prime" in capsys.readouterr().out
        from musiclib import audio

        y, sr = audio.load(tmp_path / f"{name}.wav")
        assert np.all(np.isfinite(y)) and baselines.rms(y) > 1e-3
        assert cli.main(["evaluate", str(run), "--n-clips", "4"]) == 0
        scores = json.loads((run / "eval.json").read_text())["heldout_scores"]
        assert {"one_step_mse", "persistence_mse", "mean_predictor_mse"} <= set(scores)


def test_sample_lstm_scores_beside_its_baselines():
    rng = np.random.default_rng(0)
    t = np.arange(40_000) / 8000
    clips = (np.sin(2 * np.pi * 200 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32).reshape(4, -1)
    rows = sample_lstm.windows(clips, 3, 5000, scale=1.0)
    assert rows.shape == (5000, 4)
    scores = sample_lstm.baseline_mses(rows, sample_lstm.windows(clips, 3, 2000, scale=1.0, seed=1))
    # A sinusoid obeys x[t] = 2cos(w) x[t-1] - x[t-2]: linear prediction is near perfect, persistence is not.
    assert scores["linear_prediction_mse"] < 0.1 * scores["persistence_mse"] < scores["mean_predictor_mse"]


@pytest.mark.parametrize("name", ["gruv", "gruv-seed"])
def test_generated_file_continues_where_the_prime_stops(tmp_path, monkeypatch, capsys, name):
    """With a model that repeats its last input block, the written file must go on from the prime's last block."""
    import soundfile

    monkeypatch.setenv("MUSICLIB_FAST", "1")
    run = tmp_path / name
    assert cli.main(["train", name, "--out", str(run), "--steps", "2", "--set", '{"hidden_size": 8}']) == 0
    monkeypatch.setattr(gruv_lstm, "free_run", lambda model, prime, n, *args: prime[:, -1:].repeat(1, n, 1))
    capsys.readouterr()
    assert cli.main(["generate", str(run), "--seconds", "0.5", "--out", str(tmp_path / "g.wav")]) == 0
    assert "0-1.00 s is the held-out prime, 1.00-1.50 s is generated" in capsys.readouterr().out
    written, sr = soundfile.read(tmp_path / "g.wav", dtype="float32")
    spec, _, _, run_config = runs.load(run)
    prime = runs.heldout_primes(runs.run_dataset(run, run_config), spec, 1, seed=0)[0]
    n, b, h = len(prime), run_config["model_config"]["block_size"], run_config["model_config"]["hop"]
    assert len(written) == n + sr // 2
    np.testing.assert_allclose(written[:n], prime, atol=1e-4)
    if h == b:  # the last whole block of the prime, played again
        expected = prime[n - b:]
    else:  # overlap-add of the last windowed block with itself, one hop apart
        block = gruv.to_blocks(prime[n - b:], b, h)[1]
        expected = gruv.blocks_to_audio(np.stack([block] * 3), h)[:h]
    np.testing.assert_allclose(written[n : n + len(expected)], expected, atol=2e-4)
