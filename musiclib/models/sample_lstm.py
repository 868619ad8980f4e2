"""The sample-level LSTM (seed 003): predict the next audio sample from the previous ``look_back``.

The seed's layout: the ``look_back`` samples enter as the features of a *single*
time step, so ``LSTM(100)`` sees one step from a zero state and its recurrence is
never used (its 10,000 recurrent weights and its forget gate cannot change the
output); then Dense 50 → 25 → 12 → 1. At ``look_back = 3`` that is 48,250 parameters. The output
activation is the seed's lesson: ``relu`` cannot produce a negative sample,
``leaky_relu`` (Keras' slope 0.3) can, and ``linear`` is the plain choice.

Audio is divided by the training RMS (one number for the whole set, stored in the
model), so that predictions can be turned back into audio for any new prime.
Generation runs free: each predicted sample (plus Gaussian noise at the training
residual's spread, scaled by ``temperature``) becomes part of the next input.

Notebook: 07_lstm_samples.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib import cache
from musiclib.config import AudioConfig
from musiclib.models import base, register
from musiclib.models.layers import eval_mode, keras_lstm, track_residual_rms
from musiclib.utils import torch_threads

OUTPUT_ACTIVATIONS = ("relu", "leaky_relu", "linear")
LEAKY_SLOPE = 0.3  # Keras' LeakyReLU default, which the seed used
@dataclasses.dataclass(frozen=True)
class SampleLSTMSettings(base.Settings):
    """``look_back`` samples of context; ``dense_sizes`` hidden Dense widths after the LSTM, each with ReLU;
    ``output_activation`` one of :data:`OUTPUT_ACTIVATIONS`; ``windows`` random training rows; ``temperature`` scales the
    noise free-running generation adds (0: the mean prediction)."""

    look_back: int = 3
    hidden_size: int = 100
    dense_sizes: tuple[int, ...] = (50, 25, 12)
    output_activation: str = "leaky_relu"
    windows: int = 100_000
    temperature: float = 1.0
    batch_size: int = 256
    steps: int = 1500

    @classmethod
    def full(cls):
        return cls(windows=1_000_000, steps=20_000)

    def check(self) -> None:
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"setting output_activation must be one of {OUTPUT_ACTIVATIONS}, got {self.output_activation!r}")
        if self.look_back < 1 or self.windows < 1:
            raise ValueError("settings look_back and windows must be at least 1")


@register
class SampleLSTM(base.Model):
    """``(batch, look_back)`` normalised samples → ``(batch,)`` prediction of the next one; continues held-out audio.

    Buffers:
        scale: Training RMS; model units are ``audio / scale``.
        residual_std: Running RMS of the one-step training error (model units).
    """

    name, family, prime_seconds = "sample-lstm", "sequence", 0.25
    description = "the seed's LSTM on raw samples: next sample from the previous look_back"
    Settings = SampleLSTMSettings

    def __init__(self, settings: SampleLSTMSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        self.lstm = keras_lstm(settings.look_back, settings.hidden_size)
        layers, width = [], settings.hidden_size
        for size in settings.dense_sizes:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        layers.append(torch.nn.Linear(width, 1))
        if settings.output_activation == "relu":
            layers.append(torch.nn.ReLU())
        elif settings.output_activation == "leaky_relu":
            layers.append(torch.nn.LeakyReLU(LEAKY_SLOPE))
        self.head = torch.nn.Sequential(*layers)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("residual_std", torch.ones(()))

    @property
    def look_back(self) -> int:
        return self.settings.look_back

    @torch.no_grad()
    def fit(self, dataset) -> None:
        self.scale.fill_(_training_rms(dataset))

    def features(self, dataset, split: str) -> np.ndarray:
        """``(n, look_back + 1)`` random windows of the split (context, then target), in model units."""
        n, scale = self.settings.windows, _training_rms(dataset)
        if split == "train":
            return windows(dataset.clips("train"), self.look_back, n, scale, seed=0)
        return windows(dataset.clips(split), self.look_back, max(1000, n // 10), scale, seed=1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """One LSTM step from a zero state, written out: the forget gate and the recurrent kernel drop out.

        Equal to ``self.lstm(windows[:, None, :])`` (tested), and several times faster
        for the one-sample-at-a-time loop of generation.
        """
        gates = torch.nn.functional.linear(windows, self.lstm.weight_ih_l0, self.lstm.bias_ih_l0)
        input_gate, _forget_gate, cell_input, output_gate = gates.chunk(4, dim=-1)
        hidden = torch.sigmoid(output_gate) * torch.tanh(torch.sigmoid(input_gate) * torch.tanh(cell_input))
        return self.head(hidden).squeeze(-1)

    def loss(self, batch: torch.Tensor, phase: str = "") -> torch.Tensor:
        """MSE of the next-sample prediction; while training it also tracks the residual RMS."""
        error = self(batch[:, :-1]) - batch[:, -1]
        if self.training:
            track_residual_rms(self.residual_std, error.detach(), dims=tuple(range(error.dim())))
        return error.pow(2).mean()

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> np.ndarray:
        """``(n, samples)``: ``seconds`` of free-running samples after each row of ``prime``."""
        prime = torch.as_tensor(np.asarray(prime, dtype=np.float32), device=self.scale.device) / self.scale
        with eval_mode(self):
            y = free_run(self, prime, int(round(seconds * self.audio.sample_rate)), self.settings.temperature, seed)
        return (y * self.scale).cpu().numpy().astype(np.float32)

    def heldout_scores(self, dataset) -> dict:
        """Teacher-forced one-step MSE on held-out windows beside persistence, linear prediction and the mean."""
        scale, look_back = float(self.scale), self.look_back
        test_rows = windows(dataset.heldout_clips(), look_back, 20_000, scale, seed=2)
        train_rows = windows(dataset.clips("train"), look_back, 100_000, scale, seed=3)
        model_mse = float(np.mean((predict(self, test_rows) - test_rows[:, -1]) ** 2))
        scores = {"one_step_mse": model_mse, **baseline_mses(train_rows, test_rows)}
        scores["improvement_over_persistence"] = 1 - model_mse / scores["persistence_mse"]
        return scores


def _training_rms(dataset) -> float:
    return cache.memoized(dataset, "train_rms", lambda: _rms_of_split(dataset.clips("train")))


def _rms_of_split(clips) -> float:
    total = sum(float(np.sum(np.asarray(clips[i : i + 256], dtype=np.float64) ** 2)) for i in range(0, len(clips), 256))
    return float(np.sqrt(total / clips.size))


def windows(clips, look_back: int, n: int, scale: float, seed: int = 0) -> np.ndarray:
    """``(n, look_back + 1)`` random windows (context, then target) from ``(n_clips, samples)`` clips, divided by ``scale``."""
    rng = np.random.default_rng(seed)
    clip_index = np.sort(rng.integers(0, len(clips), n))
    start = rng.integers(0, clips.shape[1] - look_back, n)
    rows = np.empty((n, look_back + 1), dtype=np.float32)
    for i in np.unique(clip_index):
        picked = clip_index == i
        clip = np.asarray(clips[i], dtype=np.float32)
        rows[picked] = clip[start[picked, None] + np.arange(look_back + 1)]
    return rows / scale


@torch.no_grad()
def free_run(model: SampleLSTM, prime: torch.Tensor, n_samples: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Generate ``n_samples`` after ``(batch, >= look_back)`` normalised prime samples; returns ``(batch, n_samples)``."""
    generator = torch.Generator().manual_seed(seed)
    noise = (temperature * model.residual_std.cpu() * torch.randn((n_samples, prime.shape[0]), generator=generator)).to(prime.device)
    window = prime[:, -model.look_back:].clone()
    out = torch.empty((n_samples, prime.shape[0]), device=prime.device)
    with torch_threads(1):  # thousands of tiny steps: thread hand-offs would cost more than the arithmetic
        for t in range(n_samples):
            out[t] = model(window) + noise[t]
            window = torch.cat([window[:, 1:], out[t, :, None]], dim=1)
    return out.T


