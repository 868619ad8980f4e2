"""A VQ-VAE tokenizer: log-mel frames → one discrete token per four frames → log-mel.

The first half of today's music generators: compress audio into a short sequence of
symbols that a sequence model can learn (the second half is
:mod:`musiclib.models.token_transformer`).

- The encoder maps a normalised log-mel ``(n_mels, T)`` through 1-D convolutions over time
  (two stride-2 layers) to ``(dim, T / 4)``: one vector per 4 frames (46 ms at 22,050 Hz
  and hop 256, 21.5 tokens per second).
- The quantiser replaces each vector ``z`` by its nearest codebook entry
  ``e_k``, ``k = argmin_j ||z - e_j||²``: the token is ``k``. With ``K`` codes a token
  carries ``log2 K`` bits (9 bits for the default 512 codes, 194 bits per second).
- The decoder mirrors the encoder (two ×2 transposed convolutions) back to log-mel.

``argmin`` has no gradient, so the decoder's gradient is copied to the encoder
(the straight-through estimator, ``z + sg(e - z)``). Three stabilisers keep a codebook
alive at toy scale (van den Oord et al. 2017; Razavi et al. 2019; Dhariwal et al. 2020):

- **EMA updates**: each code moves to the running mean of the vectors assigned to it,
  ``N_k ← γ N_k + (1 - γ) n_k``, ``m_k ← γ m_k + (1 - γ) Σ z``, ``e_k = m_k / N_k``, instead of
  following a codebook loss's gradient;
- the **commitment loss** ``β ||z - sg(e)||²`` keeps the encoder's outputs near their codes;
- **dead-code restarts**: a code whose running count ``N_k`` falls below a threshold is moved onto a
  random encoder output of the batch, so that no code stays unused.

Without them, a few codes take every vector (collapse): notebook 12 shows it.

As a generator on its own (``musiclib train vq``) the tokenizer draws each token independently
from how often the codes are used: tokens without a model of their order, the floor a token
prior must beat.

Notebook: 12_audio_tokens.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from musiclib import cache, distributed
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import model_clips, windows
from musiclib.models import base, register
from musiclib.models.layers import eval_mode
from musiclib.models.log_mel_steps import WINDOW_FRAMES, LogMelSteps
from musiclib.models.log_mel_steps import FRAMES_PER_STEP as FRAMES_PER_TOKEN


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of ``(B, dim, T)`` vectors with EMA updates, commitment loss and dead-code restarts.

    Args:
        codebook_size: ``K``, the number of codes (tokens).
        dim: Length of each code vector.
        decay: ``γ`` of the EMA updates.
        commitment: ``β``, the weight of the commitment loss.
        ema: Update codes by EMA (``False``: by the codebook loss ``||sg(z) - e||²``'s gradient).
        restart_below: Restart codes whose running count ``N_k`` falls below this (0: never).
    """

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, commitment: float = 0.25, ema: bool = True,
                 restart_below: float = 1.0, kmeans_init: bool = False):
        super().__init__()
        self.codebook_size, self.dim, self.decay, self.commitment = codebook_size, dim, decay, commitment
        self.ema, self.restart_below = ema, restart_below
        codebook = torch.randn(codebook_size, dim)
        if ema:
            self.register_buffer("codebook", codebook)
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("ema_sum", codebook.clone())
        # False until the first training batch has placed the codes by k-means (kmeans_init); True: never to be done.
        self.register_buffer("initialised", torch.tensor(not kmeans_init))

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        """Place the codes by k-means on the first training batch's vectors, each code's count set to its cluster's size."""
        flat = distributed.batch_rows(flat)
        centroids, counts = kmeans(flat, self.codebook_size)
        centroids, counts = distributed.batch_from_main(centroids), distributed.batch_from_main(counts)
        self.codebook.copy_(centroids)
        self.ema_count.copy_(counts)
        self.ema_sum.copy_(centroids * counts[:, None])
        self.initialised.fill_(True)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, dim, T)`` → ``(B, T)`` indices of the nearest codes (squared Euclidean distance)."""
        flat = z.transpose(1, 2).reshape(-1, self.dim)
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None])
        return distances.argmin(dim=1).view(z.shape[0], z.shape[2])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` indices → ``(B, dim, T)`` code vectors."""
        return self.codebook[indices].transpose(1, 2)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        # With several processes: the global batch's counts, sums and vectors (musiclib.distributed).
        one_hot = torch.nn.functional.one_hot(indices, self.codebook_size).type_as(flat)
        counts = distributed.batch_sum(one_hot.sum(0))
        if self.ema:
            self.ema_count.mul_(self.decay).add_((1 - self.decay) * counts)
            self.ema_sum.mul_(self.decay).add_(distributed.batch_sum((1 - self.decay) * one_hot.t() @ flat))
            # Laplace smoothing keeps an unused code's count above zero, so the division never fails.
            total = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (total + self.codebook_size * 1e-5) * total
            self.codebook.copy_(self.ema_sum / smoothed[:, None])
        else:
            self.ema_count.mul_(self.decay).add_((1 - self.decay) * counts)
        if self.restart_below > 0:
            dead = self.ema_count < self.restart_below
            if dead.any():
                flat = distributed.batch_rows(flat)
                # Rank 0's random picks, so that every rank's codebook stays the same.
                picks = distributed.batch_from_main(flat[torch.randint(0, len(flat), (int(dead.sum()),), device=flat.device)])
                self.codebook[dead] = picks
                self.ema_sum[dead] = picks * self.restart_below
                self.ema_count[dead] = self.restart_below

    def forward(self, z: torch.Tensor):
        """``(B, dim, T)`` → ``(quantised, indices, loss)``.

        ``quantised`` is ``z + sg(e - z)`` (the codes forward, the identity backward); ``loss`` is
        ``β`` × the commitment loss, plus the codebook loss when codes are not EMA-updated.
        """
        if self.training and not bool(self.initialised):
            self._initialise(z.detach().transpose(1, 2).reshape(-1, self.dim))
        indices = self.nearest(z)
        codes = self.lookup(indices)
        loss = self.commitment * (z - codes.detach()).pow(2).mean()
        if not self.ema:
            loss = loss + (codes - z.detach()).pow(2).mean()
        if self.training:
            self._update(z.detach().transpose(1, 2).reshape(-1, self.dim), indices.reshape(-1))
        return z + (codes - z).detach(), indices, loss


