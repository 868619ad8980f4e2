"""The GRUV LSTM (seed 002): predict the next FFT block of audio from the blocks so far.

Architecture (as the seed describes it): a per-block Dense layer ``d → hidden``, an
LSTM over the sequence of blocks, and a per-block Dense ``hidden → d``; trained with
MSE and RMSprop on ``x → y`` where ``y`` is ``x`` shifted by one block.

Two registered versions:
- ``gruv-seed``: the seed's sizes and data (rectangular 2048-sample blocks, full
  ``[real | imag]`` FFT, hidden 1024: 16,786,432 parameters);
- ``gruv``: a small default on half-overlapping windowed blocks (no clicks at the
  edges) in the rfft form, which trains on a CPU in minutes.

Generation runs free: the model is primed with held-out audio, then each new block is
its own previous prediction fed back with the LSTM state carried forward (O(N) for N
blocks). :func:`refeed_run` is the seed's method, re-running the whole growing
sequence for each block (O(N²)); both give the same output.

Notebook: 06_lstm_fft_blocks.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib import baselines, cache
from musiclib.config import AudioConfig
from musiclib.datasets import gruv
from musiclib.models import base, register
from musiclib.models.layers import eval_mode, keras_lstm, lstm_step, track_residual_rms

@dataclasses.dataclass(frozen=True)
class GRUVSettings(base.Settings):
    """Blocks of ``block_size`` samples every ``hop`` samples, in ``form`` (:data:`musiclib.datasets.gruv.FORMS`);
    ``temperature`` scales the noise free-running generation samples (0: the mean prediction)."""

    block_size: int = 2048
    hop: int = 1024
    form: str = "rfft"
    hidden_size: int = 256
    temperature: float = 1.0
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    batch_size: int = 16
    steps: int = 300

    @classmethod
    def full(cls):
        return cls(steps=3000)

    def check(self) -> None:
        if self.form not in gruv.FORMS:
            raise ValueError(f"setting form must be one of {gruv.FORMS}, got {self.form!r}")
        if not 0 < self.hop <= self.block_size:
            raise ValueError(f"setting hop must be between 1 and block_size ({self.block_size}), got {self.hop}")


@register
class GRUV(base.Model):
    """Dense → LSTM → Dense over a sequence of normalised FFT blocks; continues held-out audio.

    Buffers (saved with the weights):
        feature_mean, feature_std: ``(d,)`` training statistics, to turn predictions back into FFTs.
        residual_std: ``(d,)`` running RMS of the one-step training error: the spread of
            the Gaussian that MSE assumes, which free-running generation samples from.
    """

    name, family, prime_seconds = "gruv", "sequence", 1.0
    description = "GRUV LSTM on windowed, half-overlapping rfft blocks (small, trains on a CPU)"
    gallery = ("A second of a held-out chorale, then the LSTM running free on FFT blocks. Listen for how soon the music "
               "dissolves into coloured noise after the prime, and for the absence of clicks at block edges.")
    Settings = GRUVSettings

    def __init__(self, settings: GRUVSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        feature_size = gruv.feature_size(settings.block_size, settings.form)
        self.encode = torch.nn.Linear(feature_size, settings.hidden_size)
        self.lstm = keras_lstm(settings.hidden_size, settings.hidden_size)
        self.decode = torch.nn.Linear(settings.hidden_size, feature_size)
        self.register_buffer("feature_mean", torch.zeros(feature_size))
        self.register_buffer("feature_std", torch.ones(feature_size))
        self.register_buffer("residual_std", torch.ones(feature_size))

    @torch.no_grad()
    def fit(self, dataset) -> None:
        train = blocks(dataset, self.settings, "train")
        self.feature_mean.copy_(torch.as_tensor(train.mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(train.std, dtype=torch.float32))

    def features(self, dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: sequences of normalised blocks and the same sequences one block later."""
        part = blocks(dataset, self.settings, split)
        return part.x, part.y

    def forward(self, x: torch.Tensor, state=None):
        """``x``: ``(batch, blocks, d)`` → ``(prediction of the next block at every position, LSTM state)``."""
        hidden, state = self.lstm(self.encode(x), state)
        return self.decode(hidden), state

    def step(self, block: torch.Tensor, state):
        """One block ``(batch, d)`` with the state carried from before → ``(prediction (batch, d), state)``."""
        hidden, state = lstm_step(self.lstm, self.encode(block), state)
        return self.decode(hidden), state

    def loss(self, batch, phase: str = "") -> torch.Tensor:
        """MSE of the next-block prediction; while training it also tracks the residual RMS per feature."""
        x, y = batch
        prediction, _ = self(x)
        error = prediction - y
        if self.training:
            track_residual_rms(self.residual_std, error.detach(), dims=(0, 1))
        return error.pow(2).mean()

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> np.ndarray:
        """``(n, samples)``: ``seconds`` of free-running blocks after each row of ``prime``."""
        y, n_prime = self.continue_audio(prime, seconds, seed=seed)
        return y[:, n_prime:]

    def heldout_scores(self, dataset) -> dict:
        """One-step MSE on held-out blocks (normalised units): the model, persistence (repeat the last block) and the mean (predict 0)."""
        heldout = [blocks(dataset, self.settings, split) for split in ("val", "test")]
        x = np.concatenate([np.asarray(part.x) for part in heldout])
        y = np.concatenate([np.asarray(part.y) for part in heldout])
        model_mse = one_step_mse(self, x, y)
        # y is x one block later, so the whole sequence is x followed by the last target.
        persistence = baselines.one_step_persistence_mse(np.concatenate([x, y[:, -1:]], axis=1))
        mean = float(np.mean(np.asarray(y, np.float64) ** 2))
        return {"one_step_mse": model_mse, "persistence_mse": persistence, "mean_predictor_mse": mean,
                "improvement_over_persistence": 1 - model_mse / persistence}

    # Audio in and out

    def audio_to_features(self, audio: np.ndarray) -> torch.Tensor:
        """``(batch, samples)`` audio → ``(batch, blocks, d)`` features normalised with the model's statistics."""
        s = self.settings
        feats = gruv.blocks_to_features(gruv.to_blocks(np.asarray(audio, dtype=np.float32), s.block_size, s.hop), s.form)
        return (torch.from_numpy(feats.astype(np.float32)).to(self.feature_mean.device) - self.feature_mean) / self.feature_std

    def features_to_audio(self, features: torch.Tensor) -> np.ndarray:
        """``(batch, blocks, d)`` normalised features → ``(batch, samples)`` audio (inverse FFT, then concatenation or overlap-add)."""
        s = self.settings
        feats = (features * self.feature_std + self.feature_mean).cpu().numpy()
        return np.stack([gruv.blocks_to_audio(gruv.features_to_blocks(f, s.block_size, s.form), s.hop) for f in feats])

    def continue_audio(self, prime: np.ndarray, seconds: float, temperature: float | None = None,
                       seed: int = 0) -> tuple[np.ndarray, int]:
        """Prime with ``(batch, samples)`` held-out audio and run free for ``seconds``.

        The model reads the prime's last whole blocks, laid so that the last one ends where the
        prime ends; the generated audio therefore continues at the prime's last sample, with no
        replay of the part of the prime that does not fill a block.

        Returns:
            ``(audio, n_prime)``: ``(batch, samples)`` audio, the prime unchanged (its ``n_prime``
            samples) followed by ``seconds`` of generated audio.
        """
        b, h, sample_rate = self.settings.block_size, self.settings.hop, self.audio.sample_rate
        temperature = self.settings.temperature if temperature is None else temperature
        prime = np.asarray(prime, dtype=np.float32)
        n_prime = prime.shape[-1]
        # Overlapping blocks need one hop more: to_blocks pads a half-empty last block, which is dropped,
        # because a zero-padded block would teach the model a fade-out.
        whole = n_prime // h if h == b else n_prime // h - 1
        if whole < 1:
            raise ValueError(f"the prime ({n_prime} samples) is shorter than one block ({b} samples); give a longer prime.")
        start = n_prime - whole * h
        prime_feats = self.audio_to_features(prime[..., start:])
        if h != b:
            prime_feats = prime_feats[:, :-1]
        n_new = int(np.ceil(seconds * sample_rate / h)) + 1
        with eval_mode(self):
            generated = free_run(self, prime_feats, n_new, temperature, seed)
        y = self.features_to_audio(torch.cat([prime_feats, generated], dim=1))
        # y[:, i] is the sample at start + i, so the prime's end is y[:, whole * h].
        new = y[:, whole * h : whole * h + int(round(seconds * sample_rate))]
        return np.concatenate([prime, new], axis=-1), n_prime


