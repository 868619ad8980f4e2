"""Layers that match their Keras counterparts one to one, and weight copying from Keras.

PyTorch's ``nn.LSTM`` carries two bias vectors per gate (``b_ih`` and ``b_hh``);
only their sum matters, and Keras keeps one. :func:`keras_lstm` drops the
second, so a PyTorch model has exactly the parameter count of the Keras model
it mirrors, and Keras weights can be copied in to give the same outputs.

Notebook: 06_lstm_fft_blocks.ipynb
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from musiclib import distributed


def keras_lstm(input_size: int, hidden_size: int) -> torch.nn.LSTM:
    """A batch-first ``nn.LSTM`` with one bias per gate, like ``keras.layers.LSTM``.

    Parameters: ``4 * (input_size * hidden_size + hidden_size**2 + hidden_size)``.
    Gate order (input, forget, cell, output) is the same in both frameworks.
    """
    lstm = torch.nn.LSTM(input_size, hidden_size, batch_first=True)
    del lstm.bias_hh_l0
    lstm.register_buffer("bias_hh_l0", torch.zeros(4 * hidden_size))
    lstm._init_flat_weights()
    return lstm


def lstm_step(lstm: torch.nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
    """One time step of a one-layer ``lstm``, written out.

    Equal to ``lstm(x[:, None], state)``, but on a CPU ``nn.LSTM`` re-packs its weights
    for oneDNN on every call, which costs more than the step itself when a generation
    loop calls it once per block.

    Args:
        x: ``(batch, input_size)``.
        state: ``(h, c)``, each ``(1, batch, hidden_size)`` as ``nn.LSTM`` returns them.

    Returns:
        ``(h_new, (h, c))``: ``(batch, hidden_size)`` output and the new state.
    """
    h, c = state
    gates = (torch.nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0)
             + torch.nn.functional.linear(h[0], lstm.weight_hh_l0, lstm.bias_hh_l0))
    input_gate, forget_gate, cell_input, output_gate = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(forget_gate) * c[0] + torch.sigmoid(input_gate) * torch.tanh(cell_input)
    h_new = torch.sigmoid(output_gate) * torch.tanh(c_new)
    return h_new, (h_new[None], c_new[None])


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Run the block with ``model.eval()`` and no gradients, then restore the training flag it had."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


RESIDUAL_MOMENTUM = 0.99


@torch.no_grad()
def track_residual_rms(residual_std: torch.Tensor, error: torch.Tensor, dims) -> None:
    """Update a running RMS of a one-step prediction error in place (exponential average, momentum 0.99).

    It is the spread of the Gaussian that an MSE-trained predictor assumes, which free-running
    generation samples from. ``dims``: the axes averaged over (the rest keep one RMS each). With several
    processes the mean square is the global batch's (:func:`musiclib.distributed.batch_mean`).
    """
    mean_square = distributed.batch_mean(error.pow(2).mean(dim=dims))
    residual_std.mul_(RESIDUAL_MOMENTUM).add_((1 - RESIDUAL_MOMENTUM) * mean_square.sqrt())


def count_parameters(model) -> int:
    """Trainable parameters of a torch module or a Keras model."""
    if isinstance(model, torch.nn.Module):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(model.count_params())


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


@torch.no_grad()
def copy_dense(keras_dense, linear: torch.nn.Linear) -> None:
    """``keras.layers.Dense`` (kernel ``(in, out)``) → ``nn.Linear`` (weight ``(out, in)``)."""
    kernel, bias = keras_dense.get_weights()
    linear.weight.copy_(_tensor(kernel.T))
    linear.bias.copy_(_tensor(bias))


@torch.no_grad()
def copy_lstm(keras_lstm_layer, lstm: torch.nn.LSTM) -> None:
    """``keras.layers.LSTM`` → a :func:`keras_lstm` (kernel, recurrent kernel, one bias)."""
    kernel, recurrent, bias = keras_lstm_layer.get_weights()
    lstm.weight_ih_l0.copy_(_tensor(kernel.T))
    lstm.weight_hh_l0.copy_(_tensor(recurrent.T))
    lstm.bias_ih_l0.copy_(_tensor(bias))
    lstm.bias_hh_l0.zero_()
