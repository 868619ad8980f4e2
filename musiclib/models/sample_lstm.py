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


import numpy as np
import torch

from musiclib import cache
from musiclib.config import AudioConfig
from musiclib.models import ModelSpec, register
from musiclib.models.layers import copy_dense, copy_lstm, eval_mode, keras_lstm, track_residual_rms
from musiclib.utils import torch_threads

OUTPUT_ACTIVATIONS = ("relu", "leaky_relu", "linear")
LEAKY_SLOPE = 0.3  # Keras' LeakyReLU default, which the seed used
class SampleLSTM(torch.nn.Module):
    """``(batch, look_back)`` normalised samples → ``(batch,)`` prediction of the next one.

    Args:
        look_back: Samples of context (the seed: 3).
        hidden_size: LSTM width (the seed: 100).
        dense_sizes: Hidden Dense widths after the LSTM (the seed: 50, 25, 12), each with ReLU.
        output_activation: ``relu``, ``leaky_relu`` or ``linear``.

    Buffers:
        scale: Training RMS; model units are ``audio / scale``.
        residual_std: Running RMS of the one-step training error (model units).
    """

    def __init__(self, look_back: int = 3, hidden_size: int = 100, dense_sizes=(50, 25, 12), output_activation: str = "leaky_relu"):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        self.lstm = keras_lstm(look_back, hidden_size)
        layers, width = [], hidden_size
        for size in dense_sizes:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        layers.append(torch.nn.Linear(width, 1))
        if output_activation == "relu":
            layers.append(torch.nn.ReLU())
        elif output_activation == "leaky_relu":
            layers.append(torch.nn.LeakyReLU(LEAKY_SLOPE))
        self.head = torch.nn.Sequential(*layers)
        self.look_back = look_back
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("residual_std", torch.ones(()))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """One LSTM step from a zero state, written out: the forget gate and the recurrent kernel drop out.

        Equal to ``self.lstm(windows[:, None, :])`` (tested), and several times faster
        for the one-sample-at-a-time loop of generation.
        """
        gates = torch.nn.functional.linear(windows, self.lstm.weight_ih_l0, self.lstm.bias_ih_l0)
        input_gate, _forget_gate, cell_input, output_gate = gates.chunk(4, dim=-1)
        hidden = torch.sigmoid(output_gate) * torch.tanh(torch.sigmoid(input_gate) * torch.tanh(cell_input))
        return self.head(hidden).squeeze(-1)


def build_keras(look_back: int = 3, hidden_size: int = 100, dense_sizes=(50, 25, 12), output_activation: str = "leaky_relu"):
    """The same model in Keras 3, input ``(batch, 1, look_back)`` as in the seed."""
    import keras

    layers = [keras.Input((1, look_back)), keras.layers.LSTM(hidden_size)]
    layers += [keras.layers.Dense(size, activation="relu") for size in dense_sizes]
    layers.append(keras.layers.Dense(1, activation="relu" if output_activation == "relu" else None))
    if output_activation == "leaky_relu":
        layers.append(keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE))
    return keras.Sequential(layers, name="sample_lstm")


def load_keras_weights(model: SampleLSTM, keras_model) -> SampleLSTM:
    """Copy a :func:`build_keras` model's weights into ``model`` (same outputs afterwards)."""
    import keras

    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    linear = [layer for layer in model.head if isinstance(layer, torch.nn.Linear)]
    copy_lstm(keras_model.layers[0], model.lstm)
    for source, target in zip(dense, linear, strict=True):
        copy_dense(source, target)
    return model


def default_config(fast: bool) -> dict:
    return {"look_back": 3, "hidden_size": 100, "dense_sizes": [50, 25, 12], "output_activation": "leaky_relu",
            "windows": 100_000 if fast else 1_000_000, "optimizer": "adam", "learning_rate": 1e-3,
            "batch_size": 256, "steps": 1500 if fast else 20_000, "temperature": 1.0}


def build(model_config: dict, audio_config: AudioConfig) -> SampleLSTM:
    model = SampleLSTM(model_config["look_back"], model_config["hidden_size"], tuple(model_config["dense_sizes"]),
                       model_config["output_activation"])
    model.model_config = dict(model_config)
    return model


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


def training_arrays(dataset, model_config: dict):
    scale = _training_rms(dataset)
    n, look_back = model_config["windows"], model_config["look_back"]
    return (windows(dataset.clips("train"), look_back, n, scale, seed=0),
            windows(dataset.clips("val"), look_back, max(1000, n // 10), scale, seed=1))


@torch.no_grad()
def prepare(model: SampleLSTM, dataset, model_config: dict) -> None:
    model.scale.fill_(_training_rms(dataset))


def loss(model: SampleLSTM, batch: torch.Tensor) -> torch.Tensor:
    """MSE of the next-sample prediction; while training it also tracks the residual RMS."""
    error = model(batch[:, :-1]) - batch[:, -1]
    if model.training:
        track_residual_rms(model.residual_std, error.detach(), dims=tuple(range(error.dim())))
    return error.pow(2).mean()


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


def generate(model: SampleLSTM, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None) -> np.ndarray:
    if prime is None:
        raise ValueError("the sample LSTM continues audio: pass a prime (held-out audio), as `musiclib generate` does.")
    prime = torch.as_tensor(np.asarray(prime[:n], dtype=np.float32), device=model.scale.device) / model.scale
    with eval_mode(model):
        y = free_run(model, prime, int(round(seconds * audio_config.sample_rate)), model.model_config["temperature"], seed)
    return (y * model.scale).cpu().numpy().astype(np.float32)


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


def heldout_scores(model: SampleLSTM, dataset, model_config: dict) -> dict:
    """Teacher-forced one-step MSE on held-out windows beside persistence, linear prediction and the mean."""
    scale, look_back = float(model.scale), model_config["look_back"]
    heldout = dataset.heldout_clips()
    test_rows = windows(heldout, look_back, 20_000, scale, seed=2)
    train_rows = windows(dataset.clips("train"), look_back, 100_000, scale, seed=3)
    model_mse = float(np.mean((predict(model, test_rows) - test_rows[:, -1]) ** 2))
    scores = {"one_step_mse": model_mse, **baseline_mses(train_rows, test_rows)}
    scores["improvement_over_persistence"] = 1 - model_mse / scores["persistence_mse"]
    return scores


SPEC = register(ModelSpec("sample-lstm", "the seed's LSTM on raw samples: next sample from the previous look_back",
                          default_config, build, training_arrays, loss, generate,
                          prime_seconds=0.25, prepare=prepare, heldout_scores=heldout_scores, family="sequence"))
