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

import numpy as np
import torch

from musiclib import baselines, cache
from musiclib.config import AudioConfig
from musiclib.datasets import gruv
from musiclib.models import ModelSpec, register
from musiclib.models.layers import copy_dense, copy_lstm, eval_mode, keras_lstm, lstm_step, track_residual_rms

class GruvLSTM(torch.nn.Module):
    """Dense → LSTM → Dense over a sequence of normalised FFT blocks.

    Args:
        feature_size: Numbers per block ``d`` (``2 * block_size`` in the seed form,
            ``block_size + 2`` in the rfft form).
        hidden_size: Width of the Dense layer and the LSTM.

    Buffers (saved with the weights):
        feature_mean, feature_std: ``(d,)`` training statistics, to turn predictions back into FFTs.
        residual_std: ``(d,)`` running RMS of the one-step training error: the spread of
            the Gaussian that MSE assumes, which free-running generation samples from.
    """

    def __init__(self, feature_size: int, hidden_size: int):
        super().__init__()
        self.encode = torch.nn.Linear(feature_size, hidden_size)
        self.lstm = keras_lstm(hidden_size, hidden_size)
        self.decode = torch.nn.Linear(hidden_size, feature_size)
        self.register_buffer("feature_mean", torch.zeros(feature_size))
        self.register_buffer("feature_std", torch.ones(feature_size))
        self.register_buffer("residual_std", torch.ones(feature_size))

    def forward(self, x: torch.Tensor, state=None):
        """``x``: ``(batch, blocks, d)`` → ``(prediction of the next block at every position, LSTM state)``."""
        hidden, state = self.lstm(self.encode(x), state)
        return self.decode(hidden), state

    def step(self, block: torch.Tensor, state):
        """One block ``(batch, d)`` with the state carried from before → ``(prediction (batch, d), state)``."""
        hidden, state = lstm_step(self.lstm, self.encode(block), state)
        return self.decode(hidden), state


def build_keras(feature_size: int, hidden_size: int):
    """The same model in Keras 3, as the seed wrote it (TimeDistributed Dense → LSTM → TimeDistributed Dense)."""
    import keras

    return keras.Sequential([
        keras.Input((None, feature_size)),
        keras.layers.TimeDistributed(keras.layers.Dense(hidden_size)),
        keras.layers.LSTM(hidden_size, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(feature_size)),
    ], name="gruv_lstm")


def load_keras_weights(model: GruvLSTM, keras_model) -> GruvLSTM:
    """Copy a :func:`build_keras` model's weights into ``model`` (same outputs afterwards)."""
    encode, lstm, decode = keras_model.layers
    copy_dense(encode.layer, model.encode)
    copy_lstm(lstm, model.lstm)
    copy_dense(decode.layer, model.decode)
    return model


