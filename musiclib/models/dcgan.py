"""The spectrogram DCGAN of seeds 000/001, as the seed built it and fixed.

``dcgan-seed`` is an exact replica: 20-d noise ``(B, 20, 1, 1)`` → five
``ConvTranspose2d`` with SELU after every layer (the last too, so the output is
unbounded) → a ``(B, 1, 64, 16)`` mel-power image; a discriminator of five
``Conv2d`` + SELU → FC 64 → sigmoid; BCE; Adam 2e-4, betas (0.5, 0.999); DCGAN
N(0, 0.02) initialisation. 253,913 and 73,485 parameters. Its data, like the seed's:
mel *power* with no log and no normalisation (n_fft 1024, hop 512, 64 mels), 16 frames.

``dcgan`` is the fix: the shared log-mel (128 mels, hop 256) scaled to [-1, 1] by one
global normaliser, one-second images (87 frames: one image is one evaluated clip), a
tanh output, spectral normalisation in the discriminator and the hinge loss, so that
the discriminator cannot saturate and the generator keeps a gradient; the discriminator's
first layer keeps every mel band, so that it sees the low partials' fine lines.

Notebook: 08_spectrogram_gan.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from musiclib import dsp, features, metrics
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer, model_clips, windows
from musiclib.models import base, register
from musiclib.models.layers import eval_mode

SEED_IMAGE = (64, 16)
IMAGE_SECONDS = 1.0


def seed_audio_config(sample_rate: int) -> AudioConfig:
    """The seed's spectrogram settings (n_fft 1024, hop 512, 64 mels) at ``sample_rate``."""
    return AudioConfig(sample_rate=sample_rate, n_fft=1024, hop_length=512, n_mels=64)


class SeedGenerator(nn.Module):
    """``(B, 20, 1, 1)`` noise → ``(B, 1, 64, 16)``; kernel (3, 2) everywhere, SELU after every layer."""

    def __init__(self, noise_size: int = 20):
        super().__init__()
        # (height, width) after each layer: (3, 2) → (7, 4) → (15, 8) → (31, 9) → (64, 16)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(noise_size, 256, (3, 2)), nn.SELU(),
            nn.ConvTranspose2d(256, 128, (3, 2), stride=2), nn.SELU(),
            nn.ConvTranspose2d(128, 32, (3, 2), stride=2), nn.SELU(),
            nn.ConvTranspose2d(32, 8, (3, 2), stride=(2, 1)), nn.SELU(),
            nn.ConvTranspose2d(8, 1, (3, 2), stride=2, padding=(0, 1), output_padding=(1, 0)), nn.SELU(),
        )
        self.noise_size = noise_size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn((n, self.noise_size, 1, 1), generator=generator)


class SeedDiscriminator(nn.Module):
    """``(B, 1, 64, 16)`` → ``(B, 1)`` probability of "real"; five Conv2d + SELU to ``(128, 2, 2)``, FC 64, sigmoid."""

    def __init__(self):
        super().__init__()
        # (height, width): (32, 8) → (16, 4) → (8, 4) → (4, 4) → (2, 2)
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, (3, 2), stride=2, padding=(1, 0)), nn.SELU(),
            nn.Conv2d(4, 16, (3, 2), stride=2, padding=(1, 0)), nn.SELU(),
            nn.Conv2d(16, 32, (2, 1), stride=(2, 1)), nn.SELU(),
            nn.Conv2d(32, 64, (3, 1), stride=(2, 1), padding=(1, 0)), nn.SELU(),
            nn.Conv2d(64, 128, (2, 2), stride=2), nn.SELU(),
            nn.Flatten(), nn.Linear(128 * 2 * 2, 64), nn.SELU(), nn.Linear(64, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2))


class FixedGenerator(nn.Module):
    """``(B, noise_size)`` → ``(B, 1, n_mels, frames)`` in [-1, 1]: a linear layer to ``(C, n_mels/16, ⌈frames/16⌉)``,
    four ×2 upsampling blocks, tanh, then the first ``frames`` frames."""

    def __init__(self, n_mels: int = 80, noise_size: int = 64, width: int = 32, frames: int = 87):
        super().__init__()
        if n_mels % 16:
            raise ValueError(f"n_mels must be a multiple of 16 for four x2 upsamplings, got {n_mels}")
        self.start = (8 * width, n_mels // 16, -(-frames // 16))
        self.project = nn.Linear(noise_size, int(np.prod(self.start)))
        self.net = nn.Sequential(_up(8 * width, 4 * width), _up(4 * width, 2 * width), _up(2 * width, width), _up(width, width),
                                 nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())
        self.noise_size, self.frames = noise_size, frames

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, *self.start))[..., : self.frames]

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn((n, self.noise_size), generator=generator)