@dataclasses.dataclass(frozen=True)
class SeedGRUVSettings(GRUVSettings):
    hop: int = 2048
    form: str = "seed"
    hidden_size: int = 1024
    learning_rate: float = 1e-4
    steps: int = 20

    @classmethod
    def full(cls):
        return cls(steps=2000)


@register
class SeedGRUV(GRUV):
    """The seed's sizes and data: rectangular 2048-sample blocks, the full ``[real | imag]`` FFT, hidden 1024."""

    name = "gruv-seed"
    description = "the seed's GRUV LSTM on rectangular FFT blocks (16.8 M parameters)"
    gallery = ""
    Settings = SeedGRUVSettings


def blocks(dataset, settings: GRUVSettings, split: str) -> gruv.GruvBlocks:
    """The dataset's GRUV tensors for ``split`` in these settings, built once into the feature cache (:mod:`musiclib.cache`)."""
    b, h, form = settings.block_size, settings.hop, settings.form
    stats = None
    if split != "train":
        train = blocks(dataset, settings, "train")
        stats = (train.mean, train.std)

    def build(folder):
        gruv.GruvBlocks.build(dataset, split, folder, block_size=b, form=form, hop=h, stats=stats)

    return gruv.GruvBlocks(cache.derived_dir(dataset, f"gruv_b{b}_h{h}_{form}_{split}", build))


