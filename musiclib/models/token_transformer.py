"""A small causal transformer over residual-VQ tokens: the second half of "compress, then model".

The :mod:`~musiclib.models.vq` tokenizer turns music into 21.5 frames of ``Q`` tokens per
second (one per residual codebook); this model learns their joint distribution (as MusicGen
does over codec tokens) and samples new sequences, which the tokenizer's decoder and
Griffin-Lim (or the vocoder) turn back into audio.

- **Delay pattern** (Copet et al. 2023, MusicGen): codebook ``q`` is shifted ``q`` steps
  later, so that row ``r`` of the sequence holds codebook 0 of frame ``r``, codebook 1 of frame
  ``r - 1``, …; positions without a token hold ``PAD`` (index ``K``). One step predicts one
  row, all ``Q`` codebooks at once, and codebook ``q`` of a frame is predicted after
  codebook ``q - 1`` of that frame was seen: ``Q`` tokens per step, ``L + Q - 1`` steps for
  ``L`` frames instead of ``L Q`` steps when every token is its own step.
- Input: a start row ``BOS`` (index ``K`` in every codebook) and the rows; each codebook has its
  own embedding, the ``Q`` embeddings of a row are summed, plus a learned position embedding
  (a window of ``context`` rows).
- ``layers`` pre-norm blocks: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``. Attention with
  ``heads`` heads, ``softmax(Q Kᵀ / √d_head + M) V``, where the mask ``M`` is ``-∞`` above the
  diagonal so that position ``i`` sees only positions ``≤ i``.
- A linear head gives ``Q × K`` logits per position; the loss is the cross-entropy of the next
  row's tokens (``PAD`` positions left out).

Sampling draws one row at a time (temperature, top-k); tokens known in advance (``PAD``, a
prime's tokens) are kept. A key/value cache keeps each layer's keys and values of the rows seen
so far, so a new row's attention reads the cached keys instead of recomputing the whole window
(``benchmarks/token_cache.py``). Longer than ``context``, the window slides: it restarts from
``BOS`` and the last ``context / 2`` rows.

The same network is built in Keras (:func:`musiclib.keras_twins.token_prior`); weights copied across give the
same logits.

Notebook: 12_audio_tokens.ipynb
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from musiclib import distributed
from musiclib.config import AudioConfig
from musiclib.models import base, register, vq
from musiclib.models.layers import eval_mode


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``i`` attends to positions ``≤ i`` only.

    ``forward(x, past)`` takes ``x`` ``(B, T, d)`` and, optionally, the cached keys and values
    ``(k, v)`` ``(B, heads, S, d_head)`` of the ``S`` earlier positions; it returns the output
    ``(B, T, d)`` and the keys and values of all ``S + T`` positions.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        batch, length, d_model = x.shape

        def split(t):
            return t.view(batch, length, self.heads, d_model // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        start = k.shape[2] - length  # absolute position of the first query
        scores = q @ k.transpose(-2, -1) / math.sqrt(d_model // self.heads)
        if length > 1:  # one new position may see every key: only several need the mask
            future = torch.arange(k.shape[2], device=x.device)[None, :] > (start + torch.arange(length, device=x.device))[:, None]
            scores = scores.masked_fill(future, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(batch, length, d_model)
        return self.out(y), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` (MLP ``d → 4d → d`` with GELU)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past=None):
        attended, present = self.attention(self.norm1(x), past)
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.norm2(x))), present


class TokenPrior(nn.Module):
    """``(B, T, Q)`` rows of tokens (``BOS`` = ``PAD`` = ``codebook_size``) → ``(B, T, Q, codebook_size)`` logits of the next row."""

    def __init__(self, codebook_size: int, n_codebooks: int = 1, context: int = 64, d_model: int = 128, heads: int = 4,
                 layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.codebook_size, self.n_codebooks, self.context = codebook_size, n_codebooks, context
        self.bos = self.pad = codebook_size
        self.token_embeddings = nn.ModuleList(nn.Embedding(codebook_size + 1, d_model) for _ in range(n_codebooks))
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_codebooks * codebook_size)
        self.dropout = nn.Dropout(dropout)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before rows of several tokens hold one embedding table under its own name.
        if prefix + "token_embedding.weight" in state_dict:
            state_dict[prefix + "token_embeddings.0.weight"] = state_dict.pop(prefix + "token_embedding.weight")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, tokens: torch.Tensor, past: list | None = None):
        """Logits ``(B, T, Q, K)`` and every layer's keys and values (pass them back as ``past`` to continue)."""
        start = 0 if past is None else past[0][0].shape[2]
        batch, length, n_codebooks = tokens.shape
        if start + length > self.context:
            raise ValueError(f"{start + length} positions do not fit the context of {self.context}")
        positions = torch.arange(start, start + length, device=tokens.device)
        embedded = sum(embedding(tokens[..., q]) for q, embedding in enumerate(self.token_embeddings))
        x = self.dropout(embedded + self.position_embedding(positions))
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        return self.head(self.norm(x)).view(batch, length, n_codebooks, self.codebook_size), presents

    def next_row_loss(self, rows: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats per token) of each of ``(B, T, Q)`` rows' tokens given ``BOS`` and the rows before it,
        ``PAD`` positions left out: a mean over the tokens of the whole batch, of every rank's slice in a distributed
        training step (slices hold different numbers of ``PAD``)."""
        bos = torch.full_like(rows[:, :1], self.bos)
        logits, _ = self(torch.cat([bos, rows[:, :-1]], dim=1))
        total = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows.reshape(-1), ignore_index=self.pad,
                                            reduction="sum")
        counted = distributed.batch_sum((rows != self.pad).sum().float())
        return distributed.global_sum(total) / counted.clamp(min=1)


def delay(frames: np.ndarray, pad: int) -> np.ndarray:
    """``(..., L, Q)`` frames → ``(..., L + Q - 1, Q)`` rows: codebook ``q`` shifted ``q`` rows later, ``pad`` around it."""
    *lead, length, n_codebooks = frames.shape
    rows = np.full((*lead, length + n_codebooks - 1, n_codebooks), pad, np.int64)
    for q in range(n_codebooks):
        rows[..., q: q + length, q] = frames[..., q]
    return rows


def undelay(rows: np.ndarray) -> np.ndarray:
    """Undo :func:`delay`: ``(..., R, Q)`` rows → ``(..., R - Q + 1, Q)`` frames."""
    n_codebooks = rows.shape[-1]
    length = rows.shape[-2] - n_codebooks + 1
    return np.stack([rows[..., q: q + length, q] for q in range(n_codebooks)], axis=-1)


def sampling_probabilities(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """``(n, K)`` float64: softmax(logits / temperature) over each row's ``top_k`` largest logits (all if ``top_k`` is 0), 0 elsewhere."""
    if not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    logits = logits.double() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