def kmeans(vectors: torch.Tensor, k: int, iterations: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, dim)`` vectors → ``(k, dim)`` centroids and ``(k,)`` cluster sizes after ``iterations`` of Lloyd's algorithm.

    Starts from k-means++ seeds (each next seed drawn with probability ∝ its squared distance to the nearest seed so
    far, Arthur & Vassilvitskii 2007); with fewer vectors than ``k``, every vector and then random copies, nudged apart.
    A centroid left without vectors stays where it is, with size 0 (the dead-code restarts move it later).
    """
    generator = torch.Generator().manual_seed(seed)
    cpu = vectors.detach().cpu().double()
    if len(cpu) <= k:
        picks = torch.cat([torch.arange(len(cpu)), torch.randint(0, len(cpu), (k - len(cpu),), generator=generator)])
    else:
        picks = [int(torch.randint(0, len(cpu), (1,), generator=generator))]
        nearest = (cpu - cpu[picks[0]]).pow(2).sum(1)
        for _ in range(k - 1):
            picks.append(int(torch.multinomial(nearest / nearest.sum(), 1, generator=generator)) if nearest.sum() > 0
                         else int(torch.randint(0, len(cpu), (1,), generator=generator)))
            nearest = torch.minimum(nearest, (cpu - cpu[picks[-1]]).pow(2).sum(1))
        picks = torch.tensor(picks)
    centroids = vectors[picks.to(vectors.device)].clone()
    centroids += 1e-3 * vectors.std() * torch.randn(centroids.shape, generator=generator).to(vectors)
    for _ in range(iterations):
        assignment = torch.cdist(vectors, centroids).argmin(dim=1)
        counts = torch.bincount(assignment, minlength=k).to(vectors)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, vectors)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids, counts


class ResidualQuantizer(nn.Module):
    """Residual vector quantisation (Zeghidour et al. 2021, SoundStream): ``n_codebooks`` quantisers in a chain.

    The first quantises ``z``, each next one what the ones before left over: ``r_0 = z``,
    ``k_q = argmin_j ||r_q - e^q_j||²``, ``r_{q+1} = r_q - e^q_{k_q}``; the code is the sum ``Σ_q e^q_{k_q}``.
    ``Q`` codebooks of ``K`` codes carry ``Q log2 K`` bits per vector, with ``Q K`` codes to learn instead of ``K^Q``.
    Each stage is a :class:`VectorQuantizer` (EMA, commitment, restarts) placed by k-means on its first batch.
    """

    def __init__(self, n_codebooks: int, codebook_size: int, dim: int, decay: float = 0.99, commitment: float = 0.25,
                 ema: bool = True, restart_below: float = 1.0, kmeans_init: bool = True):
        super().__init__()
        self.n_codebooks, self.codebook_size = n_codebooks, codebook_size
        self.stages = nn.ModuleList(VectorQuantizer(codebook_size, dim, decay, commitment, ema, restart_below, kmeans_init)
                                    for _ in range(n_codebooks))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before residual quantisation hold one quantiser's buffers under the quantiser's own name.
        for name in ("codebook", "ema_count", "ema_sum"):
            if prefix + name in state_dict:
                state_dict[f"{prefix}stages.0.{name}"] = state_dict.pop(prefix + name)
                state_dict.setdefault(f"{prefix}stages.0.initialised", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, dim, T)`` → ``(B, T, Q)`` indices, stage by stage on the residual."""
        indices = []
        for stage in self.stages:
            indices.append(stage.nearest(z))
            z = z - stage.lookup(indices[-1])
        return torch.stack(indices, dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, T, Q)`` indices → ``(B, dim, T)``: the sum of each stage's code."""
        return sum(stage.lookup(indices[..., q]) for q, stage in enumerate(self.stages))

    def forward(self, z: torch.Tensor):
        """``(B, dim, T)`` → ``(quantised, indices (B, T, Q), loss)``: the summed codes straight through, the stages' losses summed."""
        residual, codes, indices, loss = z, torch.zeros_like(z), [], 0.0
        for stage in self.stages:
            stage_codes, stage_indices, stage_loss = stage(residual)
            stage_codes = stage_codes.detach()
            codes, residual = codes + stage_codes, residual - stage_codes
            indices.append(stage_indices)
            loss = loss + stage_loss
        return z + (codes - z).detach(), torch.stack(indices, dim=-1), loss


