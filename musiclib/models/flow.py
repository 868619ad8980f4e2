"""Flow matching on a VAE's latent codes: "compress, then model" with continuous latents.

The :mod:`~musiclib.models.vae` turns each 64-frame log-mel image (0.74 s) into a code of
``latent_size`` numbers. This model learns the distribution of ``length`` consecutive
codes (a few seconds of music), as Stable Audio and AudioLDM model their autoencoders'
latents, and the VAE's decoder and Griffin-Lim (or the vocoder) turn sampled codes back
into audio. It replaces the Gaussian mixture the VAE fits to its codes with a learned prior
that also knows which code follows which.

Rectified flow (conditional flow matching with straight paths): with data ``x1`` (codes,
normalised per dimension), noise ``x0 ~ N(0, I)`` and ``t ~ U(0, 1)``,

- the path ``x_t = (1 - t) x0 + t x1`` moves at the constant velocity ``x1 - x0``;
- a network ``v(x_t, t)`` learns it: loss ``E |v(x_t, t) - (x1 - x0)|²``;
- sampling solves ``dx/dt = v(x, t)`` from noise at ``t = 0`` to ``t = 1`` with ``steps``
  Euler or midpoint steps.

DDPM's ``x_t = √ᾱ x1 + √(1 - ᾱ) ε`` with an ε-predicting network is the same family with a
curved schedule; on this straight path a deterministic DDIM step equals an Euler step.

The velocity network is a residual MLP over the flattened window (time enters every block
through a sinusoidal embedding). Continuation, and music longer than one window, replace the
known codes at every step by the point on their path (``(1 - t) x0 + t x_known``) and let the
flow fill in the rest.

Notebook: 13_flow_matching.ipynb
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from musiclib import features, metrics
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer
from musiclib.models import ModelSpec, Upstream, register, render
from musiclib.models import vae, vq
from musiclib.models.layers import eval_mode

MODES = ("autonomous", "continue")
SOLVERS = ("euler", "midpoint")
AUTOENCODER_KEYS = ("width", "latent_size", "variational", "beta", "prior_components", "latent_correlation")
TIME_FEATURES = 64


def time_embedding(t: torch.Tensor, size: int = TIME_FEATURES) -> torch.Tensor:
    """``(B,)`` times in [0, 1] → ``(B, size)`` sines and cosines of ``1000 t`` at geometric frequencies (as DDPM embeds its step)."""
    half = size // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t[:, None].float() * frequencies[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResidualBlock(nn.Module):
    """``h + W2 SiLU(W1 LN(h) + W_t e(t))``: one block of the velocity network."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.time = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return h + self.outer(nn.functional.silu(self.inner(self.norm(h)) + self.time(time)))


class VelocityField(nn.Module):
    """``v(x_t, t)``: ``(B, size)`` and ``(B,)`` → ``(B, size)``."""

    def __init__(self, size: int, width: int, blocks: int):
        super().__init__()
        self.time = nn.Sequential(nn.Linear(TIME_FEATURES, width), nn.SiLU())
        self.inp = nn.Linear(size, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, size)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = self.time(time_embedding(t))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, time)
        return self.out(self.norm(h))


class LatentFlow(nn.Module):
    """The autoencoder (frozen, copied into every checkpoint so that a run folder generates on its own),
    the per-dimension statistics of its codes, and the velocity network over ``length`` codes."""

    def __init__(self, audio_config: AudioConfig, autoencoder_config: dict, length: int, width: int, blocks: int):
        super().__init__()
        self.autoencoder = vae.VAE(vae.VAESettings.from_dict(autoencoder_config, "vae"), audio_config)
        self.autoencoder.requires_grad_(False)
        self.length, self.latent_size = length, self.autoencoder.settings.latent_size
        self.velocity = VelocityField(length * self.latent_size, width, blocks)
        self.register_buffer("code_mean", torch.zeros(self.latent_size))
        self.register_buffer("code_std", torch.ones(self.latent_size))

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # it never trains here
        return self

    def normalize(self, codes: np.ndarray) -> np.ndarray:
        """``(n, L, latent)`` codes → ``(n, L * latent)`` per-dimension standardised vectors (what the flow models)."""
        mean, std = self.code_mean.cpu().numpy(), self.code_std.cpu().numpy()
        return ((np.asarray(codes) - mean) / std).reshape(len(codes), -1).astype(np.float32)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`normalize`: ``(n, L * latent)`` → ``(n, L, latent)``."""
        mean, std = self.code_mean.cpu().numpy(), self.code_std.cpu().numpy()
        return (np.asarray(x).reshape(len(x), -1, self.latent_size) * std + mean).astype(np.float32)


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path ``x_t = (1 - t) x0 + t x1`` (``t`` of shape ``(B,)``)."""
    t = t[:, None]
    return (1 - t) * noise + t * data


