"""Audio tokens: the VQ-VAE tokenizer, the token transformer (cache, sampling, Keras twin) and their CLI."""
import json

import numpy as np
import pytest
import torch

from musiclib import AudioConfig, cli, keras_twins, runs
from musiclib.models import render
from musiclib.models import token_transformer as tt
from musiclib.models import vq

from helpers import continues_where_the_prime_stops, fails_cleanly


def test_the_quantiser_picks_the_nearest_code_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    quantizer = vq.VectorQuantizer(16, 4, restart_below=0).eval()
    z = torch.randn(3, 4, 5, requires_grad=True)
    quantised, indices, _ = quantizer(z)
    flat = z.detach().transpose(1, 2).reshape(-1, 4)
    brute = torch.cdist(flat, quantizer.codebook).argmin(dim=1).view(3, 5)
    assert torch.equal(indices, brute)
    torch.testing.assert_close(quantised.detach(), quantizer.lookup(indices))
    quantised.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_ema_moves_a_code_to_the_mean_of_its_vectors_and_dead_codes_restart_on_the_batch():
    torch.manual_seed(0)
    quantizer = vq.VectorQuantizer(4, 2, decay=0.0, restart_below=0).train()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0], [10.0, -10.0]]))
    z = torch.tensor([[0.5, 1.5], [-0.5, 0.5]]).t()[None]  # two vectors, both nearest code 0
    quantizer(z)
    torch.testing.assert_close(quantizer.codebook[0], torch.tensor([0.0, 1.0]), atol=1e-4, rtol=0)  # decay 0: exactly their mean

    restarting = vq.VectorQuantizer(4, 2, restart_below=0.5).train()
    restarting.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
    batch = torch.randn(1, 2, 50) * 0.1
    restarting(batch)
    vectors = batch[0].t()
    for code in restarting.codebook[1:]:  # never chosen: moved onto vectors of the batch
        assert torch.isclose(vectors, code).all(dim=1).any()


def test_kmeans_finds_separated_clusters_and_places_a_quantiser_on_its_first_batch():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vectors = (centres[:, None] + 0.1 * torch.randn(3, 20, 2)).reshape(-1, 2)
    centroids, counts = vq.kmeans(vectors, 3)
    assert sorted(counts.tolist()) == [20, 20, 20]
    assert torch.cdist(centres, centroids).min(dim=1).values.max() < 0.2

    quantizer = vq.VectorQuantizer(3, 2, kmeans_init=True, restart_below=0).train()
    quantizer(vectors.t()[None])
    assert bool(quantizer.initialised)
    assert torch.cdist(centres, quantizer.codebook).min(dim=1).values.max() < 0.2


def test_residual_stages_quantise_what_the_stages_before_left_over():
    torch.manual_seed(0)
    rvq = vq.ResidualQuantizer(3, 8, 4, restart_below=0).train()
    rvq(torch.randn(1, 4, 200))  # k-means places each stage on the residuals of the first batch
    rvq.eval()
    z = torch.randn(2, 4, 5, requires_grad=True)
    quantised, indices, _ = rvq(z)
    assert indices.shape == (2, 5, 3)
    residual = z.detach()
    for q, stage in enumerate(rvq.stages):  # stage q's index is the nearest code to the residual so far
        assert torch.equal(indices[..., q], stage.nearest(residual))
        residual = residual - stage.lookup(indices[..., q])
    torch.testing.assert_close(quantised.detach(), rvq.lookup(indices))
    torch.testing.assert_close(rvq.nearest(z.detach()), indices)
    error = [(z.detach() - sum(rvq.stages[q].lookup(indices[..., q]) for q in range(n))).pow(2).mean() for n in (1, 2, 3)]
    assert error[0] > error[1] > error[2]  # each stage takes away more of the error
    quantised.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_usage_counts_codes_and_perplexity():
    assert vq.usage(np.arange(8).repeat(3), 8) == {"codes_used": 8, "perplexity": pytest.approx(8.0)}
    assert vq.usage(np.zeros(20, int), 8) == {"codes_used": 1, "perplexity": pytest.approx(1.0)}