def usage(indices, codebook_size: int) -> dict:
    """How a set of tokens uses the codebook: ``codes_used`` (distinct codes) and ``perplexity``.

    The perplexity ``exp(-Σ p_k ln p_k)`` of the code frequencies ``p`` is the number of equally
    used codes with the same entropy: ``K`` when every code is used equally, 1 after a collapse.
    """
    counts = np.bincount(np.asarray(indices).ravel(), minlength=codebook_size).astype(np.float64)
    p = counts / max(counts.sum(), 1)
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    return {"codes_used": int((counts > 0).sum()), "perplexity": float(np.exp(entropy))}


class ResidualBlock(nn.Module):
    def __init__(self, width: int, conv=nn.Conv1d):
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), conv(width, width, 3, padding=1), nn.GELU(), conv(width, width, 1))

    def forward(self, x):
        return x + self.net(x)


GRIDS = ("time", "time-frequency")
BAND_GROUPS = (8, 16)


def time_codec(n_mels: int, width: int, dim: int) -> tuple[nn.Module, nn.Module]:
    """Encoder ``(B, n_mels, T)`` → ``(B, dim, T / 4)`` and its mirror: 1-D convolutions over time, the mel bands as channels."""
    encoder = nn.Sequential(
        nn.Conv1d(n_mels, width, 3, padding=1), nn.GELU(),
        nn.Conv1d(width, width, 4, stride=2, padding=1), nn.GELU(),
        nn.Conv1d(width, width, 4, stride=2, padding=1), ResidualBlock(width), nn.GELU(),
        nn.Conv1d(width, dim, 1))
    decoder = nn.Sequential(
        nn.Conv1d(dim, width, 3, padding=1), ResidualBlock(width), nn.GELU(),
        nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.GELU(),
        nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.GELU(),
        nn.Conv1d(width, n_mels, 3, padding=1))
    return encoder, decoder