def draw(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """One token per row of ``(n, K)`` logits, drawn with :func:`sampling_probabilities` (inverse CDF of one uniform number)."""
    cumulative = sampling_probabilities(logits, temperature, top_k).cumsum(dim=-1)
    u = torch.rand(len(logits), 1, generator=generator, dtype=torch.float64) * cumulative[:, -1:]
    return torch.searchsorted(cumulative, u).clamp(max=logits.shape[-1] - 1)[:, 0]


def known_rows(prefix: np.ndarray, n_new: int, pad: int) -> np.ndarray:
    """``(n, P + n_new + Q - 1, Q)`` rows of the delayed sequence that continues ``prefix`` ``(n, P, Q)`` by ``n_new``
    frames: the prefix's tokens and ``PAD`` where they are known in advance, ``-1`` where a token is to be drawn."""
    n, length, n_codebooks = prefix.shape
    frames = np.concatenate([prefix, np.full((n, n_new, n_codebooks), -1, np.int64)], axis=1)
    return delay(frames, pad)


@torch.inference_mode()
def sample(prior: TokenPrior, prefix: np.ndarray, n_new: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
           use_cache: bool = True) -> np.ndarray:
    """``(n, n_new, Q)`` frames of tokens continuing ``prefix`` ``(n, P, Q)`` (``P`` may be 0).

    Rows of the delayed sequence are drawn one at a time; a token known in advance (``PAD``, or a
    later codebook of the prefix's last frames) replaces the one drawn. The window the model sees
    is ``BOS`` and at most ``context - 1`` rows; when it is full it restarts from ``BOS`` and its
    last ``context // 2`` rows. ``use_cache=False`` recomputes the whole window for every row
    (same tokens, more work).
    """
    prefix = np.asarray(prefix, np.int64).reshape(len(prefix), -1, prior.n_codebooks)
    n, n_prefix = prefix.shape[:2]
    if n_new == 0:
        return np.zeros((n, 0, prior.n_codebooks), np.int64)
    with eval_mode(prior):
        device = prior.head.weight.device
        rows = torch.as_tensor(known_rows(prefix, n_new, prior.pad))
        bos = torch.full((n, 1, prior.n_codebooks), prior.bos, dtype=torch.long)

        def window(first: int, end: int) -> torch.Tensor:
            """``BOS`` and rows ``first`` to ``end - 1``: what the model sees."""
            return torch.cat([bos, rows[:, first:end]], dim=1).to(device)

        first = max(0, n_prefix - (prior.context - 1))
        generator = torch.Generator().manual_seed(seed)
        pending, past = window(first, n_prefix), None
        for r in range(n_prefix, rows.shape[1]):
            if use_cache:
                logits, past = prior(pending, past)
            else:
                logits, _ = prior(window(first, r))
            drawn = draw(logits[:, -1].reshape(-1, prior.codebook_size).cpu(), temperature, top_k, generator).view(n, -1)
            rows[:, r] = torch.where(rows[:, r] >= 0, rows[:, r], drawn)
            pending = rows[:, r: r + 1].to(device)
            if r + 2 - first > prior.context:  # BOS and rows first..r no longer fit: keep the last half
                first = r + 1 - prior.context // 2
                pending, past = window(first, r + 1), None
        return undelay(rows.numpy())[:, n_prefix:]


@dataclasses.dataclass(frozen=True)
class TokenTransformerSettings(base.Settings):
    """The prior: ``context`` positions, ``layers`` blocks of width ``d_model`` with ``heads`` heads; training windows
    at every frame offset of the token grid (``offset_augmentation``); sampling ``temperature`` and ``top_k`` (0: all).

    The tokenizer: ``tokenizer`` names a trained ``vq`` run to reuse (empty: one is trained into ``RUN_DIR/tokenizer``
    for ``tokenizer_steps`` steps, with ``tokenizer_config``); ``tokenizer_run`` and ``tokenizer_config`` record the
    run used and its settings.
    """

    tokenizer: str = ""
    tokenizer_steps: int = vq.TokenizerSettings().steps
    tokenizer_run: str = ""
    tokenizer_config: vq.TokenizerSettings = vq.TokenizerSettings()
    context: int = 64
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.3
    offset_augmentation: bool = True
    transpositions: tuple[int, ...] = (0,)
    temperature: float = 1.0
    top_k: int = 0
    learning_rate: float = 5e-4
    steps: int = 400

    @classmethod
    def full(cls):
        return cls(tokenizer_steps=vq.TokenizerSettings.full().steps, context=128, d_model=256, layers=4, steps=6000)

    def check(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"setting d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if self.context < 2 or self.temperature < 0 or self.top_k < 0:
            raise ValueError("settings context must be at least 2, temperature and top_k at least 0")


@register
class TokenTransformer(base.Model):
    """The tokenizer it is built on (frozen, kept in every checkpoint so that a run folder generates on its own) and the prior."""

    name, family, output = "token-transformer", "latent", "log-mel"
    description = "a causal transformer over VQ tokens (trains its own tokenizer unless given one)"
    gallery = ("Clips decoded from tokens a small transformer drew one after another, 46 ms each, after a VQ-VAE had turned "
               "the training music into tokens. Listen for chords that change and move on, in the tokenizer's coarse, "
               "slightly rough timbre.")
    Settings = TokenTransformerSettings
    upstream = base.Upstream(vq.Tokenizer, "tokenizer", budget_share=0.4)

    def __init__(self, settings: TokenTransformerSettings, audio: AudioConfig, tokenizer: vq.Tokenizer):
        super().__init__(settings, audio)
        self.tokenizer = tokenizer
        self.tokenizer.requires_grad_(False)
        self.prior = TokenPrior(self.tokenizer.codebook_size, self.tokenizer.tokens_per_frame, settings.context, settings.d_model,
                                settings.heads, settings.layers, settings.dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # it never trains here: its codebook must not move
        return self

    def features(self, dataset, split: str) -> np.ndarray:
        """``(n, length, Q)`` int64 windows of ``context`` delayed rows (fewer when the pieces are shorter): every window of
        the training pieces (at every offset of the token grid with ``offset_augmentation``), every quarter window of the others."""
        length = self.window_length(dataset)
        if split == "train":
            offsets = range(vq.FRAMES_PER_TOKEN) if self.settings.offset_augmentation else (0,)
            pieces = vq.piece_tokens(self.tokenizer, dataset, "train", offsets, self.settings.transpositions)
            return token_windows(self.delayed(pieces), length)
        return token_windows(self.delayed(vq.piece_tokens(self.tokenizer, dataset, split)), length, stride=max(1, length // 4))

    def delayed(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        """Each piece's ``(L, Q)`` frames as the ``(L + Q - 1, Q)`` rows of the delay pattern."""
        return [delay(piece, self.prior.pad) for piece in pieces]

    def window_length(self, dataset) -> int:
        """``context``, or the rows of the longest training piece when it is shorter (from the manifest: no audio read)."""
        lengths = [source["n_clips"] * dataset.clip_samples for source in dataset.manifest["sources"]
                   if source["split"] == "train" and source["n_clips"] > 0]  # the pieces vq.pieces joins
        return min(self.settings.context, max(self.tokenizer.steps_in(n) for n in lengths) + self.tokenizer.tokens_per_frame - 1)

    def loss(self, rows: torch.Tensor, phase: str = "") -> torch.Tensor:
        """Cross-entropy (nats per token) of each row's tokens given ``BOS`` and the rows before it in its window
        (``PAD`` positions left out)."""
        return self.prior.next_row_loss(rows)

    def sample(self, n: int, seconds: float, seed: int, temperature: float | None = None, top_k: int | None = None) -> base.LogMel:
        """Tokens from ``BOS`` alone, decoded (``temperature`` and ``top_k`` default to the settings')."""
        s = self.settings
        new = sample(self.prior, np.zeros((n, 0, self.tokenizer.tokens_per_frame), np.int64), self.tokenizer.steps_for(seconds),
                     s.temperature if temperature is None else temperature, s.top_k if top_k is None else top_k, seed)
        return self.tokenizer.tokens_to_log_mel(new)

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> base.LogMel:
        """The tokens of each ``prime`` clip, then new ones; both are decoded together and the audio is cut where the
        prime ends, so that it starts exactly where the prime stops."""
        s, prime = self.settings, np.asarray(prime)
        prefix = self.tokenizer.audio_to_tokens(prime)
        n_new = self.tokenizer.steps_for(prime.shape[1] / self.audio.sample_rate + seconds) - prefix.shape[1]
        new = sample(self.prior, prefix, n_new, s.temperature, s.top_k, seed)
        return self.tokenizer.tokens_to_log_mel(np.concatenate([prefix, new], axis=1), start=prime.shape[1])

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """The tokenizer's round trip: the prior generates in its tokens, so it cannot sound better than this."""
        return self.tokenizer.round_trip(clips)

    def heldout_scores(self, dataset, n_sequences: int = 8, seconds: float = 8.0) -> dict:
        """Held-out cross-entropy (nats per token) beside unigram and bigram baselines, and the longest copied run of frames.

        The baselines model each codebook on its own (the mean over codebooks is given). The copying statistic is a
        maximum over sequences, so both sides have as many: up to ``n_sequences`` non-overlapping ``seconds``-long
        windows of held-out real music (the yardstick), and as many autonomous token sequences of the same length.
        """
        train = vq.piece_tokens(self.tokenizer, dataset, "train")
        held = vq.piece_tokens(self.tokenizer, dataset, "val") + vq.piece_tokens(self.tokenizer, dataset, "test")
        length = self.window_length(dataset)
        windows = token_windows(self.delayed(held), length, stride=max(1, length // 4))
        with eval_mode(self):
            model_nats = float(np.mean([self.loss(torch.as_tensor(windows[i: i + 64], device=self.tokenizer.low.device)).item()
                                        for i in range(0, len(windows), 64)]))
        n_tokens = self.tokenizer.steps_for(int(seconds * dataset.sample_rate) / dataset.sample_rate)
        real = [s[i: i + n_tokens] for s in held for i in range(0, max(1, len(s) - n_tokens + 1), n_tokens)][:n_sequences]
        generated = sample(self.prior, np.zeros((len(real), 0, self.tokenizer.tokens_per_frame), np.int64), n_tokens,
                           self.settings.temperature, self.settings.top_k)
        codebook_size, n_codebooks = self.tokenizer.codebook_size, self.tokenizer.tokens_per_frame

        def per_codebook(order):
            return float(np.mean([ngram_cross_entropy([s[:, q] for s in train], [s[:, q] for s in held], codebook_size, order)
                                  for q in range(n_codebooks)]))

        return {"cross_entropy": model_nats, "unigram_cross_entropy": per_codebook(1), "bigram_cross_entropy": per_codebook(2),
                "longest_copied_tokens": longest_copied_ngram(list(generated), train),
                "heldout_longest_copied_tokens": longest_copied_ngram(real, train),
                "tokens_compared": n_tokens, **{f"generated_{k}": v for k, v in vq.usage(generated[..., 0], codebook_size).items()}}


def token_windows(sequences: list[np.ndarray], length: int, stride: int = 1) -> np.ndarray:
    """``(n, length, ...)`` windows cut every ``stride`` rows from every sequence (``(L,)`` or ``(L, Q)``) at least ``length`` long."""
    cut = [np.moveaxis(np.lib.stride_tricks.sliding_window_view(s, length, axis=0), -1, 1)[::stride]
           for s in sequences if len(s) >= length]
    trailing = sequences[0].shape[1:] if sequences else ()
    return np.concatenate(cut) if cut else np.zeros((0, length, *trailing), np.int64)


# ---------------------------------------------------------------------------
# Held-out scores: likelihood against n-gram baselines, and copying
# ---------------------------------------------------------------------------


def ngram_cross_entropy(train: list[np.ndarray], held: list[np.ndarray], codebook_size: int, order: int) -> float:
    """Nats per held-out token of an add-one-smoothed unigram (``order=1``) or bigram (``order=2``) model of the training tokens."""
    if order == 1:
        counts = np.bincount(np.concatenate(train), minlength=codebook_size) + 1.0
        return float(-np.mean(np.log(counts / counts.sum())[np.concatenate(held)]))
    pairs = np.ones((codebook_size, codebook_size))
    for s in train:
        np.add.at(pairs, (s[:-1], s[1:]), 1)
    conditional = pairs / pairs.sum(axis=1, keepdims=True)
    return float(-np.mean(np.concatenate([np.log(conditional[s[:-1], s[1:]]) for s in held if len(s) > 1])))


def longest_copied_ngram(sequences: list[np.ndarray], reference: list[np.ndarray]) -> int:
    """The longest run of consecutive tokens (or frames of tokens: rows of ``(L, Q)`` arrays) of any of ``sequences``
    that occurs verbatim in ``reference``."""

    def grams(seqs, n):
        return {s[i: i + n].tobytes() for s in seqs for i in range(len(s) - n + 1)}

    sequences = [np.asarray(s, np.int64) for s in sequences]
    reference = [np.asarray(s, np.int64) for s in reference]
    low, high = 0, max(len(s) for s in sequences)
    while low < high:  # copying n tokens implies copying n - 1: search for the largest n that is copied
        n = (low + high + 1) // 2
        if grams(sequences, n) & grams(reference, n):
            low = n
        else:
            high = n - 1
    return low
