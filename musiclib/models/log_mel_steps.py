"""What the models that code log-mel in steps of 4 frames share: the VQ tokenizer and the frame-rate codec.

Both keep the training set's global normaliser in two buffers (``low``, ``high``), so that a checkpoint turns what
it decodes back into natural-log mel without the data; both train on whole normalised clips (their losses cut
random 64-frame windows); both map audio to one step per 4 frames (46 ms at 22,050 Hz and hop 256) and back.

Notebook: 12_audio_tokens.ipynb
"""
from __future__ import annotations

import numpy as np
import torch

from musiclib import features
from musiclib.datasets.spectrogram import Normalizer, model_clips
from musiclib.models import base

FRAMES_PER_STEP = 4
WINDOW_FRAMES = 64


class LogMelSteps:
    """A mixin for a :class:`~musiclib.models.base.Model` whose ``encode`` maps normalised log-mel ``(n, n_mels, T)``
    to ``(n, T / 4, …)`` steps and whose ``decode`` maps them back; its ``__init__`` calls :meth:`register_normalizer`."""

    def register_normalizer(self) -> None:
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))

    @torch.no_grad()
    def fit(self, dataset) -> None:
        """The training clips' global normaliser, into the buffers."""
        normalizer = model_clips(dataset, "train", WINDOW_FRAMES).normalizer
        self.low.fill_(normalizer.low)
        self.high.fill_(normalizer.high)

    def features(self, dataset, split: str) -> np.ndarray:
        """Whole normalised log-mel clips (the loss cuts random 64-frame windows of the training ones)."""
        train = model_clips(dataset, "train", WINDOW_FRAMES)
        return train.data if split == "train" else model_clips(dataset, split, WINDOW_FRAMES, train.normalizer).data

    def normalizer(self) -> Normalizer:
        return Normalizer(float(self.low), float(self.high))

    def normalized_log_mel(self, clips: np.ndarray, frame_offset: int = 0) -> np.ndarray:
        """``(n, samples)`` audio → ``(n, n_mels, T)`` normalised log-mel, from frame ``frame_offset`` on."""
        normalize = self.normalizer().normalize
        return np.stack([normalize(features.log_mel(np.asarray(y), self.audio))[:, frame_offset:] for y in clips])

    def whole_steps_log_mel(self, clips: np.ndarray) -> np.ndarray:
        """:meth:`normalized_log_mel`, padded to whole steps by repeating the last frame (what a round trip encodes)."""
        normalized = self.normalized_log_mel(clips)
        padding = -normalized.shape[-1] % FRAMES_PER_STEP
        return np.pad(normalized, ((0, 0), (0, 0), (0, padding)), mode="edge")

    def decoded_log_mel(self, steps: np.ndarray, start: int = 0) -> base.LogMel:
        """Steps decoded into natural-log mel (the first ``start`` samples of its audio to be dropped)."""
        return base.LogMel(self.normalizer().denormalize(self.decode(steps)), self.audio, start)

    def steps_in(self, n_samples: int) -> int:
        """Steps that ``n_samples`` of audio give (whole groups of 4 frames)."""
        return (n_samples // self.audio.hop_length + 1) // FRAMES_PER_STEP

    def steps_for(self, seconds: float) -> int:
        """Steps whose frames cover ``seconds`` of audio."""
        n_samples = int(round(seconds * self.audio.sample_rate))
        return -(-(n_samples // self.audio.hop_length + 1) // FRAMES_PER_STEP)