def time_frequency_codec(width: int, dim: int, bands_per_group: int) -> tuple[nn.Module, nn.Module]:
    """Encoder ``(B, n_mels, T)`` → ``(B, dim, n_mels / bands_per_group, T / 4)`` and its mirror: 2-D convolutions over
    the log-mel image, so that one set of weights (and one codebook) serves every register: a chord shape learned in
    the tenor is the same shape an octave up. ``bands_per_group`` is 8 or 16."""
    half = width // 2
    frequency_only = int(np.log2(bands_per_group)) - 2  # stride-2 layers over frequency alone, after two over both axes
    encoder = nn.Sequential(
        nn.Unflatten(1, (1, -1)), nn.Conv2d(1, half, 4, stride=2, padding=1), nn.GELU(),
        nn.Conv2d(half, width, 4, stride=2, padding=1), nn.GELU(),
        *[layer for _ in range(frequency_only) for layer in (nn.Conv2d(width, width, (4, 3), stride=(2, 1), padding=1), nn.GELU())],
        ResidualBlock(width, nn.Conv2d), nn.GELU(),
        nn.Conv2d(width, dim, 1))
    decoder = nn.Sequential(
        nn.Conv2d(dim, width, 3, padding=1), ResidualBlock(width, nn.Conv2d), nn.GELU(),
        *[layer for _ in range(frequency_only) for layer in (nn.ConvTranspose2d(width, width, (4, 3), stride=(2, 1), padding=1), nn.GELU())],
        nn.ConvTranspose2d(width, half, 4, stride=2, padding=1), nn.GELU(),
        nn.ConvTranspose2d(half, 1, 4, stride=2, padding=1), nn.Flatten(1, 2))
    return encoder, decoder


