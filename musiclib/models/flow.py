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

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from musiclib import features, metrics
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer
from musiclib.models import base, register, vae, vq
from musiclib.models.layers import eval_mode

SOLVERS = ("euler", "midpoint")
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


@dataclasses.dataclass(frozen=True)
class LatentFlowSettings(base.Settings):
    """Windows of ``length`` consecutive codes, cut at ``frame_offsets`` offsets of the image grid; a velocity network
    ``width`` wide with ``blocks`` residual blocks; sampling with ``sampling_steps`` steps of ``solver``
    (:data:`SOLVERS`).

    The autoencoder: ``autoencoder`` names a trained ``vae`` run to reuse (empty: one is trained into
    ``RUN_DIR/autoencoder`` for ``autoencoder_steps`` steps, with ``autoencoder_config``); ``autoencoder_run`` and
    ``autoencoder_config`` record the run used and its settings.
    """

    autoencoder: str = ""
    autoencoder_steps: int = vae.VAESettings().steps
    autoencoder_run: str = ""
    autoencoder_config: vae.VAESettings = vae.VAESettings()
    length: int = 4
    width: int = 256
    blocks: int = 3
    frame_offsets: int = 8
    sampling_steps: int = 16
    solver: str = "midpoint"
    batch_size: int = 128
    steps: int = 1500

    @classmethod
    def full(cls):
        return cls(autoencoder_steps=vae.VAESettings.full().steps, width=384, blocks=4, steps=10000)

    def check(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"setting solver must be one of {SOLVERS}, got {self.solver!r}")
        for key in ("length", "sampling_steps", "frame_offsets", "width", "blocks"):
            if getattr(self, key) < 1:
                raise ValueError(f"setting {key} must be at least 1, got {getattr(self, key)}")
        if self.frame_offsets > vae.FRAMES:
            raise ValueError(f"setting frame_offsets must be at most {vae.FRAMES} (one per frame of an image), got {self.frame_offsets}")