def loss(model: LatentFlow, batch: torch.Tensor) -> torch.Tensor:
    """Conditional flow matching: mean squared error between ``v(x_t, t)`` and the path's velocity ``x1 - x0``."""
    data = batch
    noise = torch.randn_like(data)
    t = torch.rand(len(data), device=data.device)
    return ((model.velocity(interpolate(noise, data, t), t) - (data - noise)) ** 2).mean()


@torch.no_grad()
def integrate(velocity: VelocityField, noise: torch.Tensor, steps: int, solver: str = "midpoint", known: torch.Tensor | None = None,
              known_mask: torch.Tensor | None = None, keep_path: bool = False):
    """Solve ``dx/dt = v(x, t)`` from ``noise`` at ``t = 0`` to ``t = 1`` in ``steps`` equal steps.

    Args:
        solver: ``"euler"`` (one network call per step) or ``"midpoint"`` (two, second-order accurate).
        known, known_mask: Optional ``(B, size)`` values and a boolean mask of the entries that are
            given (a prime's codes): before every step they are set to their own path's point
            ``(1 - t) x0 + t x_known``, and at the end to ``x_known``.
        keep_path: Also return ``[x_0, x_{1/steps}, …, x_1]``.

    Returns:
        ``x_1`` ``(B, size)``, or ``(x_1, path)`` with ``keep_path``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x, dt, path = noise, 1.0 / steps, [noise]
    for i in range(steps):
        t = torch.full((len(x),), i * dt, device=x.device)
        if known is not None:
            x = torch.where(known_mask, (1 - t[:, None]) * noise + t[:, None] * known, x)
        if solver == "euler":
            x = x + dt * velocity(x, t)
        else:
            x = x + dt * velocity(x + 0.5 * dt * velocity(x, t), t + 0.5 * dt)
        path.append(x)
    if known is not None:
        x = torch.where(known_mask, known, x)
        path[-1] = x
    return (x, path) if keep_path else x


def sample_codes(model: LatentFlow, n: int, n_codes: int, seed: int = 0, steps: int = 16, solver: str = "midpoint",
                 prefix: np.ndarray | None = None) -> np.ndarray:
    """``(n, n_codes, latent)`` codes: one window from noise, then windows that slide by half a window.

    The first window keeps ``prefix`` (a prime's codes ``(n, k, latent)``, its last ``length - 1`` at most),
    each later one its first half from the codes already made, and the flow fills in the rest.
    """
    device = model.code_mean.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    length, latent = model.length, model.latent_size
    if prefix is None:
        codes = np.zeros((n, 0, latent), np.float32)
    else:
        codes = np.asarray(prefix, np.float32)[:, max(0, prefix.shape[1] - (length - 1)):]
    start = codes.shape[1]
    keep = length // 2
    with eval_mode(model):
        while codes.shape[1] < start + n_codes:
            given = codes if codes.shape[1] == start else codes[:, codes.shape[1] - keep:]  # the prefix first, then half a window
            window = np.zeros((n, length, latent), np.float32)
            window[:, :given.shape[1]] = given
            mask = np.zeros((n, length, latent), bool)
            mask[:, :given.shape[1]] = True
            noise = torch.randn(n, length * latent, generator=generator).to(device)
            known = torch.as_tensor(model.normalize(window), device=device)
            x = integrate(model.velocity, noise, steps, solver, known, torch.as_tensor(mask.reshape(n, -1), device=device))
            codes = np.concatenate([codes, model.denormalize(x.cpu().numpy())[:, given.shape[1]:]], axis=1)
    return codes[:, start:start + n_codes]


# ---------------------------------------------------------------------------
# The autoencoder it needs, its data, generation
# ---------------------------------------------------------------------------


def load_autoencoder(model_config: dict) -> vae.VAE:
    from musiclib import runs

    return runs.upstream_model(model_config, "autoencoder")


def audio_codes(autoencoder: vae.VAE, y: np.ndarray, audio_config: AudioConfig, frame_offset: int = 0) -> np.ndarray:
    """``(samples,)`` audio → ``(n_images, latent)`` codes of its consecutive 64-frame images from frame ``frame_offset`` on."""
    normalized = Normalizer(float(autoencoder.low), float(autoencoder.high)).normalize(features.log_mel(np.asarray(y), audio_config))
    n_images = (normalized.shape[1] - frame_offset) // vae.FRAMES
    images = normalized[:, frame_offset: frame_offset + n_images * vae.FRAMES].reshape(len(normalized), n_images, vae.FRAMES)
    if n_images == 0:
        return np.zeros((0, autoencoder.settings.latent_size), np.float32)
    return autoencoder.encode_images(images.transpose(1, 0, 2))


def piece_codes(autoencoder: vae.VAE, dataset, split: str, frame_offsets=(0,)) -> list[np.ndarray]:
    """Each piece's code sequence (:func:`audio_codes`), once per frame offset: a list of ``(n_images, latent)`` arrays."""
    return [audio_codes(autoencoder, piece, dataset.config, offset) for piece in vq.pieces(dataset, split) for offset in frame_offsets]


def code_windows(sequences: list[np.ndarray], length: int, stride: int = 1) -> np.ndarray:
    """``(n, length, latent)`` windows of consecutive codes, every ``stride`` codes of every sequence at least ``length`` long."""
    cut = [np.lib.stride_tricks.sliding_window_view(s, length, axis=0)[::stride].transpose(0, 2, 1) for s in sequences if len(s) >= length]
    if not cut:
        raise ValueError(f"no piece is {length} images ({length * 0.74:.1f} s) long: lower the setting length")
    return np.concatenate(cut)


def frame_offsets(model_config: dict) -> list[int]:
    """The ``frame_offsets`` frame offsets, evenly spread over one image, that training windows are cut at."""
    n = model_config["frame_offsets"]
    return [i * vae.FRAMES // n for i in range(n)]


def training_arrays(dataset, model_config: dict):
    """Windows of ``length`` codes of the training pieces (at ``frame_offsets`` offsets) and of the validation pieces, normalised.

    Records the training codes' per-dimension mean and standard deviation in ``model_config``.
    """
    autoencoder = load_autoencoder(model_config)
    train = code_windows(piece_codes(autoencoder, dataset, "train", frame_offsets(model_config)), model_config["length"])
    val = code_windows(piece_codes(autoencoder, dataset, "val"), model_config["length"])
    flat = train.reshape(-1, train.shape[-1])
    model_config["code_mean"], model_config["code_std"] = flat.mean(0).tolist(), (flat.std(0) + 1e-6).tolist()
    mean, std = np.asarray(model_config["code_mean"], np.float32), np.asarray(model_config["code_std"], np.float32)
    return [((w - mean) / std).reshape(len(w), -1).astype(np.float32) for w in (train, val)]


def default_config(fast: bool) -> dict:
    # autoencoder_steps: how long the VAE trains when this model trains its own (the vae run's own default).
    return {"autoencoder": "", "autoencoder_steps": vae.VAESettings.recipe(fast).steps, "length": 4, "width": 256 if fast else 384,
            "blocks": 3 if fast else 4, "frame_offsets": 8, "sampling_steps": 16, "solver": "midpoint",
            "learning_rate": 1e-3, "batch_size": 128, "steps": 1500 if fast else 10000}


def check_config(model_config: dict) -> None:
    """Refuse settings the flow cannot work with, before anything is trained."""
    if model_config["solver"] not in SOLVERS:
        raise ValueError(f"setting solver must be one of {SOLVERS}, got {model_config['solver']!r}")
    for key in ("length", "sampling_steps", "frame_offsets", "width", "blocks"):
        if model_config[key] < 1:
            raise ValueError(f"setting {key} must be at least 1, got {model_config[key]}")
    if model_config["frame_offsets"] > vae.FRAMES:
        raise ValueError(f"setting frame_offsets must be at most {vae.FRAMES} (one per frame of an image), got {model_config['frame_offsets']}")


def build(model_config: dict, audio_config: AudioConfig) -> LatentFlow:
    check_config(model_config)
    model = LatentFlow(audio_config, model_config["autoencoder_config"], model_config["length"], model_config["width"],
                       model_config["blocks"])
    if "code_mean" in model_config:
        model.code_mean.copy_(torch.as_tensor(model_config["code_mean"]))
        model.code_std.copy_(torch.as_tensor(model_config["code_std"]))
    model.model_config = dict(model_config)
    return model


@torch.no_grad()
def prepare(model: LatentFlow, dataset, model_config: dict) -> None:
    """Copy the trained autoencoder's weights (normaliser and fitted prior included) into the model."""
    model.autoencoder.load_state_dict(load_autoencoder(model_config).state_dict())


def generate(model: LatentFlow, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None, vocoder=None,
             mode: str = "autonomous", steps: int | None = None, solver: str | None = None) -> np.ndarray:
    """``(n, samples)`` audio decoded from sampled codes.

    - ``autonomous``: codes from noise (:func:`sample_codes`).
    - ``continue``: the codes of each ``prime``'s last whole images (ending at its last frame)
      are given and the flow continues them; the returned audio starts where the prime stops.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    config = model.model_config
    steps = config["sampling_steps"] if steps is None else steps
    solver = config["solver"] if solver is None else solver
    n_samples = int(round(seconds * audio_config.sample_rate))
    image_samples = vae.FRAMES * audio_config.hop_length
    prefix, skip = None, 0
    if mode == "continue":
        if prime is None:
            raise ValueError("mode 'continue' needs audio to start from")
        prime = np.asarray(prime)[:n]
        n_frames = prime.shape[1] // audio_config.hop_length + 1
        known = min(model.length - 1, n_frames // vae.FRAMES)
        if known < 1:
            raise ValueError(f"mode 'continue' needs at least {vae.FRAMES} frames ({image_samples / audio_config.sample_rate:.2f} s) of audio")
        first = n_frames - known * vae.FRAMES
        prefix = np.stack([audio_codes(model.autoencoder, p, audio_config, first) for p in prime])
        skip = prime.shape[1] - first * audio_config.hop_length  # samples of the prime the decoded prefix still covers
    n_new = -(-n_samples // image_samples)  # the prefix's images already cover the prime's last `skip` samples
    codes = sample_codes(model, n, n_new, seed, steps, solver, prefix)
    if prefix is not None:
        codes = np.concatenate([prefix, codes], axis=1)
    images = model.autoencoder.decode(codes.reshape(-1, model.latent_size))
    log_mel = model.autoencoder.log_mel_clips(images.reshape(n, codes.shape[1], *images.shape[1:]), start=skip)
    return render(log_mel, n_samples, vocoder, seed)


# ---------------------------------------------------------------------------
# Held-out scores: the learned prior against the VAE's fitted one, in the latent space
# ---------------------------------------------------------------------------


def heldout_windows(model: LatentFlow, dataset, model_config: dict) -> np.ndarray:
    """``(n, length, latent)`` windows of the held-out (val and test) pieces' codes, cut at the training windows' frame offsets."""
    offsets = frame_offsets(model_config)
    return code_windows([codes for split in ("val", "test") for codes in piece_codes(model.autoencoder, dataset, split, offsets)],
                        model.length)


def heldout_scores(model: LatentFlow, dataset, model_config: dict, n_windows: int = 512, seed: int = 0) -> dict:
    """Distances between windows of held-out codes and windows sampled three ways, in the flow's normalised latent space.

    The held-out windows (:func:`heldout_windows`) are cut at the training windows' frame offsets, so that the set is not tiny.

    ``flow_*``: this model's windows; ``fitted_prior_*``: the VAE's own prior (its Gaussian mixture,
    walked as the ``vae`` model generates); ``train_*``: training windows, the floor any prior can reach.
    Fréchet distance and the unbiased kernel distance of :mod:`musiclib.metrics`.
    """
    length = model.length
    held = heldout_windows(model, dataset, model_config)
    train = code_windows(piece_codes(model.autoencoder, dataset, "train", frame_offsets(model_config)), length)
    rng = np.random.default_rng(seed)
    flow = sample_codes(model, n_windows, length, seed, model_config["sampling_steps"], model_config["solver"])
    fitted = vae.sample_latents(model.autoencoder, n_windows, length, rng, model_config["autoencoder_config"]["latent_correlation"])
    reference = model.normalize(held)
    scores = {"n_heldout_windows": len(held)}
    for name, windows in (("flow", flow), ("fitted_prior", fitted), ("train", train[rng.permutation(len(train))[:n_windows]])):
        x = model.normalize(windows)
        scores[f"{name}_latent_frechet"] = metrics.frechet_distance(x, reference)
        scores[f"{name}_latent_kernel"] = metrics.kernel_distance(x, reference)["mean"]
    return scores


SPEC = register(ModelSpec("flow", "flow matching on a VAE's latent codes (trains its own VAE unless given one)",
                          default_config, build, training_arrays, loss, generate, prepare=prepare, heldout_scores=heldout_scores,
                          accepts_vocoder=True, modes=MODES, family="latent", check_config=check_config,
                          upstream=Upstream("vae", "autoencoder", AUTOENCODER_KEYS, budget_share=0.7)))