def test_frame_groups_round_trip():
    images = np.random.default_rng(0).standard_normal((3, 8, 13)).astype(np.float32)
    groups = vq.frame_groups(images)
    assert groups.shape == (3 * 3, 32)
    np.testing.assert_array_equal(vq.ungroup(groups, 3, 8), images[..., :12])


@pytest.mark.parametrize("grid, bands", [("time", 1), ("time-frequency", 2)])
def test_the_tokenizer_gives_a_frame_of_tokens_per_four_frames_and_decodes_back_to_that_length(grid, bands):
    settings = vq.Tokenizer.Settings(grid=grid, width=8, dim=4, codebook_size=8, n_codebooks=3)
    tokenizer = vq.Tokenizer(settings, AudioConfig(n_mels=16))
    images = np.random.default_rng(0).standard_normal((2, 16, 87)).astype(np.float32)
    tokens = tokenizer.encode(images)
    assert tokens.shape == (2, 21, 3 * bands) and tokens.dtype == np.int64  # 8 mel bands per group: 2 groups of 16
    assert tokenizer.decode(tokens).shape == (2, 16, 84)
    assert tokenizer.bits_per_second == pytest.approx(3 * bands * 3 * 22050 / 256 / 4)
    with torch.no_grad():  # the tokens are the quantiser's indices, laid out step by step
        reconstruction, indices, _ = tokenizer.eval()(torch.from_numpy(images[..., :84]))
    np.testing.assert_array_equal(indices.numpy(), tokens)
    np.testing.assert_allclose(reconstruction.numpy(), tokenizer.decode(tokens), atol=1e-5)


def test_a_checkpoint_from_before_residual_codebooks_still_loads():
    torch.manual_seed(0)
    tokenizer = vq.Tokenizer(vq.Tokenizer.Settings(width=8, dim=4, codebook_size=8), AudioConfig(n_mels=16))
    old = {name.replace("quantizer.stages.0.", "quantizer."): value for name, value in tokenizer.state_dict().items()
           if not name.endswith("initialised")}  # one VectorQuantizer's buffers, as checkpoints held them
    assert "quantizer.codebook" in old
    loaded = vq.Tokenizer(vq.Tokenizer.Settings(width=8, dim=4, codebook_size=8), AudioConfig(n_mels=16))
    loaded.load_state_dict(old)
    for name, value in tokenizer.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


def test_a_prior_from_before_rows_of_several_tokens_still_loads():
    prior = _prior()
    old = {name.replace("token_embeddings.0.", "token_embedding."): value for name, value in prior.state_dict().items()}
    loaded = tt.TokenPrior(codebook_size=10, n_codebooks=1, context=8, d_model=16, heads=2, layers=2)
    loaded.load_state_dict(old)
    torch.testing.assert_close(loaded.token_embeddings[0].weight, prior.token_embeddings[0].weight)


def test_a_bad_grid_is_refused():
    with pytest.raises(ValueError, match="grid"):
        vq.Tokenizer.Settings(grid="frequency").check()
    with pytest.raises(ValueError, match="multiple of 8"):
        vq.Tokenizer(vq.Tokenizer.Settings(grid="time-frequency"), AudioConfig(n_mels=20))


def test_the_delay_pattern_shifts_codebook_q_by_q_rows_and_undoes_exactly():
    frames = np.arange(12).reshape(4, 3)
    rows = tt.delay(frames, pad=-9)
    assert rows.shape == (6, 3)
    np.testing.assert_array_equal(rows[:, 0], [0, 3, 6, 9, -9, -9])
    np.testing.assert_array_equal(rows[:, 2], [-9, -9, 2, 5, 8, 11])
    np.testing.assert_array_equal(tt.undelay(rows), frames)
    known = tt.known_rows(frames[None, :2], 2, pad=-9)[0]  # two frames known, two to draw
    np.testing.assert_array_equal(known[:, 1], [-9, 1, 4, -1, -1, -9])


