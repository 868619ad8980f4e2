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

from musiclib import cache, distributed, features
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer, model_clips, windows
from musiclib.models import base, register
from musiclib.models.layers import eval_mode

FRAMES_PER_TOKEN = 4
WINDOW_FRAMES = 64


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
                 restart_below: float = 1.0):
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
        indices = self.nearest(z)
        codes = self.lookup(indices)
        loss = self.commitment * (z - codes.detach()).pow(2).mean()
        if not self.ema:
            loss = loss + (codes - z.detach()).pow(2).mean()
        if self.training:
            self._update(z.detach().transpose(1, 2).reshape(-1, self.dim), indices.reshape(-1))
        return z + (codes - z).detach(), indices, loss


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
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), nn.Conv1d(width, width, 3, padding=1), nn.GELU(), nn.Conv1d(width, width, 1))

    def forward(self, x):
        return x + self.net(x)


@dataclasses.dataclass(frozen=True)
class TokenizerSettings(base.Settings):
    """``codebook_size`` codes of ``dim`` numbers; the encoder and decoder ``width`` channels wide; ``decay`` of the EMA
    codebook updates (``ema=False``: a codebook loss instead), ``commitment`` weight, ``restart_below`` the running count
    under which a code is restarted (0: never)."""

    width: int = 128
    dim: int = 64
    # 512 codes rather than 256: on the fast chorales, held-out L1 0.59 instead of 0.63 nats, and re-synthesised
    # real music nearer the real thing (kernel distance 0.89 instead of 1.16; docs/2026-11-30-audio-tokens.md).
    codebook_size: int = 512
    decay: float = 0.99
    commitment: float = 0.25
    ema: bool = True
    restart_below: float = 1.0
    steps: int = 800

    @classmethod
    def full(cls):
        return cls(steps=6000)


