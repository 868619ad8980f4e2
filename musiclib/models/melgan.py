"""MelGAN (Kumar et al., NeurIPS 2019): a GAN that turns log-mel frames into a waveform.

What the seed's name promised. The generator upsamples mel frames by 8, 8, 2
and 2 (product = the hop length, checked at construction), each upsampling
followed by a residual stack with dilations 1, 3 and 9, all convolutions
weight-normalised, tanh at the end. Three discriminators look at the audio at
1, 1/2 and 1/4 of the sample rate. Objective: hinge loss, plus feature matching
(L1 between the discriminators' inner activations on real and generated audio)
with weight 10; Adam 1e-4, betas (0.5, 0.9).

One addition: a reconstruction loss (multi-resolution STFT loss, as in Parallel
WaveGAN, Yamamoto et al. 2020, plus 10 × log-mel L1, as in HiFi-GAN). It trains the
generator alone for the first ``warmup_steps``, then stays in the generator's
objective with ``reconstruction_weight``. The paper's objective alone needs days on
a GPU; ``{"warmup_steps": 0, "reconstruction_weight": 0}`` gives it back.
The tiny CPU config warms up at ``learning_rate`` 1e-3 and plays the adversarial
game at the paper's 1e-4 (``adversarial_learning_rate``): at 1e-3 the fresh
discriminators pull a warmed-up generator far from its reconstruction optimum.

The generator is convolutions with a total stride of one hop, so a run of identical
mel frames can only give audio that repeats every hop: partials on multiples of the
frame rate (:func:`musiclib.metrics.frame_rate_comb`). Steady notes must be read from
small frame-to-frame changes; the tiny CPU vocoder has not learned to (see the README).
:func:`comb_floor` fits a comb to every frame. On the synthesised chorales (steady partials,
nearly empty upper bands) it comes far closer to the log-mel than Griffin-Lim over all bands,
but in the bands below about 1.3 kHz, where the notes are, it stays further away: a generator
that repeats every hop could beat Griffin-Lim on log-mel L1 only through the quiet upper
bands. On the sampled chorales the upper bands are not silent, so Griffin-Lim loses little
there, and the comb's shortfall on the notes leaves it further away over all bands too.

Conditioning is :func:`musiclib.features.log_mel` of the dataset's own
:class:`~musiclib.config.AudioConfig`, the features every model in musiclib
produces, so any of them can speak through the vocoder.

Notebook: 09_melgan_vocoder.ipynb
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from musiclib import cache, features, metrics
from musiclib.losses import multi_resolution_stft_loss
from musiclib.config import AudioConfig
from musiclib.datasets.store import NpyAppender, read_row_chunks
from musiclib.models import base, register
from musiclib.models.layers import eval_mode

UPSAMPLE_RATIOS = (8, 8, 2, 2)
DILATIONS = (1, 3, 9)
FEATURE_MATCHING_WEIGHT = 10.0
STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))


def _conv(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv1d(*args, **kwargs))


class ResidualUnit(nn.Module):
    """``x + f(x)`` with ``f`` = LeakyReLU, dilated conv (kernel 3), LeakyReLU, 1×1 conv; the skip has its own 1×1 conv."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.LeakyReLU(0.2), nn.ReflectionPad1d(dilation), _conv(channels, channels, 3, dilation=dilation),
            nn.LeakyReLU(0.2), _conv(channels, channels, 1),
        )
        self.skip = _conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class Generator(nn.Module):
    """``(B, n_mels, frames)`` log-mel → ``(B, 1, frames * hop)`` waveform in [-1, 1].

    Args:
        n_mels: Mel bands of the conditioning.
        hop_length: Samples per frame; must equal the product of ``ratios``.
        ngf: Channels of the last stage; the first has ``ngf * 2 ** len(ratios)``.
        ratios: Upsampling factors, in order.
    """

    def __init__(self, n_mels: int = 80, hop_length: int = 256, ngf: int = 32, ratios=UPSAMPLE_RATIOS):
        super().__init__()
        if int(np.prod(ratios)) != hop_length:
            raise ValueError(f"the upsampling ratios {tuple(ratios)} multiply to {int(np.prod(ratios))}, "
                             f"but the hop length is {hop_length}; they must be equal")
        channels = ngf * 2 ** len(ratios)
        layers = [nn.ReflectionPad1d(3), _conv(n_mels, channels, 7)]
        for r in ratios:
            layers += [nn.LeakyReLU(0.2),
                       weight_norm(nn.ConvTranspose1d(channels, channels // 2, 2 * r, stride=r,
                                                      padding=r // 2 + r % 2, output_padding=r % 2))]
            channels //= 2
            layers += [ResidualUnit(channels, d) for d in DILATIONS]
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), _conv(channels, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.hop_length = hop_length

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.net(log_mel)


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator: strided grouped convolutions; returns every layer's output (the last is the score map)."""

    def __init__(self, ndf: int = 16, n_layers: int = 4, stride: int = 4, max_channels: int = 1024):
        super().__init__()
        layers = [nn.Sequential(nn.ReflectionPad1d(7), _conv(1, ndf, 15), nn.LeakyReLU(0.2))]
        channels = ndf
        for _ in range(n_layers):
            out = min(channels * stride, max_channels)
            layers.append(nn.Sequential(_conv(channels, out, stride * 10 + 1, stride=stride, padding=stride * 5, groups=channels // 4),
                                        nn.LeakyReLU(0.2)))
            channels = out
        out = min(channels * 2, max_channels)
        layers.append(nn.Sequential(_conv(channels, out, 5, padding=2), nn.LeakyReLU(0.2)))
        layers.append(_conv(out, 1, 3, padding=1))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` discriminators, each on the audio average-pooled by 2 once more."""

    def __init__(self, n_scales: int = 3, ndf: int = 16, n_layers: int = 4, stride: int = 4, max_channels: int = 1024):
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(ndf, n_layers, stride, max_channels) for _ in range(n_scales))
        self.pool = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, audio: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for discriminator in self.discriminators:
            results.append(discriminator(audio))
            audio = self.pool(audio)
        return results


class LogMelLayer(nn.Module):
    """:func:`musiclib.features.log_mel` in torch (differentiable): ``(B, T)`` audio → ``(B, n_mels, frames)``."""

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config
        self.register_buffer("filterbank", torch.from_numpy(features.filterbank(config)), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = torch.stft(audio, c.n_fft, c.hop_length, window=self.window, center=c.center, pad_mode="constant", return_complex=True)
        return torch.log(torch.clamp(self.filterbank @ spec.abs(), min=features.LOG_FLOOR))


@dataclasses.dataclass(frozen=True)
class MelGANSettings(base.Settings):
    """The tiny CPU vocoder: ngf 16, ndf 8, discriminator channels capped at 256, 4096-sample segments.

    The first ``warmup_steps`` train the generator alone on the reconstruction loss at ``learning_rate`` 1e-3;
    the adversarial phase plays at the paper's 1e-4 (``adversarial_learning_rate``; ``None``: ``learning_rate``)
    with the reconstruction loss weighted 4.5 (45 on log-mel L1, HiFi-GAN's balance), so it does not undo the warm-up.
    """

    ngf: int = 16
    ndf: int = 8
    max_channels: int = 256
    n_scales: int = 3
    segment_frames: int = 16
    reconstruction_weight: float = 4.5
    warmup_steps: int = 450
    adversarial_learning_rate: float | None = 1e-4
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 8
    steps: int = 600

    scales_with_steps = ("warmup_steps",)

    @classmethod
    def full(cls):
        return cls(steps=4000, warmup_steps=3000)

    @classmethod
    def paper(cls):
        """The paper's size: ngf 32, ndf 16, 4 layers per discriminator, 3 scales, 8192-sample segments."""
        return cls(ngf=32, ndf=16, max_channels=1024, segment_frames=32, reconstruction_weight=1.0, warmup_steps=10000,
                   adversarial_learning_rate=None, learning_rate=1e-4, batch_size=16, steps=20000)


@register
class MelGAN(base.Model):
    """The vocoder: generator + multi-scale discriminator; an inverter of :func:`musiclib.models.render`.

    The first ``warmup_steps`` train the generator alone on the reconstruction loss
    (phase ``"reconstruction"``); then the discriminators and the generator take turns.
    ``mel_mean``/``mel_std`` buffers standardise the log-mel input (training statistics).
    ``musiclib generate`` on a vocoder run re-synthesises held-out audio from its log-mel.
    """

    name, family, prime_seconds = "melgan", "vocoder", 1.0
    description = "MelGAN vocoder: log-mel frames to waveform (Kumar et al. 2019)"
    Settings = MelGANSettings
    phases = ("reconstruction", "discriminator", "generator")

    def __init__(self, settings: MelGANSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        self.generator = Generator(audio.n_mels, audio.hop_length, settings.ngf)
        self.discriminator = MultiScaleDiscriminator(settings.n_scales, settings.ndf, max_channels=settings.max_channels)
        self.log_mel = LogMelLayer(audio)
        self.register_buffer("mel_mean", torch.zeros(()))
        self.register_buffer("mel_std", torch.ones(()))
        self._fake = None

    @torch.no_grad()
    def fit(self, dataset) -> None:
        """Store the training log-mel's mean and standard deviation, which standardise the generator's input."""
        frames = self.settings.segment_frames
        log_mel, _ = segments(dataset, "train", frames, stride_frames=frames)
        path, n = Path(log_mel.filename), log_mel.size
        mean = sum(float(chunk.sum(dtype=np.float64)) for chunk in read_row_chunks(path, 1024)) / n
        variance = sum(float(((chunk - mean) ** 2).sum(dtype=np.float64)) for chunk in read_row_chunks(path, 1024)) / n
        self.mel_mean.fill_(mean)
        self.mel_std.fill_(float(np.sqrt(variance)))

    def features(self, dataset, split: str):
        """Aligned ``(log-mel, audio)`` segments of the training clips (nothing to validate on)."""
        return segments(dataset, "train", self.settings.segment_frames) if split == "train" else None

    def active_phases(self, step: int) -> tuple[str, ...]:
        return ("reconstruction",) if step < self.settings.warmup_steps else ("discriminator", "generator")

    def phase_parameters(self, phase: str):
        return (self.discriminator if phase == "discriminator" else self.generator).parameters()

    def phase_learning_rate(self, phase: str, learning_rate: float) -> float:
        adversarial = self.settings.adversarial_learning_rate
        return adversarial if adversarial is not None and phase != "reconstruction" else learning_rate

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` natural-log mel → ``(B, frames * hop)`` audio."""
        return self.generator((log_mel - self.mel_mean) / self.mel_std)[:, 0]

    def reconstruction_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Multi-resolution STFT loss + 10 × L1 between the log-mels of ``real`` and ``fake`` ``(B, T)``."""
        return multi_resolution_stft_loss(real, fake, STFT_RESOLUTIONS) + 10 * (self.log_mel(real) - self.log_mel(fake)).abs().mean()

    def loss(self, batch, phase: str):
        """Reconstruction during warm-up; then hinge loss for the discriminators and, for the generator,
        hinge + 10 × feature matching + ``reconstruction_weight`` × reconstruction."""
        log_mel, real = batch
        if phase == "reconstruction":
            return self.reconstruction_loss(real, self(log_mel))
        if phase == "discriminator":
            # The generator phase comes next with unchanged generator weights, so it reuses this output and its graph.
            self._fake = self(log_mel)
            scores_real = [outputs[-1] for outputs in self.discriminator(real[:, None])]
            scores_fake = [outputs[-1] for outputs in self.discriminator(self._fake.detach()[:, None])]
            loss_d = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(scores_real, scores_fake))
            return loss_d, {"D(x)": float(np.mean([r.detach().mean().item() for r in scores_real])),
                            "D(G(z))": float(np.mean([f.detach().mean().item() for f in scores_fake]))}
        fake, self._fake = self._fake, None
        if fake is None:
            fake = self(log_mel)
        outputs_fake = self.discriminator(fake[:, None])
        with torch.no_grad():
            outputs_real = self.discriminator(real[:, None])
        adversarial = sum(-outputs[-1].mean() for outputs in outputs_fake)
        # As the paper's reference code: every feature map but the score, each weighted 4 / (n_downsampling + 1)
        # and averaged over scales; a discriminator's outputs are its first layer, n_downsampling strided
        # layers, one more convolution and the score.
        n_scales, n_downsampling = len(outputs_fake), len(outputs_fake[0]) - 3
        matching = sum(nn.functional.l1_loss(f, r) for of, orl in zip(outputs_fake, outputs_real) for f, r in zip(of[:-1], orl[:-1]))
        matching = matching * 4 / ((n_downsampling + 1) * n_scales)
        reconstruction = self.reconstruction_loss(real, fake) if self.settings.reconstruction_weight else fake.new_zeros(())
        total = adversarial + FEATURE_MATCHING_WEIGHT * matching + self.settings.reconstruction_weight * reconstruction
        return total, {"feature_matching": matching.item(), "reconstruction": reconstruction.item()}

    def heldout_scores(self, dataset) -> dict:
        return compare_with_griffin_lim(self, dataset.heldout_clips(), dataset.config)

    def invert(self, log_mel, batch_size: int = 16) -> np.ndarray:
        """As an inverter of :func:`musiclib.models.render`: :meth:`vocode`."""
        return self.vocode(log_mel, batch_size)

    def vocode(self, log_mel, batch_size: int = 16) -> np.ndarray:
        """``(n, n_mels, frames)`` (or one ``(n_mels, frames)``) natural-log mel → ``(n, frames * hop)`` float32 audio."""
        log_mel = np.asarray(log_mel, dtype=np.float32)
        single = log_mel.ndim == 2
        log_mel = log_mel[None] if single else log_mel
        device = self.mel_mean.device
        with eval_mode(self), torch.nn.utils.parametrize.cached():
            out = [self(torch.from_numpy(log_mel[i : i + batch_size]).to(device)).cpu().numpy()
                   for i in range(0, len(log_mel), batch_size)]
        audio = np.concatenate(out)
        return audio[0] if single else audio


def segments(dataset, split: str, segment_frames: int, stride_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Aligned pairs from every clip: ``(n, n_mels, segment_frames)`` log-mel and ``(n, segment_frames * hop)`` audio.

    Mel frame ``t`` of a clip is centred on sample ``t * hop``; its segment of audio is
    ``[t * hop, (t + 1) * hop)``. The paper's reference code instead computes each segment's mel
    without centring, padded by ``(n_fft - hop) / 2``, which centres frame ``t`` on the middle of
    its block, half a hop later. We keep the library's one centred log-mel (the one Griffin-Lim,
    the metrics and every model use) so that a vocoder can render any model's output; the fixed
    half-hop offset lies well inside the generator's receptive field of several frames, and
    training, :meth:`MelGAN.vocode` and the evaluation all use this same alignment.

    Both arrays are read-only memory maps in the feature cache (:mod:`musiclib.cache`), written a chunk
    of clips at a time: the pairs of a split far larger than memory stream through.
    """
    config = dataset.config
    hop, stride = config.hop_length, stride_frames or segment_frames // 4

    def pairs(chunk: np.ndarray) -> tuple[list, list]:
        mels, waves = [], []
        for clip in chunk:
            log_mel = features.log_mel(clip, config)
            for t in range(0, len(clip) // hop - segment_frames + 1, stride):
                mels.append(log_mel[:, t : t + segment_frames])
                waves.append(clip[t * hop : (t + segment_frames) * hop])
        return mels, waves

    def build(folder: Path) -> None:
        appenders = None
        for chunk in dataset.clip_chunks(split):
            mels, waves = pairs(chunk)
            if mels:
                appenders = appenders or (NpyAppender(folder / "log_mels.npy", mels[0].shape),
                                          NpyAppender(folder / "waves.npy", waves[0].shape))
                appenders[0].append(np.stack(mels))
                appenders[1].append(np.stack(waves))
        if appenders is None:
            raise ValueError(f"{dataset.root}: clips are shorter than one {segment_frames}-frame segment; use longer clips")
        for appender in appenders:
            appender.finish()

    folder = cache.derived_dir(dataset, f"melgan_segments_{split}_{segment_frames}_{stride}", build)
    return np.load(folder / "log_mels.npy", mmap_mode="r"), np.load(folder / "waves.npy", mmap_mode="r")


def compare_with_griffin_lim(model: MelGAN, clips: np.ndarray, config: AudioConfig, n_iter: int = 32) -> dict:
    """Re-synthesise ``clips`` from their log-mel with the vocoder, with Griffin-Lim (from :data:`musiclib.features.INITIAL_PHASE`),
    and with random phases.

    ``random_phase`` is Griffin-Lim with no iterations: the pseudo-inverted magnitudes
    with uniformly random phases, the baseline any inverter should beat. Returns, per
    method, the mean distances to the originals (``mrstft``, ``log_mel_l1``) and the mean
    :func:`~musiclib.metrics.frame_rate_comb` of the rebuilt audio (the originals' own is
    a few hundredths on the chorales; a buzzing vocoder's is near 1).
    """
    log_mel = np.stack([features.log_mel(c, config) for c in clips])
    rebuilt = {"vocoder": model.vocode(log_mel)[:, : clips.shape[1]],
               f"griffin_lim_{n_iter}": features.log_mel_to_audio(log_mel, config, n_iter=n_iter, length=clips.shape[1]),
               "random_phase": features.log_mel_to_audio(log_mel, config, n_iter=0, length=clips.shape[1], initial_phase="random")}
    return {name: {"mrstft": float(np.mean([metrics.multi_resolution_stft_distance(a, b) for a, b in zip(clips, y)])),
                   "log_mel_l1": float(np.mean([metrics.log_mel_l1(a, b, config) for a, b in zip(clips, y)])),
                   "frame_rate_comb": float(np.mean([metrics.frame_rate_comb(b, config) for b in y]))}
            for name, y in rebuilt.items()}


def comb_floor(log_mel: np.ndarray, config: AudioConfig, steps: int = 300, per_band: bool = False) -> float | np.ndarray:
    """How close to ``log_mel`` a signal that repeats every hop can come: the lowest mean log-mel L1 found (nats).

    Such a signal holds only the multiples of ``sample_rate / hop`` (the comb of
    :func:`~musiclib.metrics.frame_rate_comb`). With ``n_fft`` a multiple of the hop each
    tooth sits on an STFT bin centre; the Hann window also spreads it into the two
    neighbouring bins at half amplitude, but the teeth are ``n_fft / hop`` (4) bins apart,
    so no bin receives two teeth and a frame's mel magnitudes are linear in the teeth's amplitudes.
    Each frame's ``hop // 2 + 1`` amplitudes are fitted by Adam on their logarithms.
    Frames are fitted independently, which ignores how overlapping windows tie
    neighbours together: an estimate for music whose frames change slowly.

    Args:
        log_mel: ``(..., n_mels, frames)`` natural-log mel, as :func:`musiclib.features.log_mel` makes.
        config: Its audio configuration.
        steps: Adam steps (300 come within 0.01 nats of 1,500 on the chorales).
        per_band: Return the floor of each mel band, ``(n_mels,)``, whose mean is the overall floor.

    Returns:
        The mean floor (a float), or one per band.
    """
    if config.n_fft % config.hop_length:
        raise ValueError(f"n_fft {config.n_fft} is not a multiple of hop {config.hop_length}: the comb's teeth "
                         "fall between STFT bins and the mel is no longer linear in their amplitudes")
    hop, n_mels = config.hop_length, config.n_mels
    n = np.arange(4 * config.n_fft)
    middle = len(n) // hop // 2  # a frame whose window lies inside the signal
    filterbank = features.filterbank(config)
    teeth = np.stack([(filterbank @ features.magnitude(np.cos(2 * np.pi * k * n / hop).astype(np.float32), config))[:, middle]
                      for k in range(hop // 2 + 1)], axis=1)  # (n_mels, teeth): mel magnitudes of unit teeth, unfloored
    teeth = torch.from_numpy(teeth.astype(np.float64))
    target = torch.from_numpy(np.moveaxis(np.asarray(log_mel, dtype=np.float64), -2, -1).reshape(-1, n_mels))
    log_amplitude = torch.full((len(target), teeth.shape[1]), -5.0, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([log_amplitude], lr=0.1)

    def errors() -> torch.Tensor:
        mel = torch.clamp(torch.exp(log_amplitude) @ teeth.T, min=features.LOG_FLOOR)
        return (torch.log(mel) - target).abs()

    for _ in range(steps):
        optimizer.zero_grad()
        errors().mean().backward()
        optimizer.step()
    with torch.no_grad():
        band_floor = errors().mean(dim=0).numpy()
    return band_floor if per_band else float(band_floor.mean())