def _noise(model: GruvLSTM, prediction: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return prediction
    eps = torch.randn(prediction.shape, generator=generator).to(prediction.device)
    return prediction + temperature * model.residual_std * eps


@torch.no_grad()
def free_run(model: GruvLSTM, prime: torch.Tensor, n_blocks: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Generate ``n_blocks`` new blocks after ``prime``, carrying the LSTM state: O(n_blocks).

    Args:
        model: A trained :class:`GruvLSTM`.
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
def refeed_run(model: GruvLSTM, prime: torch.Tensor, n_blocks: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """The seed's generation: re-run the whole growing sequence for every new block, O(n_blocks²). Same output as :func:`free_run`."""
    generator = torch.Generator().manual_seed(seed)
    sequence = prime
    for _ in range(n_blocks):
        prediction, _ = model(sequence)
        sequence = torch.cat([sequence, _noise(model, prediction[:, -1], temperature, generator)[:, None]], dim=1)
    return sequence[:, prime.shape[1]:]


def seed_config(fast: bool) -> dict:
    return {"block_size": 2048, "hop": 2048, "form": "seed", "hidden_size": 1024, "optimizer": "rmsprop",
            "learning_rate": 1e-4, "batch_size": 16, "steps": 20 if fast else 2000, "temperature": 1.0}


def default_config(fast: bool) -> dict:
    return {"block_size": 2048, "hop": 1024, "form": "rfft", "hidden_size": 256, "optimizer": "rmsprop",
            "learning_rate": 1e-3, "batch_size": 16, "steps": 300 if fast else 3000, "temperature": 1.0}


def build(model_config: dict, audio_config: AudioConfig) -> GruvLSTM:
    """The model, remembering ``model_config`` (block size, hop, form, temperature) for generation."""
    model = GruvLSTM(gruv.feature_size(model_config["block_size"], model_config["form"]), model_config["hidden_size"])
    model.model_config = dict(model_config)
    return model


def blocks(dataset, model_config: dict, split: str) -> gruv.GruvBlocks:
    """The dataset's GRUV tensors for ``split`` in this configuration, built once into the feature cache (:mod:`musiclib.cache`)."""
    b, h, form = model_config["block_size"], model_config["hop"], model_config["form"]
    stats = None
    if split != "train":
        train = blocks(dataset, model_config, "train")
        stats = (train.mean, train.std)

    def build(folder):
        gruv.GruvBlocks.build(dataset, split, folder, block_size=b, form=form, hop=h, stats=stats)

    return gruv.GruvBlocks(cache.derived_dir(dataset, f"gruv_b{b}_h{h}_{form}_{split}", build))


def training_arrays(dataset, model_config: dict):
    train, val = blocks(dataset, model_config, "train"), blocks(dataset, model_config, "val")
    return (train.x, train.y), (val.x, val.y)


@torch.no_grad()
def prepare(model: GruvLSTM, dataset, model_config: dict) -> None:
    train = blocks(dataset, model_config, "train")
    model.feature_mean.copy_(torch.as_tensor(train.mean, dtype=torch.float32))
    model.feature_std.copy_(torch.as_tensor(train.std, dtype=torch.float32))


def loss(model: GruvLSTM, batch) -> torch.Tensor:
    """MSE of the next-block prediction; while training it also tracks the residual RMS per feature."""
    x, y = batch
    prediction, _ = model(x)
    error = prediction - y
    if model.training:
        track_residual_rms(model.residual_std, error.detach(), dims=(0, 1))
    return error.pow(2).mean()


def audio_to_features(model: GruvLSTM, audio: np.ndarray, model_config: dict) -> torch.Tensor:
    """``(batch, samples)`` audio → ``(batch, blocks, d)`` features normalised with the model's statistics."""
    b, h, form = model_config["block_size"], model_config["hop"], model_config["form"]
    feats = gruv.blocks_to_features(gruv.to_blocks(np.asarray(audio, dtype=np.float32), b, h), form).astype(np.float32)
    device = model.feature_mean.device
    return (torch.from_numpy(feats).to(device) - model.feature_mean) / model.feature_std


def features_to_audio(model: GruvLSTM, features: torch.Tensor, model_config: dict) -> np.ndarray:
    """``(batch, blocks, d)`` normalised features → ``(batch, samples)`` audio (inverse FFT, then concatenation or overlap-add)."""
    b, h, form = model_config["block_size"], model_config["hop"], model_config["form"]
    feats = (features * model.feature_std + model.feature_mean).cpu().numpy()
    return np.stack([gruv.blocks_to_audio(gruv.features_to_blocks(f, b, form), h) for f in feats])


def continue_audio(model: GruvLSTM, prime: np.ndarray, seconds: float, model_config: dict, sample_rate: int,
                   temperature: float | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """Prime with ``(batch, samples)`` held-out audio and run free for ``seconds``.

    The model reads the prime's last whole blocks, laid so that the last one ends where the
    prime ends; the generated audio therefore continues at the prime's last sample, with no
    replay of the part of the prime that does not fill a block.

    Returns:
        ``(audio, n_prime)``: ``(batch, samples)`` audio, the prime unchanged (its ``n_prime``
        samples) followed by ``seconds`` of generated audio.
    """
    b, h = model_config["block_size"], model_config["hop"]
    temperature = model_config["temperature"] if temperature is None else temperature
    prime = np.asarray(prime, dtype=np.float32)
    n_prime = prime.shape[-1]
    # Overlapping blocks need one hop more: to_blocks pads a half-empty last block, which is dropped,
    # because a zero-padded block would teach the model a fade-out.
    whole = n_prime // h if h == b else n_prime // h - 1
    if whole < 1:
        raise ValueError(f"the prime ({n_prime} samples) is shorter than one block ({b} samples); give a longer prime.")
    start = n_prime - whole * h
    prime_feats = audio_to_features(model, prime[..., start:], model_config)
    if h != b:
        prime_feats = prime_feats[:, :-1]
    n_new = int(np.ceil(seconds * sample_rate / h)) + 1
    with eval_mode(model):
        generated = free_run(model, prime_feats, n_new, temperature, seed)
    y = features_to_audio(model, torch.cat([prime_feats, generated], dim=1), model_config)
    # y[:, i] is the sample at start + i, so the prime's end is y[:, whole * h].
    new = y[:, whole * h : whole * h + int(round(seconds * sample_rate))]
    return np.concatenate([prime, new], axis=-1), n_prime


def generate(model: GruvLSTM, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None) -> np.ndarray:
    if prime is None:
        raise ValueError("the GRUV LSTM continues audio: pass a prime (held-out audio), as `musiclib generate` does.")
    y, n_prime = continue_audio(model, prime[:n], seconds, model.model_config, audio_config.sample_rate, seed=seed)
    return y[:, n_prime:]


def one_step_mse(model: GruvLSTM, x, y, batch_size: int = 64) -> float:
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


def heldout_scores(model: GruvLSTM, dataset, model_config: dict) -> dict:
    """One-step MSE on held-out blocks (normalised units): the model, persistence (repeat the last block) and the mean (predict 0)."""
    heldout = [blocks(dataset, model_config, split) for split in ("val", "test")]
    x = np.concatenate([np.asarray(part.x) for part in heldout])
    y = np.concatenate([np.asarray(part.y) for part in heldout])
    model_mse = one_step_mse(model, x, y)
    # y is x one block later, so the whole sequence is x followed by the last target.
    persistence = baselines.one_step_persistence_mse(np.concatenate([x, y[:, -1:]], axis=1))
    mean = float(np.mean(np.asarray(y, np.float64) ** 2))
    return {"one_step_mse": model_mse, "persistence_mse": persistence, "mean_predictor_mse": mean,
            "improvement_over_persistence": 1 - model_mse / persistence}


def _spec(name: str, description: str, config, gallery: str = "") -> ModelSpec:
    return register(ModelSpec(name, description, config, build, training_arrays, loss, generate,
                              prime_seconds=1.0, prepare=prepare, heldout_scores=heldout_scores, family="sequence", gallery=gallery))


SEED_SPEC = _spec("gruv-seed", "the seed's GRUV LSTM on rectangular FFT blocks (16.8 M parameters)", seed_config)
SPEC = _spec("gruv", "GRUV LSTM on windowed, half-overlapping rfft blocks (small, trains on a CPU)", default_config,
             gallery="A second of a held-out chorale, then the LSTM running free on FFT blocks. Listen for how soon the "
                     "music dissolves into coloured noise after the prime, and for the absence of clicks at block edges.")
