"""The multi-resolution STFT loss, one implementation for training (a vocoder's loss) and evaluation (a distance).

Notebook: 09_melgan_vocoder.ipynb
"""
from __future__ import annotations

import torch

from musiclib import distributed


def _batch_norm(x: torch.Tensor) -> torch.Tensor:
    """The Frobenius norm of ``x`` over the whole batch, not a mean over examples: in a distributed training step,
    over the global batch (:func:`musiclib.distributed.global_sum`)."""
    if distributed.in_training_step():
        return distributed.global_sum(x.pow(2).sum()).sqrt()
    return torch.linalg.norm(x)


def multi_resolution_stft_loss(real: torch.Tensor, fake: torch.Tensor, resolutions) -> torch.Tensor:
    """Mean over STFT resolutions of spectral convergence + mean ``|log |S| - log |Ŝ||``.

    The auxiliary loss of Parallel WaveGAN (Yamamoto et al., 2020):
    ``||S - Ŝ||_F / ||S||_F + mean |log(|S| + 1e-5) - log(|Ŝ| + 1e-5)|``, with Hann windows and
    centred frames padded with zeros, as :func:`musiclib.dsp.stft`.

    Args:
        real, fake: ``(B, T)`` audio.
        resolutions: ``(n_fft, hop_length, win_length)`` triplets.

    Returns:
        A scalar tensor (differentiable in ``fake``).
    """
    total = real.new_zeros(())
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=real.device)
        a = torch.stft(real, n_fft, hop, win, window, pad_mode="constant", return_complex=True).abs()
        b = torch.stft(fake, n_fft, hop, win, window, pad_mode="constant", return_complex=True).abs()
        convergence = _batch_norm(a - b) / (_batch_norm(a) + 1e-7)
        total = total + convergence + (torch.log(a + 1e-5) - torch.log(b + 1e-5)).abs().mean()
    return total / len(resolutions)