def predict(model: SampleLSTM, rows: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Teacher-forced predictions for ``(n, look_back + 1)`` rows (the last column, the target, is ignored)."""
    device = model.scale.device
    with eval_mode(model):
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(rows[i : i + batch_size, :-1])).to(device)).cpu().numpy()
                               for i in range(0, len(rows), batch_size)])


def linear_predictor(train_rows: np.ndarray) -> np.ndarray:
    """Least-squares linear prediction (an autoregressive filter with a bias) from training rows: ``(look_back + 1,)`` coefficients."""
    design = np.hstack([train_rows[:, :-1], np.ones((len(train_rows), 1), np.float32)]).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, train_rows[:, -1].astype(np.float64), rcond=None)
    return coefficients


def baseline_mses(train_rows: np.ndarray, test_rows: np.ndarray) -> dict:
    """Teacher-forced one-step MSEs of the simple predictors on ``test_rows`` (model units)."""
    target = test_rows[:, -1].astype(np.float64)
    coefficients = linear_predictor(train_rows)
    linear = test_rows[:, :-1] @ coefficients[:-1] + coefficients[-1]
    return {"persistence_mse": float(np.mean((target - test_rows[:, -2]) ** 2)),
            "linear_prediction_mse": float(np.mean((target - linear) ** 2)),
            "mean_predictor_mse": float(np.mean(target**2))}