class FixedDiscriminator(nn.Module):
    """``(B, 1, n_mels, frames)`` → ``(B, 1)`` unbounded score; spectrally normalised convolutions (a 1-Lipschitz critic, roughly).

    The first layer halves only the frames and keeps every mel band, so the critic sees each band
    at full resolution: the chorales' low partials are single lines a few bands wide, and a critic
    that halves the bands at once passes wavy, blurred lines that inversion then smears alike
    (mean NDB/K at 600 steps over seeds 0-3: 0.50 against 0.59; README).
    """

    def __init__(self, n_mels: int = 80, width: int = 32, frames: int = 87):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers, channels = [sn(nn.Conv2d(1, width, (3, 4), stride=(1, 2), padding=1)), nn.LeakyReLU(0.2)], width
        for out in (2 * width, 4 * width, 8 * width):
            layers += [sn(nn.Conv2d(channels, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = out
        # each layer halves (rounding down) what it halves: the bands three times, the frames four times
        self.net = nn.Sequential(*layers, nn.Flatten(), sn(nn.Linear(channels * (n_mels // 8) * (frames // 16), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): convolution weights ~ N(0, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)


@dataclasses.dataclass(frozen=True)
class GANSettings(base.Settings):
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


class GAN(base.Model):
    """A generator and a discriminator trained in turns, one optimiser each (the Trainer runs ``phases`` in order).

    ``objective`` is ``"bce"`` (the discriminator outputs a probability) or ``"hinge"`` (an unbounded score).
    Its images are ``frames`` frames of the features ``image_audio``. Buffers ``low``/``high`` hold the global
    normaliser of the images (the replica's are unused).
    """

    family = "gan"
    output = "log-mel"
    phases = ("discriminator", "generator")
    objective = "hinge"

    def __init__(self, settings: GANSettings, audio: AudioConfig, generator: nn.Module, discriminator: nn.Module,
                 frames: int, image_audio: AudioConfig):
        super().__init__(settings, audio)
        self.generator, self.discriminator = generator, discriminator
        self.frames, self.image_audio = frames, image_audio
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))

    @property
    def log_mel_audio(self) -> AudioConfig:
        return self.image_audio

    def phase_parameters(self, phase: str):
        return (self.discriminator if phase == "discriminator" else self.generator).parameters()

    def loss(self, batch: torch.Tensor, phase: str):
        """One phase's loss, plus the seed's diagnostics: D(x) and D(G(z)) (probabilities for BCE, raw scores for hinge).

        Clips in ``batch`` longer than an image are cut to one random window each (:func:`~musiclib.datasets.spectrogram.windows`).
        Each phase draws its own noise: scoring the discriminator's images again in the generator's phase (the
        PyTorch DCGAN recipe) saves a forward pass but scored worse here (NDB/K 0.7 and 0.8 against 0.5 and 0.4).
        """
        real = windows(batch, self.frames, random=True)[:, None]
        z = self.generator.noise(len(real)).to(real.device)
        if phase == "discriminator":
            with torch.no_grad():
                fake = self.generator(z)
            d_real, d_fake = self.discriminator(real), self.discriminator(fake)
            if self.objective == "bce":
                loss_d = (nn.functional.binary_cross_entropy(d_real, torch.ones_like(d_real))
                          + nn.functional.binary_cross_entropy(d_fake, torch.zeros_like(d_fake)))
            else:
                loss_d = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
            return loss_d, {"D(x)": float(d_real.detach().mean()), "D(G(z))": float(d_fake.detach().mean())}
        d_fake = self.discriminator(self.generator(z))
        if self.objective == "bce":
            return nn.functional.binary_cross_entropy(d_fake, torch.ones_like(d_fake)), {}
        return -d_fake.mean(), {}

    def images(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images, ``(n, 1, H, W)``, from noise seeded by ``seed``."""
        z = self.generator.noise(n, torch.Generator().manual_seed(seed)).to(self.low.device)
        with eval_mode(self):
            return self.generator(z)

    def images_to_log_mel(self, images: torch.Tensor) -> base.LogMel:
        """Generated images ``(n, 1, H, W)`` → their natural-log mel, ``(n, n_mels, frames)``."""
        raise NotImplementedError

    def sample(self, n: int, seconds: float, seed: int) -> base.LogMel:
        """Independent images side by side until ``seconds`` are filled."""
        per_clip = self.images_for(seconds)
        made = self.images_to_log_mel(self.images(n * per_clip, seed))
        values = made.values.reshape(n, per_clip, *made.values.shape[1:]).transpose(0, 2, 1, 3)
        return base.LogMel(values.reshape(n, values.shape[1], -1), made.config)

    def images_for(self, seconds: float) -> int:
        """How many images, side by side, cover ``seconds``."""
        return -(-int(round(seconds * self.audio.sample_rate)) // (self.frames * self.image_audio.hop_length))


@dataclasses.dataclass(frozen=True)
class SeedDCGANSettings(GANSettings):
    batch_size: int = 128
    steps: int = 100

    @classmethod
    def full(cls):
        return cls(steps=5000)


@register
class SeedDCGAN(GAN):
    """The seed's replica: mel-power images of its own settings (64 bands, hop 512), SELU output, BCE."""

    name = "dcgan-seed"
    description = "the seed's spectrogram DCGAN, exactly (mel power, SELU output, BCE)"
    Settings = SeedDCGANSettings
    objective = "bce"

    def __init__(self, settings: SeedDCGANSettings, audio: AudioConfig):
        super().__init__(settings, audio, SeedGenerator(), SeedDiscriminator(), SEED_IMAGE[1],
                         seed_audio_config(audio.sample_rate))
        self.apply(dcgan_init)

    def features(self, dataset, split: str) -> np.ndarray | None:
        """The seed's fixed images of the training clips (nothing to validate on)."""
        return seed_images(dataset, "train") if split == "train" else None

    def images_to_log_mel(self, images: torch.Tensor) -> base.LogMel:
        # The images are mel *power* (the filterbank applied to |STFT|^2); SELU can go negative, power cannot.
        # Undo the filterbank on power, take the square root for |STFT|, then form the shared log-mel
        # (the filterbank applied to magnitudes) in the seed's settings: no inverter trained here takes them.
        config = self.image_audio
        bank = features.filterbank(config)
        magnitudes = [np.sqrt(dsp.mel_to_linear(np.maximum(image, 0), bank)) for image in images[:, 0].cpu().numpy()]
        return base.LogMel(np.stack([np.log(np.maximum(bank @ m, features.LOG_FLOOR)) for m in magnitudes]), config)


@dataclasses.dataclass(frozen=True)
class DCGANSettings(GANSettings):
    noise_size: int = 64
    width: int = 16
    image_seconds: float = IMAGE_SECONDS
    steps: int = 600

    @classmethod
    def full(cls):
        return cls(width=32, steps=5000)


@register
class DCGAN(GAN):
    """The fix: normalised log-mel images of one second, tanh output, a spectrally normalised critic, hinge loss."""

    name = "dcgan"
    description = "the DCGAN fixed: normalised log-mel, tanh output, spectral norm and hinge loss"
    gallery = ("One-second log-mel images drawn by the GAN from noise and turned into sound by Griffin-Lim. Listen for "
               "chord-like partials and note onsets, and for the phasey smear Griffin-Lim adds.")
    Settings = DCGANSettings

    def __init__(self, settings: DCGANSettings, audio: AudioConfig):
        frames = audio.seconds_to_frames(settings.image_seconds)  # 87 for 1 s at 22,050 Hz, hop 256
        super().__init__(settings, audio, FixedGenerator(audio.n_mels, settings.noise_size, settings.width, frames),
                         FixedDiscriminator(audio.n_mels, settings.width, frames), frames, audio)
        # oneDNN runs these narrow full-resolution convolutions faster in channels-last layout: a training
        # step, mostly the generator's convolutions, is 1.4-1.6x faster on 2 CPU threads (benchmarks/channels_last_step.py).
        self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def fit(self, dataset) -> None:
        normalizer = model_clips(dataset, "train", self.frames).normalizer
        self.low.fill_(normalizer.low)
        self.high.fill_(normalizer.high)

    def features(self, dataset, split: str) -> np.ndarray | None:
        """Whole training clips, which :meth:`loss` cuts to images (nothing to validate on)."""
        return model_clips(dataset, "train", self.frames).data if split == "train" else None

    def images_to_log_mel(self, images: torch.Tensor) -> base.LogMel:
        return base.LogMel(Normalizer(float(self.low), float(self.high)).denormalize(images[:, 0].cpu().numpy()), self.audio)

    def heldout_scores(self, dataset) -> dict:
        """NDB/K of the generated log-mel images themselves, before any inversion to audio.

        The images are those :meth:`sample` makes with seed 0 (``evaluate``'s default), as many
        as the training clips, binned with the training clips' features like ``evaluate``'s NDB/K.
        Beside that score (of the audio, after Griffin-Lim) it tells what the generator gets
        wrong from what the inversion loses.
        """
        train_features = metrics.clip_features(np.asarray(dataset.clips("train")), dataset.config)
        log_mel = self.images_to_log_mel(self.images(len(train_features), seed=0)).values
        return {"ndb_k_before_inversion": metrics.ndb_k(train_features, metrics.log_mel_features(log_mel))}


def seed_images(dataset, split: str) -> np.ndarray:
    """The seed's data from a dataset split: mel power, no log, no normalisation, ``(n, 64, 16)`` crops."""
    config = seed_audio_config(dataset.sample_rate)
    fb = features.filterbank(config)
    crops = []
    for clip in dataset.clips(split):
        power = fb @ features.magnitude(np.asarray(clip), config) ** 2
        crops += [power[:, i : i + SEED_IMAGE[1]] for i in range(0, power.shape[1] - SEED_IMAGE[1] + 1, SEED_IMAGE[1])]
    return np.stack(crops).astype(np.float32)


def fixed_images(dataset, split: str, normalizer=None, image_seconds: float = IMAGE_SECONDS) -> tuple[np.ndarray, object]:
    """Globally normalised log-mel images ``(n, n_mels, frames)`` in about [-1, 1]: the first ``image_seconds`` of each clip."""
    frames = dataset.config.seconds_to_frames(image_seconds)
    clips = model_clips(dataset, split, frames, normalizer)
    return clips.data[..., :frames], clips.normalizer