def _prior(context=8, dropout=0.0, n_codebooks=1):
    torch.manual_seed(0)
    return tt.TokenPrior(codebook_size=10, n_codebooks=n_codebooks, context=context, d_model=16, heads=2, layers=2,
                         dropout=dropout).eval()


def test_attention_is_causal_and_the_cache_gives_the_full_forward_pass():
    prior = _prior(n_codebooks=2)
    tokens = torch.tensor([[[10, 10], [3, 10], [4, 1], [5, 2], [6, 3], [7, 4]]])
    changed = tokens.clone()
    changed[0, 4:, 0] = torch.tensor([1, 2])
    with torch.no_grad():
        full, _ = prior(tokens)
        torch.testing.assert_close(prior(changed)[0][:, :4], full[:, :4])  # the future does not leak back
        pieces = [prior(tokens[:, :3])[0]]
        for i in range(3, 6):  # one token at a time, on the keys and values of the tokens before it
            _, past = prior(tokens[:, :i])
            pieces.append(prior(tokens[:, i:i + 1], past)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="context"):
        prior(torch.zeros(1, 9, 2, dtype=torch.long))


@pytest.mark.parametrize("n_codebooks", [1, 3])
def test_sampling_with_the_cache_gives_the_tokens_of_recomputing_the_prefix_past_the_context(n_codebooks):
    prior = _prior(context=8, n_codebooks=n_codebooks)
    prefix = np.random.default_rng(0).integers(0, 10, (2, 3, n_codebooks))
    cached = tt.sample(prior, prefix, 20, seed=3)
    assert cached.shape == (2, 20, n_codebooks) and cached.min() >= 0 and cached.max() < 10  # never the start or pad token
    np.testing.assert_array_equal(cached, tt.sample(prior, prefix, 20, seed=3, use_cache=False))
    assert not np.array_equal(cached, tt.sample(prior, prefix, 20, seed=4))
    assert tt.sample(prior, prefix, 0).shape == (2, 0, n_codebooks)


def test_a_row_of_the_delay_pattern_is_drawn_in_one_step_with_the_known_tokens_kept(monkeypatch):
    prior = _prior(context=16, n_codebooks=3)
    prefix = np.array([[[1, 2, 3], [4, 5, 6]]])
    calls = []
    forward = prior.forward
    monkeypatch.setattr(prior, "forward", lambda tokens, past=None: calls.append(tokens.clone()) or forward(tokens, past))
    new = tt.sample(prior, prefix, 4, seed=0)
    assert len(calls) == 4 + 3 - 1  # L + Q - 1 steps for L new frames of Q tokens
    fed = torch.cat(calls, dim=1)[0].numpy()  # BOS, the prefix's rows, then each drawn row
    np.testing.assert_array_equal(fed[1:3], tt.delay(prefix[0], prior.pad)[:2])
    np.testing.assert_array_equal(fed[3, 1:], [5, 3])  # the prefix's later codebooks are kept, not drawn
    last_row = [prior.pad, prior.pad, new[0, -1, 2]]  # drawn after the last step: never fed back
    np.testing.assert_array_equal(tt.undelay(np.concatenate([fed[1:], [last_row]])), np.concatenate([prefix[0], new[0]]))


def test_top_1_is_the_most_likely_token_and_a_bad_temperature_is_refused():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.9]])
    generator = torch.Generator().manual_seed(0)
    assert tt.draw(logits, 1.0, 1, generator).tolist() == [1, 0]
    with pytest.raises(ValueError, match="temperature"):
        tt.draw(logits, 0.0, 0, generator)


