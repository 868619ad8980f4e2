"""The frame-rate codec and flow matching on its latent sequences: the path, the loss, the solvers, continuation and the CLI."""
import json

import numpy as np
import pytest
import torch

from musiclib import AudioConfig, cli, runs
from musiclib.models import codec, flow, render

from helpers import continues_where_the_prime_stops, fails_cleanly


def small_flow(length):
    audio = AudioConfig(n_mels=16)
    settings = flow.LatentFlow.Settings(autoencoder_config=codec.CodecSettings(width=4, channels=2), length=length, width=8, blocks=2)
    return flow.LatentFlow(settings, audio, codec.Codec(settings.autoencoder_config, audio))


class _ExactVelocity(torch.nn.Module):
    """The true velocity field of N(0, I) noise flowing onto one point ``target``: ``(target - x) / (1 - t)``."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x, t):
        return (self.target - x) / (1 - flow._per_example(t, x)).clamp_min(1e-6)


@pytest.mark.parametrize("solver", flow.SOLVERS)
def test_both_solvers_carry_noise_onto_a_point_and_keep_known_entries(solver):
    target = torch.tensor([[2.0, -1.0, 0.5]])
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    end, path = flow.integrate(_ExactVelocity(target), noise, steps=8, solver=solver, keep_path=True)
    torch.testing.assert_close(end, target.expand(4, 3), atol=1e-4, rtol=0)
    assert len(path) == 9 and torch.equal(path[0], noise)
    known, mask = torch.full((4, 3), 7.0), torch.tensor([[True, False, False]] * 4)
    end = flow.integrate(_ExactVelocity(target), noise, steps=4, solver=solver, known=known, known_mask=mask)
    assert torch.all(end[:, 0] == 7.0)
    with pytest.raises(ValueError, match="solver"):
        flow.integrate(_ExactVelocity(target), noise, steps=4, solver="rk45")


def test_the_loss_vanishes_for_the_true_velocity_field_and_not_for_another():
    """Data at one point: the true velocity is ``(target - x) / (1 - t)``; a field that stays still pays
    ``E |x1 - x0|^2`` per number, the target's mean square plus the noise's variance."""
    model = small_flow(2)
    target = torch.tensor([[[2.0, -1.0, 0.5, 1.0], [0.0, -0.5, 1.5, 0.2]]])
    data = target.expand(512, 2, 4)
    model.velocity = _ExactVelocity(target)
    torch.manual_seed(1)
    assert float(model.loss(data)) < 1e-3
    model.velocity = _StillVelocity()
    torch.manual_seed(1)
    assert float(model.loss(data)) == pytest.approx(float((target**2).mean()) + 1, rel=0.1)
    noise, data = torch.randn(5, 3, 4), torch.randn(5, 3, 4)
    torch.testing.assert_close(flow.interpolate(noise, data, torch.zeros(5)), noise)
    torch.testing.assert_close(flow.interpolate(noise, data, torch.ones(5)), data)


def test_the_gaussian_velocity_is_the_best_field_for_gaussian_data():
    """Its loss on N(0, I) data is below that of the same field scaled up or down, and at t = 0 and t = 1 it points
    from the noise to the data's mean (0) and from the data back to the noise's."""
    generator = torch.Generator().manual_seed(0)
    data, noise = torch.randn(20000, 4, generator=generator), torch.randn(20000, 4, generator=generator)
    t = torch.rand(20000, generator=generator)
    x_t, target = flow.interpolate(noise, data, t), data - noise

    def loss(scale):
        return float(((scale * flow.gaussian_velocity(x_t, t) - target) ** 2).mean())

    assert loss(1.0) < loss(0.9) and loss(1.0) < loss(1.1)
    x = torch.randn(3, 4)
    torch.testing.assert_close(flow.gaussian_velocity(x, torch.zeros(3)), -x)
    torch.testing.assert_close(flow.gaussian_velocity(x, torch.ones(3)), x)


class _StillVelocity(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


class _LinearVelocity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.randn(5, 5, generator=torch.Generator().manual_seed(2)) / 5

    def forward(self, x, t):
        return x @ self.weight + t[:, None]


def test_deterministic_ddim_steps_on_the_straight_path_are_the_euler_solver():
    """DDIM's step from t to t' re-mixes the data and noise the velocity implies, ``x1 = x + (1 - t) v`` and
    ``x0 = x - t v``; on the straight path that is an Euler step, so DDIM with 4 steps is ``integrate``'s Euler."""
    velocity, x = _LinearVelocity(), torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    ddim = x.clone()
    for k in range(4):
        t, t_next = k / 4, (k + 1) / 4
        v = velocity(ddim, torch.full((3,), t))
        data_estimate, noise_estimate = ddim + (1 - t) * v, ddim - t * v
        ddim = t_next * data_estimate + (1 - t_next) * noise_estimate
    torch.testing.assert_close(flow.integrate(velocity, x, steps=4, solver="euler"), ddim)


