"""A frame-rate autoencoder: log-mel ↔ a sequence of continuous latent vectors, one per 4 frames (21.5 per second).

The VAE of notebook 10 squeezes each 0.74-s image into 16 numbers and glues decoded images side by
side; its round trip keeps little of the notes. Latent-diffusion music models (Stable Audio, AudioLDM)
instead compress audio into a *sequence*: tens of latent vectors per second with enough channels to
keep what is heard, decoded in one pass over the whole sequence (no seams). This is that autoencoder
at toy scale, on log-mel:

- the encoder is the pitch-resolving tokenizer's 2-D convolutions (:func:`musiclib.models.vq.time_frequency_codec`):
  one vector of ``channels`` numbers per 4 frames and ``bands_per_group`` mel bands, the same weights for every
  register; the vectors of one step, side by side, are one latent frame of ``D = channels × n_mels / bands_per_group``
  numbers (128 by default: 21.5 frames of 128 numbers per second; Stable Audio's autoencoder keeps 64 per frame of 44.1-kHz stereo);
- no quantiser: the encoder gives each number a mean ``μ`` and a log-variance, the decoder reads
  ``z = μ + σ ε`` while training and ``μ`` afterwards, and a small KL term ``β KL(q(z|x) || N(0, I))``
  keeps the latents near the origin and smooth for the model that learns them (Stable Audio's weight
  is 1e-4 as well);
- the reconstruction term is L1 on the log-mel plus the *gradient difference loss* (Mathieu et al. 2016): L1
  between the differences of neighbouring frames and of neighbouring bands, in the reconstruction and in the
  music, ``|Δ_t x̂ - Δ_t x| + |Δ_f x̂ - Δ_f x|``. A regression that is unsure where an onset or a harmonic
  lies smooths it out, which plain L1 barely charges for; the difference term charges for every edge
  smoothed away, so onsets stay sharp and harmonics stay peaks.

Alone (``musiclib train codec``) it draws each latent frame from a Gaussian fitted to the training
latents (their mean and covariance across a frame's ``D`` numbers), frames independent of each
other: latents without a model of their order, the floor the flow of :mod:`musiclib.models.flow` must beat.

Notebook: 13_flow_matching.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import model_clips, windows
from musiclib.models import base, register, vq
from musiclib.models.layers import eval_mode
from musiclib.models.log_mel_steps import FRAMES_PER_STEP, WINDOW_FRAMES, LogMelSteps


@dataclasses.dataclass(frozen=True)
class CodecSettings(base.Settings):
    """``channels`` latent numbers per ``bands_per_group`` mel bands (8 or 16) and 4 frames; encoder and decoder
    ``width`` channels wide; ``kl_weight`` is ``β`` of the KL term, ``sharpness_weight`` that of the gradient
    difference term."""

    bands_per_group: int = 8
    channels: int = 8
    width: int = 32
    kl_weight: float = 1e-4
    sharpness_weight: float = 1.0
    learning_rate: float = 2e-3
    steps: int = 800

    @classmethod
    def full(cls):
        return cls(width=64, steps=6000)

    def check(self) -> None:
        if self.bands_per_group not in vq.BAND_GROUPS:
            raise ValueError(f"setting bands_per_group must be one of {', '.join(map(str, vq.BAND_GROUPS))}, got {self.bands_per_group!r}")
        if self.channels < 1 or self.width < 2:
            raise ValueError("settings channels must be at least 1 and width at least 2")
        for key in ("kl_weight", "sharpness_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"setting {key} must be at least 0, got {getattr(self, key)}")


@register
class Codec(LogMelSteps, base.Model):
    """``(B, n_mels, T)`` normalised log-mel (``T`` a multiple of 4) ↔ ``(B, T / 4, D)`` latent frames.

    Buffers: ``low``/``high`` hold the global normaliser; ``frame_mean``/``frame_scale`` the Gaussian fitted to
    the training latent frames after training (mean and Cholesky factor of their covariance).
    """

    name, family, output = "codec", "latent", "log-mel"
    description = "frame-rate autoencoder: 21.5 latent frames of 128 numbers per second; alone it draws frames in no order"
    Settings = CodecSettings

    def __init__(self, settings: CodecSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        s = settings
        if audio.n_mels % s.bands_per_group:
            raise ValueError(f"the codec needs n_mels a multiple of bands_per_group {s.bands_per_group}, got {audio.n_mels}")
        self.encoder, _ = vq.time_frequency_codec(s.width, 2 * s.channels, s.bands_per_group)  # a mean and a log-variance each
        _, self.decoder = vq.time_frequency_codec(s.width, s.channels, s.bands_per_group)
        self.bands = audio.n_mels // s.bands_per_group
        self.latent_size = self.bands * s.channels
        self.register_normalizer()
        self.register_buffer("frame_mean", torch.zeros(self.latent_size))
        self.register_buffer("frame_scale", torch.eye(self.latent_size))

    @property
    def frames_per_second(self) -> float:
        return self.audio.sample_rate / (self.audio.hop_length * FRAMES_PER_STEP)

    def _frames(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, c, F, T)`` → ``(B, T, F c)``: the band groups' vectors of one step side by side."""
        return latent.permute(0, 3, 2, 1).flatten(2)

    def _latent(self, frames: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`_frames`."""
        return frames.unflatten(2, (self.bands, self.settings.channels)).permute(0, 3, 2, 1)

    def loss(self, batch: torch.Tensor, phase: str = ""):
        """L1 reconstruction of random 64-frame windows + the gradient difference term (:func:`sharpness_loss`) + ``β`` ×
        the KL divergence per latent number."""
        x = windows(batch, WINDOW_FRAMES, random=self.training)
        mean, log_variance = self.encoder(x).chunk(2, dim=1)
        log_variance = log_variance.clamp(-12.0, 6.0)
        z = mean + torch.randn_like(mean) * (0.5 * log_variance).exp() if self.training else mean
        reconstruction = self.decoder(z)
        l1 = (reconstruction - x).abs().mean()
        sharpness = sharpness_loss(reconstruction, x)
        kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).mean()
        s = self.settings
        return l1 + s.sharpness_weight * sharpness + s.kl_weight * kl, {"l1": l1.item(), "sharpness": sharpness.item(), "kl": kl.item()}

    @torch.no_grad()
    def finish(self, dataset) -> None:
        """Fit the Gaussian of one latent frame (mean, covariance across its ``D`` numbers) to the training pieces."""
        frames = np.concatenate(piece_latents(self, dataset, "train")).astype(np.float64)
        covariance = np.cov(frames, rowvar=False) + 1e-6 * np.eye(self.latent_size)
        self.frame_mean.copy_(torch.as_tensor(frames.mean(0), dtype=torch.float32))
        self.frame_scale.copy_(torch.as_tensor(np.linalg.cholesky(covariance), dtype=torch.float32))

    def sample(self, n: int, seconds: float, seed: int) -> base.LogMel:
        """Latent frames drawn independently from the fitted Gaussian, decoded: the floor a prior over frames must beat."""
        return self.latents_to_log_mel(self.gaussian_frames(n, self.steps_for(seconds), seed))

    def gaussian_frames(self, n: int, length: int, seed: int) -> np.ndarray:
        """``(n, length, D)`` frames from the fitted Gaussian, each independent of the others."""
        rng = np.random.default_rng(seed)
        scale, mean = self.frame_scale.cpu().numpy(), self.frame_mean.cpu().numpy()
        return (rng.standard_normal((n, length, self.latent_size)) @ scale.T + mean).astype(np.float32)

    def heldout_scores(self, dataset) -> dict:
        """Held-out reconstruction L1 (natural-log mel) and the latent's size."""
        train = model_clips(dataset, "train", WINDOW_FRAMES)
        held = vq.heldout_images(dataset, train.normalizer)
        frames = held.shape[-1] // FRAMES_PER_STEP * FRAMES_PER_STEP
        denormalize = train.normalizer.denormalize
        reconstructed = self.decode(self.encode(held))
        return {"reconstruction_l1": float(np.mean(np.abs(denormalize(reconstructed) - denormalize(held[..., :frames])))),
                "numbers_per_second": self.latent_size * self.frames_per_second, "n_heldout": len(held)}

    # Latents in and out

    def encode(self, log_mel_images) -> np.ndarray:
        """Normalised log-mel ``(n, n_mels, T)`` → ``(n, T // 4, D)`` mean latents (frames past a multiple of 4 are dropped)."""
        with eval_mode(self):
            x = torch.as_tensor(np.array(log_mel_images, np.float32), device=self.low.device)  # a copy: cached maps are read-only
            x = x[..., : x.shape[-1] // FRAMES_PER_STEP * FRAMES_PER_STEP]
            return self._frames(self.encoder(x).chunk(2, dim=1)[0]).cpu().numpy()

    def decode(self, latents) -> np.ndarray:
        """``(n, L, D)`` latents → ``(n, n_mels, 4 L)`` normalised log-mel, the whole sequence in one pass."""
        with eval_mode(self):
            frames = torch.as_tensor(np.asarray(latents, np.float32), device=self.low.device)
            return self.decoder(self._latent(frames)).cpu().numpy()

    def audio_to_latents(self, clips: np.ndarray, frame_offset: int = 0) -> np.ndarray:
        """``(n, samples)`` audio → ``(n, L, D)`` latents of its log-mel (from frame ``frame_offset`` on)."""
        return self.encode(self.normalized_log_mel(clips, frame_offset))

    def latents_to_log_mel(self, latents: np.ndarray, start: int = 0) -> base.LogMel:
        """``(n, L, D)`` latents → their decoded natural-log mel (the first ``start`` samples of its audio to be dropped)."""
        return self.decoded_log_mel(latents, start)

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """Each clip's log-mel (padded to whole steps by repeating its last frame) to latents and back."""
        return self.latents_to_log_mel(self.encode(self.whole_steps_log_mel(clips)))


def sharpness_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient difference loss over ``(B, n_mels, T)``: mean L1 between neighbouring-frame differences plus mean
    L1 between neighbouring-band differences of the two spectrograms."""
    over_time = (reconstruction.diff(dim=-1) - target.diff(dim=-1)).abs().mean()
    over_bands = (reconstruction.diff(dim=-2) - target.diff(dim=-2)).abs().mean()
    return over_time + over_bands


def piece_latents(codec: Codec, dataset, split: str, frame_offsets=(0,)) -> list[np.ndarray]:
    """Latents of every piece of a split (:func:`musiclib.models.vq.pieces`), one ``(L, D)`` array each, once per
    frame offset (the grid of 4-frame groups may start at any frame)."""
    return [codec.audio_to_latents(y[None], offset)[0] for y in vq.pieces(dataset, split) for offset in frame_offsets]
