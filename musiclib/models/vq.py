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

import numpy as np
import torch
from torch import nn

from musiclib import cache, distributed, features
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer, model_clips, windows
from musiclib.models import ModelSpec, register
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


class Tokenizer(nn.Module):
    """The VQ-VAE: ``(B, n_mels, T)`` normalised log-mel (``T`` a multiple of 4) ↔ ``(B, T / 4)`` tokens.

    Buffers ``low``/``high`` hold the global normaliser, so decoded tokens turn back into
    natural-log mel without the training data.
    """

    def __init__(self, n_mels: int = 80, width: int = 128, dim: int = 64, codebook_size: int = 512, decay: float = 0.99,
                 commitment: float = 0.25, ema: bool = True, restart_below: float = 1.0):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(n_mels, width, 3, padding=1), nn.GELU(),
            nn.Conv1d(width, width, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(width, width, 4, stride=2, padding=1), ResidualBlock(width), nn.GELU(),
            nn.Conv1d(width, dim, 1))
        self.quantizer = VectorQuantizer(codebook_size, dim, decay, commitment, ema, restart_below)
        self.decoder = nn.Sequential(
            nn.Conv1d(dim, width, 3, padding=1), ResidualBlock(width), nn.GELU(),
            nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(width, n_mels, 3, padding=1))
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def forward(self, x: torch.Tensor):
        """``(reconstruction, indices, vq_loss)`` of ``(B, n_mels, T)`` log-mel."""
        quantised, indices, vq_loss = self.quantizer(self.encoder(x))
        return self.decoder(quantised), indices, vq_loss

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

    def audio_to_tokens(self, clips: np.ndarray, audio_config: AudioConfig, frame_offset: int = 0) -> np.ndarray:
        """``(n, samples)`` audio → ``(n, L)`` tokens of its log-mel (from frame ``frame_offset`` on)."""
        normalize = self.normalizer().normalize
        return self.encode(np.stack([normalize(features.log_mel(np.asarray(y), audio_config))[:, frame_offset:] for y in clips]))

    def tokens_to_audio(self, tokens: np.ndarray, audio_config: AudioConfig, n_samples: int, seed: int = 0,
                        vocoder=None) -> np.ndarray:
        """``(n, L)`` tokens → ``(n, n_samples)`` audio: decode, undo the normaliser, invert (Griffin-Lim 32 or ``vocoder``)."""
        log_mel = self.normalizer().denormalize(self.decode(tokens))
        return features.log_mel_images_to_audio(log_mel[:, None], audio_config, n_samples, seed, vocoder)


def loss(model: Tokenizer, batch: torch.Tensor):
    """L1 reconstruction of random 64-frame windows + the quantiser's loss; logs codebook use."""
    x = windows(batch, WINDOW_FRAMES, random=model.training)
    reconstruction, indices, vq_loss = model(x)
    l1 = (reconstruction - x).abs().mean()
    logs = {"l1": l1.item()}
    if model.training:
        logs.update(usage(indices.cpu().numpy(), model.codebook_size))
    return l1 + vq_loss, logs


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
    return [tokenizer.audio_to_tokens(y[None], dataset.config, offset)[0] for y in pieces(dataset, split) for offset in frame_offsets]


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


def default_config(fast: bool) -> dict:
    # 512 codes rather than 256: on the fast chorales, held-out L1 0.59 instead of 0.63 nats, and re-synthesised
    # real music nearer the real thing (kernel distance 0.89 instead of 1.16; docs/2026-11-30-audio-tokens.md).
    return {"width": 128, "dim": 64, "codebook_size": 512, "decay": 0.99, "commitment": 0.25, "ema": True,
            "restart_below": 1.0, "learning_rate": 1e-3, "batch_size": 32, "steps": 800 if fast else 6000}


def build(model_config: dict, audio_config: AudioConfig) -> Tokenizer:
    model = Tokenizer(audio_config.n_mels, model_config["width"], model_config["dim"], model_config["codebook_size"],
                      model_config["decay"], model_config["commitment"], model_config["ema"], model_config["restart_below"])
    model.model_config = dict(model_config)
    return model


def training_arrays(dataset, model_config: dict):
    """Whole normalised log-mel clips (the loss cuts random 64-frame windows) and the validation clips."""
    train = model_clips(dataset, "train", WINDOW_FRAMES)
    return train.data, model_clips(dataset, "val", WINDOW_FRAMES, train.normalizer).data


@torch.no_grad()
def prepare(model: Tokenizer, dataset, model_config: dict) -> None:
    normalizer = model_clips(dataset, "train", WINDOW_FRAMES).normalizer
    model.low.fill_(normalizer.low)
    model.high.fill_(normalizer.high)


def code_frequencies(model: Tokenizer) -> np.ndarray:
    """``(K,)`` how often each code was used in training (its running count, normalised)."""
    counts = model.quantizer.ema_count.detach().cpu().numpy().astype(np.float64)
    return counts / counts.sum()


def generate(model: Tokenizer, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None, vocoder=None) -> np.ndarray:
    """``(n, samples)``: tokens drawn independently from the codes' training frequencies, decoded and inverted."""
    n_samples = int(round(seconds * audio_config.sample_rate))
    n_tokens = -(-(n_samples // audio_config.hop_length + 1) // FRAMES_PER_TOKEN)
    rng = np.random.default_rng(seed)
    tokens = rng.choice(model.codebook_size, size=(n, n_tokens), p=code_frequencies(model))
    return model.tokens_to_audio(tokens, audio_config, n_samples, seed, vocoder)


def heldout_images(dataset, normalizer) -> np.ndarray:
    frames = dataset.clip_samples // dataset.config.hop_length + 1
    return np.concatenate([model_clips(dataset, split, frames, normalizer).data for split in ("val", "test")])


def heldout_scores(model: Tokenizer, dataset, model_config: dict) -> dict:
    """Held-out reconstruction L1 (natural-log mel) beside k-means at the same bit rate; codebook use of held-out tokens."""
    train = model_clips(dataset, "train", WINDOW_FRAMES)
    held = heldout_images(dataset, train.normalizer)
    tokens = model.encode(held)
    frames = tokens.shape[1] * FRAMES_PER_TOKEN
    denormalize = train.normalizer.denormalize

    def l1(reconstructed):
        return float(np.mean(np.abs(denormalize(reconstructed[..., :frames]) - denormalize(held[..., :frames]))))

    kmeans = cache.memoized(dataset, f"vq_kmeans:{model.codebook_size}",
                            lambda: kmeans_reconstruction(train.data, held, model.codebook_size))
    return {"reconstruction_l1": l1(model.decode(tokens)), "kmeans_reconstruction_l1": l1(kmeans),
            "bits_per_second": float(np.log2(model.codebook_size) * dataset.sample_rate / (dataset.config.hop_length * FRAMES_PER_TOKEN)),
            **usage(tokens, model.codebook_size), "n_heldout": len(held)}


SPEC = register(ModelSpec("vq", "VQ-VAE tokenizer on log-mel (one token per 4 frames); alone it draws tokens in no order",
                          default_config, build, training_arrays, loss, generate, prepare=prepare, heldout_scores=heldout_scores,
                          accepts_vocoder=True, family="latent"))