def test_latent_windows_slide_over_each_sequence_and_a_too_long_window_is_refused():
    sequences = [np.arange(10, dtype=np.float32).reshape(5, 2), np.zeros((2, 2), np.float32)]
    windows = flow.latent_windows(sequences, 3)
    assert windows.shape == (3, 3, 2)
    np.testing.assert_array_equal(windows[1], sequences[0][1:4])
    assert flow.latent_windows(sequences, 2, stride=2).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="length"):
        flow.latent_windows(sequences, 6)
    grouped = flow.context_windows(np.arange(2 * 9 * 3).reshape(2, 9, 3))
    assert grouped.shape == (4, flow.CONTEXT_FRAMES * 3)
    np.testing.assert_array_equal(grouped[1], np.arange(12, 24))


@pytest.fixture(scope="module")
def flow_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICLIB_FAST", "1")
        assert cli.main(["train", "codec", "--out", str(folder / "codec"), "--steps", "3"]) == 0
        assert cli.main(["train", "flow", "--out", str(folder / "flow"), "--steps", "3",
                         "--set", json.dumps({"autoencoder": str(folder / "codec")})]) == 0
    return folder


def test_the_flow_holds_its_autoencoder_and_continues_exactly_where_the_prime_stops(flow_runs, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    _, autoencoder, _, _ = runs.load(flow_runs / "codec")
    _, model, config, _ = runs.load(flow_runs / "flow")
    for name, value in autoencoder.state_dict().items():  # a moved run folder still generates: the VAE is inside
        torch.testing.assert_close(model.autoencoder.state_dict()[name], value)
    continues_where_the_prime_stops(flow_runs / "flow", flow_runs / "continued.wav")
    autonomous = render(model.sample(2, 1.0, seed=0), config.sample_rate)
    assert autonomous.shape == (2, config.sample_rate) and np.all(np.isfinite(autonomous))
    long = model.sample_latents(2, 3 * model.length, seed=0)  # longer than a training window: drawn whole
    assert long.shape == (2, 3 * model.length, model.latent_size) and np.all(np.isfinite(long))


def test_a_continuation_is_drawn_with_the_prime_kept_at_every_step():
    """The prime's frames are given: the network sees them on their own path at every step, so the new frames
    depend on the prime (another prime, other new frames from the same noise)."""
    torch.manual_seed(0)
    model = small_flow(8)
    model.latent_mean.fill_(0.5)
    model.latent_std.fill_(2.0)
    prefix = np.random.default_rng(0).standard_normal((2, 5, model.latent_size)).astype(np.float32)
    generated = model.sample_latents(2, 6, seed=0, steps=3, prefix=prefix)
    assert generated.shape == (2, 6, model.latent_size)
    assert not np.allclose(generated, model.sample_latents(2, 6, seed=0, steps=3, prefix=prefix + 3))
    np.testing.assert_allclose(generated, model.sample_latents(2, 6, seed=0, steps=3, prefix=prefix))
    np.testing.assert_allclose(model.denormalize(model.normalize(prefix)), prefix, atol=1e-5)


@pytest.mark.parametrize("n_frames", [1, 7, 40])
def test_sequences_of_any_length_are_drawn_with_and_without_a_prime(n_frames):
    model = small_flow(8)
    prefix = np.ones((2, 5, model.latent_size), np.float32)
    assert model.sample_latents(2, n_frames, seed=0, steps=2).shape == (2, n_frames, model.latent_size)
    assert model.sample_latents(2, n_frames, seed=0, steps=2, prefix=prefix).shape == (2, n_frames, model.latent_size)
    offsets = flow.frame_offsets(2)
    assert offsets == [0, codec.FRAMES_PER_STEP // 2]


def test_the_codec_keeps_frames_in_order_and_decodes_a_whole_sequence():
    """Latent frames are the band groups' vectors of one step side by side; encode → decode keeps the length."""
    torch.manual_seed(0)
    model = codec.Codec(codec.CodecSettings(width=4, channels=2), AudioConfig(n_mels=16))
    latent = torch.randn(3, 2, 2, 5)  # (B, channels, band groups, steps)
    frames = model._frames(latent)
    assert frames.shape == (3, 5, 4)
    torch.testing.assert_close(frames[1, 3], latent[1, :, :, 3].t().reshape(-1))
    torch.testing.assert_close(model._latent(frames), latent)
    images = np.random.default_rng(0).standard_normal((2, 16, 42)).astype(np.float32)
    latents = model.encode(images)
    assert latents.shape == (2, 10, 4) and model.decode(latents).shape == (2, 16, 40)
    assert model.steps_in(4 * 256 * 10 - 256) == 10 and model.steps_for(1.0) == 22
    with pytest.raises(ValueError, match="bands_per_group"):
        codec.Codec(codec.CodecSettings(bands_per_group=12), AudioConfig(n_mels=16))
    with pytest.raises(ValueError, match="multiple"):
        codec.Codec(codec.CodecSettings(bands_per_group=16), AudioConfig(n_mels=24))


def test_the_sharpness_term_charges_for_a_smoothed_edge_that_l1_barely_sees():
    target = torch.zeros(1, 8, 16)
    target[:, :, 8:] = 1.0  # an onset
    smoothed = target.clone()
    smoothed[:, :, 6:10] = torch.tensor([0.2, 0.4, 0.6, 0.8])
    assert float(codec.sharpness_loss(target, target)) == 0.0
    l1 = float((smoothed - target).abs().mean())
    assert float(codec.sharpness_loss(smoothed, target)) > l1
    shifted = target + 0.3  # the same edges, a level off: L1 pays, the sharpness term does not
    assert float(codec.sharpness_loss(shifted, target)) == pytest.approx(0.0, abs=1e-6)


def test_a_flow_trains_its_own_autoencoder_when_given_none(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    run = runs.train("flow", "chorales", tmp_path / "flow", steps=2, overrides={"autoencoder_steps": 3}, progress=False)
    config = runs.read_config(run)
    assert runs.read_config(run / "autoencoder")["model"] == "codec"
    assert runs.history(run / "autoencoder")[-1]["step"] == 3
    assert config["model_config"]["autoencoder_run"] == str((run / "autoencoder").resolve())
    assert config["model_config"]["autoencoder_config"] == runs.read_config(run / "autoencoder")["model_config"]
    model = runs.load(run)[1]  # the latents' statistics, fitted into buffers
    assert model.latent_mean.shape == (model.autoencoder.latent_size,) and model.latent_std.min() > 0


def test_bad_flow_settings_are_one_line_and_write_nothing(flow_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    out = tmp_path / "out"
    for settings, expected in (({"autoencoder": str(tmp_path / "missing")}, "not a trained run"),
                               ({"autoencoder": str(flow_runs / "flow")}, "not an autoencoder"),
                               ({"autoencoder": str(flow_runs / "codec"), "solver": "rk45"}, "solver"),
                               ({"autoencoder": str(flow_runs / "codec"), "length": 4000}, "length")):
        fails_cleanly(["train", "flow", "--out", str(out), "--steps", "2", "--set", json.dumps(settings)], capsys, expected,
                       watched=[flow_runs])
        assert not out.exists()
