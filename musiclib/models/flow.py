"""Flow matching on a frame-rate autoencoder's latent sequences: "compress, then model" with continuous latents.

The :mod:`~musiclib.models.codec` turns log-mel into a sequence of latent frames, 21.5 per second with
``D`` numbers each (64 by default), and decodes a whole sequence in one pass. This model learns the
distribution of those sequences, as Stable Audio and AudioLDM model their autoencoders' latents; the
codec's decoder and Griffin-Lim (or the vocoder) turn sampled latents back into audio.

Rectified flow (conditional flow matching with straight paths): with data ``x1`` (a window of
``length`` latent frames, normalised per number), noise ``x0 ~ N(0, I)`` and ``t ~ U(0, 1)``,

- the path ``x_t = (1 - t) x0 + t x1`` moves at the constant velocity ``x1 - x0``;
- a network ``v(x_t, t)`` learns it: loss ``E |v(x_t, t) - (x1 - x0)|²``;
- sampling solves ``dx/dt = v(x, t)`` from noise at ``t = 0`` to ``t = 1`` with ``steps``
  Euler or midpoint steps.

DDPM's ``x_t = √ᾱ x1 + √(1 - ᾱ) ε`` with an ε-predicting network is the same family with a
curved schedule; on this straight path a deterministic DDIM step equals an Euler step.

The velocity network is a stack of dilated 1-D convolutions over the latent frames (each block
sees twice as far as the one before; time enters every block as a scale and shift) with two
self-attention blocks near its end, so that every frame also sees the whole window at once (on
the fast chorales they raised the samples' frame tonality from 0.68 to 0.85 at equal steps). None
of it depends on the window's length: sampling draws a whole sequence at once. Continuation
replaces the prime's frames at every step by the point on their own path
(``(1 - t) x0 + t x_known``) and lets the flow fill in the rest.

Notebook: 13_flow_matching.ipynb
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from musiclib import metrics
from musiclib.config import AudioConfig
from musiclib.models import base, codec, register
from musiclib.models.layers import eval_mode

SOLVERS = ("euler", "midpoint")
TIME_FEATURES = 64
CONTEXT_FRAMES = 4  # the held-out distances compare windows of this many consecutive latent frames


def time_embedding(t: torch.Tensor, size: int = TIME_FEATURES) -> torch.Tensor:
    """``(B,)`` times in [0, 1] → ``(B, size)`` sines and cosines of ``1000 t`` at geometric frequencies (as DDPM embeds its step)."""
    half = size // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t[:, None].float() * frequencies[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResidualBlock(nn.Module):
    """``h + W2 SiLU((1 + s(t)) LN(conv_d(h)) + b(t))``: a dilated convolution over the frames (dilation ``d``), the
    layer norm over each frame's channels, the time's scale ``s`` and shift ``b``."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.norm = nn.LayerNorm(width)
        self.time = nn.Linear(width, 2 * width)
        self.outer = nn.Conv1d(width, width, 1)

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(time)[:, :, None].chunk(2, dim=1)
        inner = self.norm(self.conv(h).transpose(1, 2)).transpose(1, 2)
        return h + self.outer(nn.functional.silu(inner * (1 + scale) + shift))


class AttentionBlock(nn.Module):
    """``h + Attention(LN(h))`` over the frames: every frame sees the whole window at once."""

    def __init__(self, width: int, heads: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        x = self.norm(h.transpose(1, 2))
        return h + self.attention(x, x, x, need_weights=False)[0].transpose(1, 2)


class VelocityField(nn.Module):
    """``v(x_t, t)``: ``(B, L, D)`` latent frames and ``(B,)`` times → ``(B, L, D)``, for any ``L``.

    ``blocks`` dilated blocks with dilations 1, 2, 4, … (restarting after 32; the receptive field of 6 blocks is
    127 frames, 5.9 s), with a self-attention block after each of the last ``attention`` of them.
    """

    def __init__(self, size: int, width: int, blocks: int, attention: int = 0):
        super().__init__()
        self.time = nn.Sequential(nn.Linear(TIME_FEATURES, width), nn.SiLU())
        self.inp = nn.Conv1d(size, width, 3, padding=1)
        layers = []
        for i in range(blocks):
            layers.append(ResidualBlock(width, 2 ** (i % 6)))
            if i >= blocks - attention:
                layers.append(AttentionBlock(width))
        self.blocks = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, size)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = self.time(time_embedding(t))
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = block(h, time)
        return self.out(self.norm(h.transpose(1, 2)))