def test_longest_copied_ngram_and_ngram_baselines():
    train = [np.array([1, 2, 3, 4, 5, 6])]
    assert tt.longest_copied_ngram([np.array([9, 2, 3, 4, 9])], train) == 3
    assert tt.longest_copied_ngram([np.array([9, 8, 7])], train) == 0
    uniform = tt.ngram_cross_entropy([np.arange(4).repeat(5)], [np.arange(4)], 4, order=1)
    assert uniform == pytest.approx(np.log(4))
    assert tt.ngram_cross_entropy([np.tile([0, 1], 50)], [np.tile([0, 1], 5)], 4, order=2) < 0.1


@pytest.mark.tensorflow
def test_the_keras_twin_has_the_same_size_and_with_copied_weights_the_same_logits():
    from musiclib.models.layers import count_parameters

    keras_model = keras_twins.token_prior(codebook_size=10, n_codebooks=2, context=8, d_model=16, heads=2, layers=2)
    prior = _prior(context=8, n_codebooks=2)
    assert count_parameters(keras_model) == count_parameters(prior)
    keras_twins.copy_token_prior(keras_model, prior)
    tokens = np.array([[[10, 10], [3, 10], [4, 1], [5, 2], [6, 3], [7, 4], [1, 5]]])
    with torch.no_grad():
        expected = prior(torch.from_numpy(tokens))[0].numpy()
    np.testing.assert_allclose(np.asarray(keras_model(tokens)), expected, atol=1e-4)


@pytest.fixture(scope="module")
def token_runs(tmp_path_factory):
    """A tiny tokenizer, and a token transformer on it, through the CLI."""
    folder = tmp_path_factory.mktemp("tokens")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICLIB_FAST", "1")
        assert cli.main(["train", "vq", "--out", str(folder / "vq"), "--steps", "3"]) == 0
        assert cli.main(["train", "token-transformer", "--out", str(folder / "tt"), "--steps", "3",
                         "--set", json.dumps({"tokenizer": str(folder / "vq")})]) == 0
    return folder


def test_the_token_transformer_holds_its_tokenizer_and_continues_exactly_where_the_prime_stops(token_runs, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    _, tokenizer, _, _ = runs.load(token_runs / "vq")
    _, model, config, _ = runs.load(token_runs / "tt")
    for name, value in tokenizer.state_dict().items():  # a moved run folder still generates: the tokenizer is inside
        torch.testing.assert_close(model.tokenizer.state_dict()[name], value)
    continues_where_the_prime_stops(token_runs / "tt", token_runs / "continued.wav")
    autonomous = render(model.sample(2, 1.0, seed=0), config.sample_rate)
    assert autonomous.shape == (2, config.sample_rate) and np.all(np.isfinite(autonomous))
    assert runs.read_config(token_runs / "tt")["model_config"]["tokenizer_config"] == tokenizer.settings.to_dict()


def test_a_token_transformer_trains_its_own_tokenizer_when_given_none(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    run = runs.train("token-transformer", "chorales", tmp_path / "tt", steps=2, overrides={"tokenizer_steps": 3}, progress=False)
    config = runs.read_config(run)
    assert config["model_config"]["tokenizer"] == ""
    assert runs.read_config(run / "tokenizer")["model"] == "vq"
    assert runs.history(run / "tokenizer")[-1]["step"] == 3
    assert config["model_config"]["tokenizer_run"] == str((run / "tokenizer").resolve())


def test_a_bad_tokenizer_setting_is_one_line_and_writes_nothing(token_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    for tokenizer, expected in ((tmp_path / "missing", "not a trained run"), (token_runs / "tt", "not a tokenizer")):
        out = tmp_path / "out"
        fails_cleanly(["train", "token-transformer", "--out", str(out), "--steps", "2", "--set", json.dumps({"tokenizer": str(tokenizer)})],
                       capsys, expected, watched=[token_runs])
        assert not out.exists()