@register
class LatentFlow(base.Model):
    """The autoencoder it is built on (frozen, kept in every checkpoint so that a run folder generates on its own),
    the per-dimension statistics of its codes, and the velocity network over ``length`` codes."""

    name, family, output = "flow", "latent", "log-mel"
    description = "flow matching on a VAE's latent codes (trains its own VAE unless given one)"
    Settings = LatentFlowSettings
    upstream = base.Upstream(vae.VAE, "autoencoder", budget_share=0.7)

    def __init__(self, settings: LatentFlowSettings, audio: AudioConfig, autoencoder: vae.VAE):
        super().__init__(settings, audio)
        self.autoencoder = autoencoder
        self.autoencoder.requires_grad_(False)
        self.length, self.latent_size = settings.length, autoencoder.settings.latent_size
        self.velocity = VelocityField(settings.length * self.latent_size, settings.width, settings.blocks)
        self.register_buffer("code_mean", torch.zeros(self.latent_size))
        self.register_buffer("code_std", torch.ones(self.latent_size))
        self._windows_of: dict = {}

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # it never trains here
        return self

    @torch.no_grad()
    def fit(self, dataset) -> None:
        """The training windows' per-dimension mean and standard deviation, which standardise the codes."""
        flat = self.code_windows(dataset, "train").reshape(-1, self.latent_size)
        self.code_mean.copy_(torch.as_tensor(flat.mean(0), dtype=torch.float32))
        self.code_std.copy_(torch.as_tensor(flat.std(0) + 1e-6, dtype=torch.float32))

    def features(self, dataset, split: str) -> np.ndarray:
        """Normalised windows of ``length`` codes of a split's pieces (the training ones at ``frame_offsets`` offsets)."""
        return self.normalize(self.code_windows(dataset, split))

    def code_windows(self, dataset, split: str) -> np.ndarray:
        """``(n, length, latent)`` windows of the codes of a split's pieces (the training ones at every frame offset).

        Kept for the dataset last asked about: fitting the statistics and the training features encode the same pieces.
        """
        key = (str(dataset.root), split)
        if self._windows_of.get("key") != key:
            offsets = frame_offsets(self.settings.frame_offsets) if split == "train" else [0]
            self._windows_of = {"key": key, "windows": code_windows(piece_codes(self.autoencoder, dataset, split, offsets), self.length)}
        return self._windows_of["windows"]

    def loss(self, batch: torch.Tensor, phase: str = "") -> torch.Tensor:
        """Conditional flow matching: mean squared error between ``v(x_t, t)`` and the path's velocity ``x1 - x0``."""
        data = batch
        noise = torch.randn_like(data)
        t = torch.rand(len(data), device=data.device)
        return ((self.velocity(interpolate(noise, data, t), t) - (data - noise)) ** 2).mean()

    def sample(self, n: int, seconds: float, seed: int, steps: int | None = None, solver: str | None = None) -> base.LogMel:
        """Codes from noise (:meth:`sample_codes`), decoded."""
        codes = self.sample_codes(n, vae.images_for(seconds, self.audio), seed, steps, solver)
        return self.decoded(codes)

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> base.LogMel:
        """The codes of each prime's last whole images (ending at its last frame) are given and the flow continues
        them; the audio starts where the prime stops."""
        hop, prime = self.audio.hop_length, np.asarray(prime)
        n_frames = prime.shape[1] // hop + 1
        known = min(self.length - 1, n_frames // vae.FRAMES)
        if known < 1:
            raise ValueError(f"a continuation needs at least {vae.FRAMES} frames "
                             f"({vae.FRAMES * hop / self.audio.sample_rate:.2f} s) of audio")
        first = n_frames - known * vae.FRAMES
        prefix = np.stack([audio_codes(self.autoencoder, p, self.audio, first) for p in prime])
        skip = prime.shape[1] - first * hop  # samples of the prime the decoded prefix still covers
        n_new = -(-int(round(seconds * self.audio.sample_rate)) // (vae.FRAMES * hop))  # the prefix covers the prime's last `skip` samples
        codes = self.sample_codes(len(prime), n_new, seed, prefix=prefix)
        return self.decoded(np.concatenate([prefix, codes], axis=1), start=skip)

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """The autoencoder's round trip: the flow generates its codes, so it cannot sound better than this."""
        return self.autoencoder.round_trip(clips)

    def heldout_scores(self, dataset, n_windows: int = 512, seed: int = 0) -> dict:
        """Distances between windows of held-out codes and windows sampled three ways, in the flow's normalised latent space.

        The held-out windows (:meth:`heldout_windows`) are cut at the training windows' frame offsets, so that the set is not tiny.

        ``flow_*``: this model's windows; ``fitted_prior_*``: the VAE's own prior (its Gaussian mixture,
        walked as the ``vae`` model generates); ``train_*``: training windows, the floor any prior can reach.
        Fréchet distance and the unbiased kernel distance of :mod:`musiclib.metrics`.
        """
        held = self.heldout_windows(dataset)
        train = self.code_windows(dataset, "train")
        rng = np.random.default_rng(seed)
        flow = self.sample_codes(n_windows, self.length, seed)
        fitted = vae.sample_latents(self.autoencoder, n_windows, self.length, rng, self.autoencoder.settings.latent_correlation)
        reference = self.normalize(held)
        scores = {"n_heldout_windows": len(held)}
        for name, windows in (("flow", flow), ("fitted_prior", fitted), ("train", train[rng.permutation(len(train))[:n_windows]])):
            x = self.normalize(windows)
            scores[f"{name}_latent_frechet"] = metrics.frechet_distance(x, reference)
            scores[f"{name}_latent_kernel"] = metrics.kernel_distance(x, reference)["mean"]
        return scores

    # Codes in and out

    def heldout_windows(self, dataset) -> np.ndarray:
        """``(n, length, latent)`` windows of the held-out (val and test) pieces' codes, cut at the training windows' frame offsets."""
        offsets = frame_offsets(self.settings.frame_offsets)
        return code_windows([codes for split in ("val", "test") for codes in piece_codes(self.autoencoder, dataset, split, offsets)],
                            self.length)

    def sample_codes(self, n: int, n_codes: int, seed: int = 0, steps: int | None = None, solver: str | None = None,
                     prefix: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_codes, latent)`` codes: one window from noise, then windows that slide by half a window (``steps``
        and ``solver`` default to the settings').

        The first window keeps ``prefix`` (a prime's codes ``(n, k, latent)``, its last ``length - 1`` at most),
        each later one its first half from the codes already made, and the flow fills in the rest.
        """
        steps = self.settings.sampling_steps if steps is None else steps
        solver = self.settings.solver if solver is None else solver
        device = self.code_mean.device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        length, latent = self.length, self.latent_size
        if prefix is None:
            codes = np.zeros((n, 0, latent), np.float32)
        else:
            codes = np.asarray(prefix, np.float32)[:, max(0, prefix.shape[1] - (length - 1)):]
        start = codes.shape[1]
        keep = length // 2
        with eval_mode(self):
            while codes.shape[1] < start + n_codes:
                given = codes if codes.shape[1] == start else codes[:, codes.shape[1] - keep:]  # the prefix first, then half a window
                window = np.zeros((n, length, latent), np.float32)
                window[:, :given.shape[1]] = given
                mask = np.zeros((n, length, latent), bool)
                mask[:, :given.shape[1]] = True
                noise = torch.randn(n, length * latent, generator=generator).to(device)
                known = torch.as_tensor(self.normalize(window), device=device)
                x = integrate(self.velocity, noise, steps, solver, known, torch.as_tensor(mask.reshape(n, -1), device=device))
                codes = np.concatenate([codes, self.denormalize(x.cpu().numpy())[:, given.shape[1]:]], axis=1)
        return codes[:, start:start + n_codes]

    def decoded(self, codes: np.ndarray, start: int = 0) -> base.LogMel:
        """``(n, k, latent)`` codes → the decoded images side by side, as log-mel."""
        images = self.autoencoder.decode(codes.reshape(-1, self.latent_size))
        return self.autoencoder.log_mel_clips(images.reshape(len(codes), codes.shape[1], *images.shape[1:]), start=start)

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


# ---------------------------------------------------------------------------
# Codes of audio
# ---------------------------------------------------------------------------


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


def frame_offsets(n: int) -> list[int]:
    """``n`` frame offsets, evenly spread over one image, that training windows are cut at."""
    return [i * vae.FRAMES // n for i in range(n)]