@dataclasses.dataclass(frozen=True)
class LatentFlowSettings(base.Settings):
    """Training windows of ``length`` latent frames, cut every ``stride`` frames of the pieces' latents at
    ``frame_offsets`` offsets of the 4-frame grid; a velocity network ``width`` wide with ``blocks`` dilated blocks and
    ``attention`` self-attention blocks; sampling with ``sampling_steps`` steps of ``solver`` (:data:`SOLVERS`).

    The autoencoder: ``autoencoder`` names a trained ``codec`` run to reuse (empty: one is trained into
    ``RUN_DIR/autoencoder`` for ``autoencoder_steps`` steps, with ``autoencoder_config``); ``autoencoder_run`` and
    ``autoencoder_config`` record the run used and its settings.
    """

    autoencoder: str = ""
    # 500 codec steps rather than its own 800, and 500 flow steps: the fast recipe reaches audio in about two minutes on
    # 2 cores with samples as tonal as after 800 + 800 (0.83 against 0.85 of the music's scale, one seed).
    autoencoder_steps: int = 500
    autoencoder_run: str = ""
    autoencoder_config: codec.CodecSettings = codec.CodecSettings()
    length: int = 64
    stride: int = 16
    width: int = 128
    blocks: int = 6
    attention: int = 2
    frame_offsets: int = 2
    sampling_steps: int = 16
    solver: str = "midpoint"
    batch_size: int = 16
    steps: int = 500

    @classmethod
    def full(cls):
        # Stride 32 on the full chorales (46 min): 3,700 windows of 64 × 128 numbers (120 MB) instead of 7,400.
        return cls(autoencoder_steps=codec.CodecSettings.full().steps, autoencoder_config=codec.CodecSettings.full(),
                   width=256, blocks=12, stride=32, steps=20000)

    def check(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"setting solver must be one of {SOLVERS}, got {self.solver!r}")
        for key in ("length", "stride", "sampling_steps", "frame_offsets", "width", "blocks"):
            if getattr(self, key) < 1:
                raise ValueError(f"setting {key} must be at least 1, got {getattr(self, key)}")
        if not 0 <= self.attention <= self.blocks:
            raise ValueError(f"setting attention must be between 0 and blocks ({self.blocks}), got {self.attention}")
        if self.width % 4:
            raise ValueError(f"setting width must be a multiple of 4 (the attention's heads), got {self.width}")
        if self.frame_offsets > codec.FRAMES_PER_STEP:
            raise ValueError(f"setting frame_offsets must be at most {codec.FRAMES_PER_STEP} (one per frame of a latent step), "
                             f"got {self.frame_offsets}")