@dataclasses.dataclass(frozen=True)
class TokenizerSettings(base.Settings):
    """``n_codebooks`` residual stages of ``codebook_size`` codes of ``dim`` numbers, each placed by k-means on its first
    batch (``kmeans_init``); the encoder and decoder ``width`` channels wide; ``decay`` of the EMA codebook updates
    (``ema=False``: a codebook loss instead), ``commitment`` weight, ``restart_below`` the running count under which a
    code is restarted (0: never). ``grid`` is where the latent vectors lie: ``"time"``, one per 4 frames (1-D
    convolutions, the mel bands as channels), or ``"time-frequency"``, one per 4 frames and 8 mel bands (2-D
    convolutions and codes shared by every register)."""

    # The default is the tokenizer a transformer learns best at the fast size; pitch_resolving() keeps the notes
    # (docs/2026-12-07-tokens-that-keep-the-notes.md).
    grid: str = "time"
    bands_per_group: int = 8
    width: int = 128
    dim: int = 64
    # 512 codes rather than 256 (measured on the 1-D grid): on the fast chorales, held-out L1 0.59 instead of 0.63 nats, and re-synthesised
    # real music nearer the real thing (kernel distance 0.89 instead of 1.16; docs/2026-11-30-audio-tokens.md).
    codebook_size: int = 512
    n_codebooks: int = 1
    kmeans_init: bool = False
    decay: float = 0.99
    commitment: float = 0.25
    ema: bool = True
    restart_below: float = 1.0
    steps: int = 800

    @classmethod
    def full(cls):
        return cls(steps=6000)

    @classmethod
    def pitch_resolving(cls, steps: int = 800):
        """Tokens that keep the notes: a vector per 4 frames and 8 mel bands (2-D grid, codes shared by every register),
        2 residual codebooks of 512 codes: 32 tokens per 46 ms, 6.2 kbit/s. On held-out fast chorales its round trip
        keeps 0.91 of the notes (pitch agreement) where the default keeps 0.60; a prior needs far more data and steps
        to learn it than the fast size gives."""
        # Width 32 rather than 64: the same pitch agreement after 800 steps (0.91) at half the time per step;
        # learning_rate 2e-3 rather than 1e-3: held-out L1 0.25 instead of 0.32 nats (width 64) after the same steps.
        return cls(grid="time-frequency", bands_per_group=8, width=32, dim=32, n_codebooks=2, kmeans_init=True,
                   learning_rate=2e-3, steps=steps)

    def check(self) -> None:
        if self.n_codebooks < 1 or self.codebook_size < 2:
            raise ValueError("settings n_codebooks must be at least 1 and codebook_size at least 2")
        if self.bands_per_group not in BAND_GROUPS:
            raise ValueError(f"setting bands_per_group must be one of {', '.join(map(str, BAND_GROUPS))}, got {self.bands_per_group!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"setting grid must be one of {', '.join(GRIDS)}, got {self.grid!r}")


@register
class Tokenizer(LogMelSteps, base.Model):
    """The VQ-VAE: ``(B, n_mels, T)`` normalised log-mel (``T`` a multiple of 4) ↔ ``(B, T / 4)`` tokens.

    Buffers ``low``/``high`` hold the global normaliser, so decoded tokens turn back into
    natural-log mel without the training data. Alone it generates tokens drawn independently from how often
    the codes were used in training: tokens without a model of their order, the floor a token prior must beat.
    """

    name, family, output = "vq", "latent", "log-mel"
    description = "VQ-VAE tokenizer on log-mel (one token per 4 frames); alone it draws tokens in no order"
    Settings = TokenizerSettings

    def __init__(self, settings: TokenizerSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        s, n_mels = settings, audio.n_mels
        if s.grid == "time":
            self.encoder, self.decoder = time_codec(n_mels, s.width, s.dim)
            self.bands = 1
        else:
            if n_mels % s.bands_per_group:
                raise ValueError(f"the time-frequency grid needs n_mels a multiple of {s.bands_per_group}, got {n_mels}")
            self.encoder, self.decoder = time_frequency_codec(s.width, s.dim, s.bands_per_group)
            self.bands = n_mels // s.bands_per_group
        self.quantizer = ResidualQuantizer(s.n_codebooks, s.codebook_size, s.dim, s.decay, s.commitment, s.ema,
                                           s.restart_below, s.kmeans_init)
        self.register_normalizer()

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def n_codebooks(self) -> int:
        return self.quantizer.n_codebooks

    @property
    def tokens_per_frame(self) -> int:
        """``C``: one token per codebook and band group in each 4-frame step (band-group-major)."""
        return self.bands * self.n_codebooks

    @property
    def bits_per_second(self) -> float:
        return float(self.tokens_per_frame * np.log2(self.codebook_size) * self.audio.sample_rate
                     / (self.audio.hop_length * FRAMES_PER_TOKEN))

    @staticmethod
    def _vectors(latent: torch.Tensor) -> torch.Tensor:
        """``(B, D, F, T)`` → ``(B, D, T F)``, time-major: the vectors of one step side by side (``(B, D, T)`` as it is)."""
        return latent if latent.dim() == 3 else latent.transpose(2, 3).flatten(2)

    def _latent(self, vectors: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`_vectors`."""
        return vectors if self.settings.grid == "time" else vectors.unflatten(2, (-1, self.bands)).transpose(2, 3)

    def _columns(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, T F, Q)`` indices → ``(B, T, F Q)`` tokens."""
        return indices.unflatten(1, (-1, self.bands)).flatten(2)

    def _indices(self, tokens: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`_columns`."""
        return tokens.unflatten(2, (self.bands, self.n_codebooks)).flatten(1, 2)

    def forward(self, x: torch.Tensor):
        """``(reconstruction, indices, vq_loss)`` of ``(B, n_mels, T)`` log-mel."""
        latent = self.encoder(x)
        quantised, indices, vq_loss = self.quantizer(self._vectors(latent))
        return self.decoder(self._latent(quantised)), self._columns(indices), vq_loss

    def loss(self, batch: torch.Tensor, phase: str = ""):
        """L1 reconstruction of random 64-frame windows + the quantiser's loss; logs codebook use."""
        x = windows(batch, WINDOW_FRAMES, random=self.training)
        reconstruction, indices, vq_loss = self(x)
        l1 = (reconstruction - x).abs().mean()
        logs = {"l1": l1.item()}
        if self.training:  # the first codebook's use: the later ones code ever finer detail
            logs.update(usage(indices[..., :: self.n_codebooks].cpu().numpy(), self.codebook_size))
        return l1 + vq_loss, logs

    def sample(self, n: int, seconds: float, seed: int) -> base.LogMel:
        """Tokens drawn independently from the codes' training frequencies (each codebook its own), decoded."""
        rng = np.random.default_rng(seed)
        length = self.steps_for(seconds)
        frequencies = code_frequencies(self)  # column c uses codebook c % Q (band-group-major columns)
        tokens = np.stack([rng.choice(self.codebook_size, size=(n, length), p=frequencies[c % self.n_codebooks])
                           for c in range(self.tokens_per_frame)], axis=-1)
        return self.tokens_to_log_mel(tokens)

    def heldout_scores(self, dataset) -> dict:
        """Held-out reconstruction L1 (natural-log mel) beside residual k-means at the same bit rate; codebook use of
        held-out tokens (the first codebook's, and the mean perplexity over all)."""
        train = model_clips(dataset, "train", WINDOW_FRAMES)
        held = heldout_images(dataset, train.normalizer)
        tokens = self.encode(held)
        frames = tokens.shape[1] * FRAMES_PER_TOKEN
        denormalize = train.normalizer.denormalize

        def l1(reconstructed):
            return float(np.mean(np.abs(denormalize(reconstructed[..., :frames]) - denormalize(held[..., :frames]))))

        kmeans = cache.memoized(dataset, f"residual_kmeans:{self.tokens_per_frame}x{self.codebook_size}",
                                lambda: kmeans_reconstruction(train.data, held, self.codebook_size, self.tokens_per_frame))
        mean_perplexity = float(np.mean([usage(tokens[..., q::self.n_codebooks], self.codebook_size)["perplexity"]
                                         for q in range(self.n_codebooks)]))
        return {"reconstruction_l1": l1(self.decode(tokens)), "kmeans_reconstruction_l1": l1(kmeans),
                "bits_per_second": self.bits_per_second, **usage(tokens[..., :: self.n_codebooks], self.codebook_size),
                "mean_perplexity": mean_perplexity, "n_heldout": len(held)}

    # Tokens in and out

    def encode(self, log_mel_images) -> np.ndarray:
        """Normalised log-mel ``(n, n_mels, T)`` → ``(n, T // 4, C)`` int64 tokens (frames past a multiple of 4 are dropped)."""
        with eval_mode(self):
            x = torch.as_tensor(np.array(log_mel_images, np.float32), device=self.low.device)  # a copy: cached maps are read-only
            x = x[..., : x.shape[-1] // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN]
            return self._columns(self.quantizer.nearest(self._vectors(self.encoder(x)))).cpu().numpy()

    def decode(self, tokens) -> np.ndarray:
        """``(n, L, C)`` tokens → ``(n, n_mels, 4 L)`` normalised log-mel."""
        with eval_mode(self):
            tokens = torch.as_tensor(np.asarray(tokens, np.int64), device=self.low.device)
            return self.decoder(self._latent(self.quantizer.lookup(self._indices(tokens)))).cpu().numpy()

    def audio_to_tokens(self, clips: np.ndarray, frame_offset: int = 0) -> np.ndarray:
        """``(n, samples)`` audio → ``(n, L, C)`` tokens of its log-mel (from frame ``frame_offset`` on)."""
        return self.encode(self.normalized_log_mel(clips, frame_offset))

    def tokens_to_log_mel(self, tokens: np.ndarray, start: int = 0) -> base.LogMel:
        """``(n, L, C)`` tokens → their decoded natural-log mel (the first ``start`` samples of its audio to be dropped)."""
        return self.decoded_log_mel(tokens, start)

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """Each clip's log-mel (padded to whole tokens by repeating its last frame) to tokens and back: what
        ``n_codebooks × log2(codebook_size)`` bits per 4 frames keep of the music."""
        return self.tokens_to_log_mel(self.encode(self.whole_steps_log_mel(clips)))


def code_frequencies(model: Tokenizer) -> np.ndarray:
    """``(Q, K)`` how often each code of each codebook was used in training (its running count, normalised)."""
    counts = np.stack([stage.ema_count.detach().cpu().numpy().astype(np.float64) for stage in model.quantizer.stages])
    return counts / counts.sum(axis=1, keepdims=True)


def heldout_images(dataset, normalizer) -> np.ndarray:
    frames = dataset.clip_samples // dataset.config.hop_length + 1
    return np.concatenate([model_clips(dataset, split, frames, normalizer).data for split in ("val", "test")])


# ---------------------------------------------------------------------------
# Whole pieces: consecutive clips of one source, joined
# ---------------------------------------------------------------------------


def pieces(dataset, split: str) -> list[np.ndarray]:
    """The audio of each source of a split, its consecutive clips joined: a list of ``(samples,)`` arrays.

    A dataset stores 1-s clips; a sequence model over tokens wants the music as it was
    played, longer than one clip. Clips dropped as silent leave a seam.
    """
    clips = dataset.clips(split)
    return [np.asarray(clips[s["first_clip"]: s["first_clip"] + s["n_clips"]]).reshape(-1)
            for s in dataset.manifest["sources"] if s["split"] == split and s["n_clips"] > 0]


def piece_tokens(tokenizer: Tokenizer, dataset, split: str, frame_offsets=(0,), transpositions=(0,)) -> list[np.ndarray]:
    """Tokens of every piece of a split (:func:`pieces`), one ``(L, C)`` int64 array each, once per frame offset and
    transposition.

    The grid of 4-frame groups is arbitrary: starting it 1, 2 or 3 frames later gives other,
    equally valid token sequences of the same music (``frame_offsets=range(4)``: four times the data).
    Music transposed by a few semitones is still music in another key: each piece is also pitch-shifted
    by every number of semitones in ``transpositions`` (0: as it is).
    """
    import librosa

    shifted = [y if n == 0 else librosa.effects.pitch_shift(y, sr=dataset.sample_rate, n_steps=n)
               for y in pieces(dataset, split) for n in transpositions]
    return [tokenizer.audio_to_tokens(y[None], offset)[0] for y in shifted for offset in frame_offsets]


# ---------------------------------------------------------------------------
# Baselines at the same bit rate, and the shared pipeline
# ---------------------------------------------------------------------------


def frame_groups(images: np.ndarray) -> np.ndarray:
    """``(n, n_mels, T)`` → ``(n * T // 4, n_mels * 4)``: the 4-frame patches a token stands for."""
    n, n_mels, frames = images.shape
    usable = frames // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN
    patches = images[..., :usable].reshape(n, n_mels, usable // FRAMES_PER_TOKEN, FRAMES_PER_TOKEN)
    return patches.transpose(0, 2, 1, 3).reshape(-1, n_mels * FRAMES_PER_TOKEN)


def ungroup(patches: np.ndarray, n: int, n_mels: int) -> np.ndarray:
    """Undo :func:`frame_groups`."""
    per_clip = len(patches) // n
    return patches.reshape(n, per_clip, n_mels, FRAMES_PER_TOKEN).transpose(0, 2, 1, 3).reshape(n, n_mels, -1)


def kmeans_reconstruction(train_images: np.ndarray, images: np.ndarray, codebook_size: int, n_codebooks: int = 1,
                          seed: int = 0) -> np.ndarray:
    """The same bit rate without learning: residual k-means on the training clips' 4-frame patches.

    Stage ``q`` fits ``codebook_size`` centroids to what the stages before it left over; each patch of ``images`` is
    replaced by the sum of its nearest centroid at every stage.
    """
    train_residual, residual = torch.from_numpy(frame_groups(train_images)), torch.from_numpy(frame_groups(images))
    for stage in range(n_codebooks):
        centroids, _ = kmeans(train_residual, codebook_size, iterations=10, seed=seed + stage)
        train_residual = train_residual - centroids[torch.cdist(train_residual, centroids).argmin(dim=1)]
        residual = residual - centroids[torch.cdist(residual, centroids).argmin(dim=1)]
    return ungroup(frame_groups(images) - residual.numpy(), len(images), images.shape[1])