def one_step_mse(model: GRUV, x, y, batch_size: int = 64) -> float:
    """Teacher-forced one-step MSE over ``(n, blocks, d)`` inputs and targets."""
    device = model.feature_mean.device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.asarray(x[i : i + batch_size], dtype=np.float32)).to(device)
            yb = torch.from_numpy(np.asarray(y[i : i + batch_size], dtype=np.float32)).to(device)
            total += float(((model(xb)[0] - yb) ** 2).sum())
            count += yb.numel()
    return total / count


def _noise(model: GRUV, prediction: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return prediction
    eps = torch.randn(prediction.shape, generator=generator).to(prediction.device)
    return prediction + temperature * model.residual_std * eps


@torch.no_grad()
def free_run(model: GRUV, prime: torch.Tensor, n_blocks: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Generate ``n_blocks`` new blocks after ``prime``, carrying the LSTM state: O(n_blocks).

    Args:
        model: A trained :class:`GRUV`.
        prime: ``(batch, prime_blocks, d)`` normalised features of held-out audio.
        n_blocks: Blocks to generate.
        temperature: 0 feeds back the mean prediction; 1 samples the Gaussian that MSE training assumes.
        seed: Seeds the sampling noise.

    Returns:
        ``(batch, n_blocks, d)`` generated normalised features (the prime not included).
    """
    generator = torch.Generator().manual_seed(seed)
    prediction, state = model(prime)
    block = _noise(model, prediction[:, -1], temperature, generator)
    blocks = [block]
    for _ in range(n_blocks - 1):
        prediction, state = model.step(block, state)
        block = _noise(model, prediction, temperature, generator)
        blocks.append(block)
    return torch.stack(blocks, dim=1)


@torch.no_grad()
def refeed_run(model: GRUV, prime: torch.Tensor, n_blocks: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """The seed's generation: re-run the whole growing sequence for every new block, O(n_blocks²). Same output as :func:`free_run`."""
    generator = torch.Generator().manual_seed(seed)
    sequence = prime
    for _ in range(n_blocks):
        prediction, _ = model(sequence)
        sequence = torch.cat([sequence, _noise(model, prediction[:, -1], temperature, generator)[:, None]], dim=1)
    return sequence[:, prime.shape[1]:]