@register
class Tokenizer(base.Model):
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
        self.encoder = nn.Sequential(
            nn.Conv1d(n_mels, s.width, 3, padding=1), nn.GELU(),
            nn.Conv1d(s.width, s.width, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(s.width, s.width, 4, stride=2, padding=1), ResidualBlock(s.width), nn.GELU(),
            nn.Conv1d(s.width, s.dim, 1))
        self.quantizer = VectorQuantizer(s.codebook_size, s.dim, s.decay, s.commitment, s.ema, s.restart_below)
        self.decoder = nn.Sequential(
            nn.Conv1d(s.dim, s.width, 3, padding=1), ResidualBlock(s.width), nn.GELU(),
            nn.ConvTranspose1d(s.width, s.width, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose1d(s.width, s.width, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(s.width, n_mels, 3, padding=1))
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @torch.no_grad()
    def fit(self, dataset) -> None:
        normalizer = model_clips(dataset, "train", WINDOW_FRAMES).normalizer
        self.low.fill_(normalizer.low)
        self.high.fill_(normalizer.high)

    def features(self, dataset, split: str) -> np.ndarray:
        """Whole normalised log-mel clips (the loss cuts random 64-frame windows of the training ones)."""
        train = model_clips(dataset, "train", WINDOW_FRAMES)
        return train.data if split == "train" else model_clips(dataset, split, WINDOW_FRAMES, train.normalizer).data

    def forward(self, x: torch.Tensor):
        """``(reconstruction, indices, vq_loss)`` of ``(B, n_mels, T)`` log-mel."""
        quantised, indices, vq_loss = self.quantizer(self.encoder(x))
        return self.decoder(quantised), indices, vq_loss

    def loss(self, batch: torch.Tensor, phase: str = ""):
        """L1 reconstruction of random 64-frame windows + the quantiser's loss; logs codebook use."""
        x = windows(batch, WINDOW_FRAMES, random=self.training)
        reconstruction, indices, vq_loss = self(x)
        l1 = (reconstruction - x).abs().mean()
        logs = {"l1": l1.item()}
        if self.training:
            logs.update(usage(indices.cpu().numpy(), self.codebook_size))
        return l1 + vq_loss, logs

    def sample(self, n: int, seconds: float, seed: int) -> base.LogMel:
        """Tokens drawn independently from the codes' training frequencies, decoded."""
        rng = np.random.default_rng(seed)
        tokens = rng.choice(self.codebook_size, size=(n, self.tokens_for(seconds)), p=code_frequencies(self))
        return self.tokens_to_log_mel(tokens)

    def heldout_scores(self, dataset) -> dict:
        """Held-out reconstruction L1 (natural-log mel) beside k-means at the same bit rate; codebook use of held-out tokens."""
        train = model_clips(dataset, "train", WINDOW_FRAMES)
        held = heldout_images(dataset, train.normalizer)
        tokens = self.encode(held)
        frames = tokens.shape[1] * FRAMES_PER_TOKEN
        denormalize = train.normalizer.denormalize

        def l1(reconstructed):
            return float(np.mean(np.abs(denormalize(reconstructed[..., :frames]) - denormalize(held[..., :frames]))))

        kmeans = cache.memoized(dataset, f"vq_kmeans:{self.codebook_size}",
                                lambda: kmeans_reconstruction(train.data, held, self.codebook_size))
        bits = float(np.log2(self.codebook_size) * dataset.sample_rate / (dataset.config.hop_length * FRAMES_PER_TOKEN))
        return {"reconstruction_l1": l1(self.decode(tokens)), "kmeans_reconstruction_l1": l1(kmeans),
                "bits_per_second": bits, **usage(tokens, self.codebook_size), "n_heldout": len(held)}

    # Tokens in and out

    def encode(self, log_mel_images) -> np.ndarray:
        """Normalised log-mel ``(n, n_mels, T)`` → ``(n, T // 4)`` int64 tokens (frames past a multiple of 4 are dropped)."""
        with eval_mode(self):
            x = torch.as_tensor(np.array(log_mel_images, np.float32), device=self.low.device)  # a copy: cached maps are read-only
            x = x[..., : x.shape[-1] // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN]
            return self.quantizer.nearest(self.encoder(x)).cpu().numpy()

    def decode(self, tokens) -> np.ndarray:
        """``(n, L)`` tokens → ``(n, n_mels, 4 L)`` normalised log-mel."""
        with eval_mode(self):
            indices = torch.as_tensor(np.asarray(tokens, np.int64), device=self.low.device)
            return self.decoder(self.quantizer.lookup(indices)).cpu().numpy()

    def normalizer(self) -> Normalizer:
        return Normalizer(float(self.low), float(self.high))

    def audio_to_tokens(self, clips: np.ndarray, frame_offset: int = 0) -> np.ndarray:
        """``(n, samples)`` audio → ``(n, L)`` tokens of its log-mel (from frame ``frame_offset`` on)."""
        normalize = self.normalizer().normalize
        return self.encode(np.stack([normalize(features.log_mel(np.asarray(y), self.audio))[:, frame_offset:] for y in clips]))

    def tokens_to_log_mel(self, tokens: np.ndarray, start: int = 0) -> base.LogMel:
        """``(n, L)`` tokens → their decoded natural-log mel (the first ``start`` samples of its audio to be dropped)."""
        return base.LogMel(self.normalizer().denormalize(self.decode(tokens)), self.audio, start)

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """Each clip's log-mel (padded to whole tokens by repeating its last frame) to tokens and back: what
        ``log2(codebook_size)`` bits per 4 frames keep of the music."""
        normalize = self.normalizer().normalize
        normalized = np.stack([normalize(features.log_mel(np.asarray(y), self.audio)) for y in clips])
        padding = -normalized.shape[-1] % FRAMES_PER_TOKEN
        return self.tokens_to_log_mel(self.encode(np.pad(normalized, ((0, 0), (0, 0), (0, padding)), mode="edge")))

    def tokens_in(self, n_samples: int) -> int:
        """Tokens :meth:`audio_to_tokens` gives for ``n_samples`` of audio (whole groups of 4 frames)."""
        return (n_samples // self.audio.hop_length + 1) // FRAMES_PER_TOKEN

    def tokens_for(self, seconds: float) -> int:
        """Tokens whose frames cover ``seconds`` of audio."""
        n_samples = int(round(seconds * self.audio.sample_rate))
        return -(-(n_samples // self.audio.hop_length + 1) // FRAMES_PER_TOKEN)


def code_frequencies(model: Tokenizer) -> np.ndarray:
    """``(K,)`` how often each code was used in training (its running count, normalised)."""
    counts = model.quantizer.ema_count.detach().cpu().numpy().astype(np.float64)
    return counts / counts.sum()


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


def piece_tokens(tokenizer: Tokenizer, dataset, split: str, frame_offsets=(0,)) -> list[np.ndarray]:
    """Tokens of every piece of a split (:func:`pieces`), one ``(L,)`` int64 array each, once per frame offset.

    The grid of 4-frame groups is arbitrary: starting it 1, 2 or 3 frames later gives other,
    equally valid token sequences of the same music (``frame_offsets=range(4)``: four times the data).
    """
    return [tokenizer.audio_to_tokens(y[None], offset)[0] for y in pieces(dataset, split) for offset in frame_offsets]


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


def kmeans_reconstruction(train_images: np.ndarray, images: np.ndarray, codebook_size: int, seed: int = 0) -> np.ndarray:
    """The same bit rate without learning: k-means with ``codebook_size`` centroids on the training
    clips' 4-frame patches, each patch of ``images`` replaced by its nearest centroid."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(codebook_size, n_init=1, max_iter=100, random_state=seed).fit(frame_groups(train_images))
    patches = frame_groups(images)
    return ungroup(kmeans.cluster_centers_[kmeans.predict(patches)].astype(np.float32), len(images), images.shape[1])