@register
class LatentFlow(base.Model):
    """The autoencoder it is built on (frozen, kept in every checkpoint so that a run folder generates on its own),
    the per-number statistics of its latents, and the velocity network over latent sequences."""

    name, family, output = "flow", "latent", "log-mel"
    description = "flow matching on a frame-rate codec's latent sequences (trains its own codec unless given one)"
    Settings = LatentFlowSettings
    upstream = base.Upstream(codec.Codec, "autoencoder", budget_share=0.4)

    def __init__(self, settings: LatentFlowSettings, audio: AudioConfig, autoencoder: codec.Codec):
        super().__init__(settings, audio)
        self.autoencoder = autoencoder
        self.autoencoder.requires_grad_(False)
        self.length, self.latent_size = settings.length, autoencoder.latent_size
        self.velocity = VelocityField(self.latent_size, settings.width, settings.blocks, settings.attention)
        self.register_buffer("latent_mean", torch.zeros(self.latent_size))
        self.register_buffer("latent_std", torch.ones(self.latent_size))
        self._latents_of: dict = {}

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # it never trains here
        return self

    @torch.no_grad()
    def fit(self, dataset) -> None:
        """The training latents' per-number mean and standard deviation, which standardise them."""
        flat = np.concatenate(self.piece_latents(dataset, "train"))
        self.latent_mean.copy_(torch.as_tensor(flat.mean(0), dtype=torch.float32))
        self.latent_std.copy_(torch.as_tensor(flat.std(0) + 1e-6, dtype=torch.float32))

    def features(self, dataset, split: str) -> np.ndarray:
        """Normalised ``(n, length, D)`` windows of a split's pieces' latents, every ``stride`` frames."""
        return self.normalize(latent_windows(self.piece_latents(dataset, split), self.length, self.settings.stride))

    def piece_latents(self, dataset, split: str) -> list[np.ndarray]:
        """Each piece's latents (the training ones at every frame offset), kept for the dataset last asked about:
        fitting the statistics and the training features encode the same pieces."""
        key = (str(dataset.root), split)
        if key not in self._latents_of:
            offsets = frame_offsets(self.settings.frame_offsets) if split == "train" else [0]
            self._latents_of = {**{k: v for k, v in self._latents_of.items() if k[0] == key[0]},
                                key: codec.piece_latents(self.autoencoder, dataset, split, offsets)}
        return self._latents_of[key]

    def loss(self, batch: torch.Tensor, phase: str = "") -> torch.Tensor:
        """Conditional flow matching: mean squared error between ``v(x_t, t)`` and the path's velocity ``x1 - x0``."""
        data = batch
        noise = torch.randn_like(data)
        t = torch.rand(len(data), device=data.device)
        return ((self.velocity(interpolate(noise, data, t), t) - (data - noise)) ** 2).mean()

    def sample(self, n: int, seconds: float, seed: int, steps: int | None = None, solver: str | None = None) -> base.LogMel:
        """A whole latent sequence from noise (:meth:`sample_latents`), decoded in one pass."""
        latents = self.sample_latents(n, self.autoencoder.steps_for(seconds), seed, steps, solver)
        return self.autoencoder.latents_to_log_mel(latents)

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> base.LogMel:
        """The latents of the prime's last ``length / 2`` steps (ending at its last frame) are given and the flow
        continues them; prime and continuation are decoded together, and the audio starts where the prime stops."""
        hop, prime = self.audio.hop_length, np.asarray(prime)
        n_frames = prime.shape[1] // hop + 1
        known = min(self.length // 2, n_frames // codec.FRAMES_PER_STEP)
        if known < 1:
            raise ValueError(f"a continuation needs at least {codec.FRAMES_PER_STEP} frames "
                             f"({codec.FRAMES_PER_STEP * hop / self.audio.sample_rate:.2f} s) of audio")
        first = n_frames - known * codec.FRAMES_PER_STEP
        prefix = self.autoencoder.audio_to_latents(prime, first)
        skip = prime.shape[1] - first * hop  # samples of the prime the decoded prefix still covers
        n_new = self.autoencoder.steps_for(seconds)
        latents = self.sample_latents(len(prime), n_new, seed, prefix=prefix)
        return self.autoencoder.latents_to_log_mel(np.concatenate([prefix, latents], axis=1), start=skip)

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """The autoencoder's round trip: the flow generates its latents, so it cannot sound better than this."""
        return self.autoencoder.round_trip(clips)

    def heldout_scores(self, dataset, n_windows: int = 512, seed: int = 0) -> dict:
        """How well three priors match held-out latents, in the flow's normalised latent space.

        - ``*_loss``: the flow-matching loss on held-out windows, of this model's velocity and of the best velocity
          for Gaussian data ``N(0, I)`` (the same noise and times): below it, the flow has learnt more than each
          number's mean and spread;
        - ``*_latent_frechet`` / ``*_latent_kernel``: Fréchet and unbiased kernel distances (:mod:`musiclib.metrics`)
          between windows of :data:`CONTEXT_FRAMES` consecutive held-out frames and the same windows of ``flow``
          samples, of frames drawn from the codec's fitted Gaussian (independent of each other: ``gaussian``), and
          of training latents (``train``: the floor any prior can reach).
        """
        held_sequences = self.piece_latents(dataset, "val") + self.piece_latents(dataset, "test")
        held = torch.as_tensor(self.normalize(latent_windows(held_sequences, self.length, self.settings.stride)))
        generator = torch.Generator().manual_seed(seed)
        noise, t = torch.randn(held.shape, generator=generator), torch.rand(len(held), generator=generator)
        device = self.latent_mean.device
        with eval_mode(self), torch.no_grad():
            x_t, target = interpolate(noise, held, t), held - noise
            flow_loss = float(np.mean([((self.velocity(x.to(device), s.to(device)).cpu() - v) ** 2).mean().item()
                                       for x, s, v in zip(x_t.split(64), t.split(64), target.split(64))]))
        gaussian_loss = float(((gaussian_velocity(x_t, t) - target) ** 2).mean())

        rng = np.random.default_rng(seed)
        n_sequences = -(-n_windows // (self.length // CONTEXT_FRAMES))
        made = {"flow": self.sample_latents(n_sequences, self.length, seed),
                "gaussian": self.autoencoder.gaussian_frames(n_sequences, self.length, seed),
                "train": latent_windows(self.piece_latents(dataset, "train"), self.length, self.length)}
        reference = self.heldout_groups(dataset)
        scores = {"flow_loss": flow_loss, "gaussian_loss": gaussian_loss, "n_heldout_windows": len(reference)}
        for name, latents in made.items():
            x = context_windows(self.normalize(latents))
            x = x[rng.permutation(len(x))[:n_windows]]
            scores[f"{name}_latent_frechet"] = metrics.frechet_distance(x, reference)
            scores[f"{name}_latent_kernel"] = metrics.kernel_distance(x, reference)["mean"]
        return scores

    def heldout_groups(self, dataset) -> np.ndarray:
        """Normalised groups of :data:`CONTEXT_FRAMES` consecutive latent frames of the held-out (val and test) pieces,
        flattened (:func:`context_windows`): what the held-out distances compare with."""
        held_sequences = self.piece_latents(dataset, "val") + self.piece_latents(dataset, "test")
        return context_windows(self.normalize(latent_windows(held_sequences, CONTEXT_FRAMES, CONTEXT_FRAMES)))

    # Latents in and out

    def sample_latents(self, n: int, n_frames: int, seed: int = 0, steps: int | None = None, solver: str | None = None,
                       prefix: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_frames, D)`` latents that follow ``prefix`` (a prime's latents ``(n, k, D)``; none: from nothing), the
        prefix and the new frames drawn together as one sequence (``steps`` and ``solver`` default to the settings')."""
        steps = self.settings.sampling_steps if steps is None else steps
        solver = self.settings.solver if solver is None else solver
        device = self.latent_mean.device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        known_frames = 0 if prefix is None else prefix.shape[1]
        noise = torch.randn(n, known_frames + n_frames, self.latent_size, generator=generator).to(device)
        known = mask = None
        if prefix is not None:
            known = torch.zeros_like(noise)
            known[:, :known_frames] = torch.as_tensor(self.normalize(prefix), device=device)
            mask = torch.zeros_like(noise, dtype=torch.bool)
            mask[:, :known_frames] = True
        with eval_mode(self):
            x = integrate(self.velocity, noise, steps, solver, known, mask)
        return self.denormalize(x.cpu().numpy())[:, known_frames:]

    def normalize(self, latents: np.ndarray) -> np.ndarray:
        """``(n, L, D)`` latents → per-number standardised ``(n, L, D)`` (what the flow models)."""
        mean, std = self.latent_mean.cpu().numpy(), self.latent_std.cpu().numpy()
        return ((np.asarray(latents) - mean) / std).astype(np.float32)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`normalize`."""
        mean, std = self.latent_mean.cpu().numpy(), self.latent_std.cpu().numpy()
        return (np.asarray(x) * std + mean).astype(np.float32)


def _per_example(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` times shaped to broadcast over ``x``'s other axes."""
    return t.view(-1, *([1] * (x.dim() - 1)))


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path ``x_t = (1 - t) x0 + t x1`` (``t`` of shape ``(B,)``, the data of any shape ``(B, …)``)."""
    t = _per_example(t, data)
    return (1 - t) * noise + t * data


def gaussian_velocity(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The best velocity field when the data are ``N(0, I)`` themselves: ``E[x1 - x0 | x_t] = x_t (2t - 1) / (t² + (1 - t)²)``
    (``x_t`` is Gaussian with variance ``t² + (1 - t)²``; ``x1 - x0`` has covariance ``t - (1 - t)`` with it)."""
    t = _per_example(t, x_t)
    return x_t * (2 * t - 1) / (t**2 + (1 - t) ** 2)


@torch.no_grad()
def integrate(velocity: nn.Module, noise: torch.Tensor, steps: int, solver: str = "midpoint", known: torch.Tensor | None = None,
              known_mask: torch.Tensor | None = None, keep_path: bool = False):
    """Solve ``dx/dt = v(x, t)`` from ``noise`` at ``t = 0`` to ``t = 1`` in ``steps`` equal steps.

    Args:
        velocity: ``v(x, t)``, ``x`` of the noise's shape ``(B, …)`` and ``t`` of shape ``(B,)``.
        solver: ``"euler"`` (one network call per step) or ``"midpoint"`` (two, second-order accurate).
        known, known_mask: Optional values of the noise's shape and a boolean mask of the entries that are
            given (a prime's latents): before every step they are set to their own path's point
            ``(1 - t) x0 + t x_known``, and at the end to ``x_known``.
        keep_path: Also return ``[x_0, x_{1/steps}, …, x_1]``.

    Returns:
        ``x_1`` of the noise's shape, or ``(x_1, path)`` with ``keep_path``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x, dt, path = noise, 1.0 / steps, [noise]
    for i in range(steps):
        t = torch.full((len(x),), i * dt, device=x.device)
        if known is not None:
            x = torch.where(known_mask, interpolate(noise, known, t), x)
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
# Windows of latent sequences
# ---------------------------------------------------------------------------


def latent_windows(sequences: list[np.ndarray], length: int, stride: int = 1) -> np.ndarray:
    """``(n, length, D)`` windows of consecutive frames, every ``stride`` frames of every sequence at least ``length`` long."""
    cut = [np.lib.stride_tricks.sliding_window_view(s, length, axis=0)[::stride].transpose(0, 2, 1) for s in sequences if len(s) >= length]
    if not cut:
        raise ValueError(f"no piece is {length} latent frames ({length * 0.046:.1f} s) long: lower the setting length")
    return np.concatenate(cut)


def context_windows(latents: np.ndarray) -> np.ndarray:
    """``(n, L, D)`` → ``(n L / c, c D)``: consecutive non-overlapping groups of ``c`` = :data:`CONTEXT_FRAMES` frames,
    flattened (what the held-out distances compare: frames together with their neighbours)."""
    n, length, size = latents.shape
    usable = length // CONTEXT_FRAMES * CONTEXT_FRAMES
    return latents[:, :usable].reshape(-1, CONTEXT_FRAMES * size)


def frame_offsets(n: int) -> list[int]:
    """``n`` frame offsets, evenly spread over one latent step, that training windows are cut at."""
    return [i * codec.FRAMES_PER_STEP // n for i in range(n)]
