"""Autoencoder, VAE and conditional VAE on normalised log-mel images (seed 004), in PyTorch and Keras.

All three share one convolutional shape. The encoder takes a ``(1, n_mels, 64)``
image (0.74 s of the shared log-mel, scaled to [-1, 1] by one global normaliser)
through four stride-2 convolutions to ``(8w, n_mels/16, 4)`` and a dense layer; the
decoder mirrors it with ×2 nearest-neighbour upsampling and 3×3 convolutions.

- ``ae``: the dense layer gives a code ``z``; loss = mean squared error. Nothing
  makes the codes fill any particular region, so a random ``z`` decodes to noise.
- ``vae``: the dense layer gives a mean and a log-variance; ``z = mu + sigma * eps``
  (the reparameterisation trick keeps the sampling differentiable); loss =
  MSE + ``beta`` × KL(q(z|x) ‖ N(0, I)) / (pixels). With a Gaussian decoder of
  variance 1/2 per pixel, ``beta = 1`` is exactly the negative ELBO per pixel; smaller
  ``beta`` trades a looser prior fit for sharper reconstructions.
- ``cvae``: the VAE with the labels (one-hot pitch and instrument) appended to the
  encoder's features and to ``z``: ask the decoder for a pitch and a timbre.

A VAE's codes never fill N(0, I) exactly (the aggregate posterior has holes and
shifted means), so after training the ``vae`` fits a Gaussian mixture to the codes of
its training windows (ex-post density estimation, Ghosh et al., ICLR 2020) and samples
that: the model's *fitted prior*. ``prior_components = 0`` keeps N(0, I).

Notebook: 10_vae.ipynb
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import dataclasses

from musiclib import features
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer, model_clips, windows
from musiclib.models import base, register
from musiclib.models.layers import eval_mode
from musiclib.utils import evenly_spaced

FRAMES = 64
PRIORS = ("model", "standard")


def label_vocabulary(dataset) -> dict:
    """The pitches and instruments of a labelled dataset's training split (what a CVAE can be asked for)."""
    labels = dataset.labels("train")
    if not labels or "pitch" not in labels[0] or "instrument" not in labels[0]:
        raise ValueError(f"{dataset.root}: the conditional VAE needs clips labelled with pitch and instrument, "
                         "like the bundled Notes set (--data notes)")
    return {"pitches": sorted({int(l["pitch"]) for l in labels}), "instruments": sorted({l["instrument"] for l in labels})}


def one_hot(labels: list[dict], vocabulary: dict) -> np.ndarray:
    """``(n, n_pitches + n_instruments)`` float32 condition vectors."""
    pitches, instruments = vocabulary["pitches"], vocabulary["instruments"]
    out = np.zeros((len(labels), len(pitches) + len(instruments)), np.float32)
    for i, label in enumerate(labels):
        if int(label["pitch"]) not in pitches or label["instrument"] not in instruments:
            raise ValueError(f"no training data for pitch {label['pitch']} and instrument {label['instrument']!r}; "
                             f"choose a pitch in {pitches} and an instrument in {instruments}")
        out[i, pitches.index(int(label["pitch"]))] = 1
        out[i, len(pitches) + instruments.index(label["instrument"])] = 1
    return out


class Encoder(nn.Module):
    """``(B, 1, n_mels, 64)`` (+ ``(B, c)`` condition) → ``(B, out_size)``."""

    def __init__(self, n_mels: int, width: int, out_size: int, condition_size: int = 0):
        super().__init__()
        layers, channels = [], 1
        for out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.dense = nn.Linear(channels * (n_mels // 16) * (FRAMES // 16) + condition_size, out_size)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x)
        return self.dense(h if condition is None else torch.cat([h, condition], dim=1))


class Decoder(nn.Module):
    """``(B, latent + c)`` → ``(B, 1, n_mels, 64)``: dense, four ×2 upsamplings with 3×3 convolutions, a linear output."""

    def __init__(self, n_mels: int, width: int, latent_size: int, condition_size: int = 0):
        super().__init__()
        self.start = (8 * width, n_mels // 16, FRAMES // 16)
        self.dense = nn.Linear(latent_size + condition_size, int(np.prod(self.start)))
        layers, channels = [], 8 * width
        for out in (4 * width, 2 * width, width, width):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, out, 3, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        z = z if condition is None else torch.cat([z, condition], dim=1)
        return self.net(torch.nn.functional.leaky_relu(self.dense(z), 0.2).view(-1, *self.start))


INFERENCE_BATCH = 256
"""Images encoded or decoded at once outside training."""


@dataclasses.dataclass(frozen=True)
class VAESettings(base.Settings):
    """``beta`` weighs the KL term; ``prior_components`` Gaussians are fitted to the codes after training (0: sample
    N(0, I)); ``latent_correlation`` is how much each next image's code keeps of the last; ``random_windows`` trains
    on a random 64-frame window of each clip (else its first); ``variation`` is the step size of a continuation's walk."""

    width: int = 16
    latent_size: int = 16
    variational: bool = True
    conditional: bool = False
    beta: float = 0.5
    prior_components: int = 20
    latent_correlation: float = 0.9
    random_windows: bool = True
    variation: float = 0.5
    vocabulary: dict | None = None
    steps: int = 600
    learning_rate: float = 1e-3

    @classmethod
    def full(cls):
        return cls(steps=5000)

    def check(self) -> None:
        if not 0 <= self.latent_correlation < 1:
            raise ValueError(f"setting latent_correlation must be in [0, 1), got {self.latent_correlation}")
        if self.prior_components < 0:
            raise ValueError(f"setting prior_components must be 0 (sample N(0, I)) or more, got {self.prior_components}")


@register
class VAE(base.Model):
    """Variational autoencoder on 64-frame log-mel images: sample its fitted prior, or continue a clip.

    Buffers ``low``/``high`` hold the global normaliser, so a decoded image can be turned back into natural-log
    mel without the training data; ``prior_*`` hold the latent prior, a Gaussian mixture with weights ``(K,)``,
    means ``(K, latent)`` and Cholesky factors ``(K, latent, latent)`` (every component N(0, I) until
    :meth:`finish` fits it).
    """

    name, family, output = "vae", "autoencoder", "log-mel"
    description = "variational autoencoder on log-mel images: sample the prior, continue, interpolate"
    gallery = ("Clips decoded from latent codes drawn from the prior the VAE fitted to its own codes, each next image a "
               "small step from the last. Listen for held tones in the chorales' range and for soft, blurred onsets: a "
               "VAE's images are smooth.")
    Settings = VAESettings

    def __init__(self, settings: VAESettings, audio: AudioConfig):
        super().__init__(settings, audio)
        if audio.n_mels % 16:
            raise ValueError(f"n_mels must be a multiple of 16 for four stride-2 layers, got {audio.n_mels}")
        s = settings
        self.encoder = Encoder(audio.n_mels, s.width, 2 * s.latent_size if s.variational else s.latent_size, self.condition_size)
        self.decoder = Decoder(audio.n_mels, s.width, s.latent_size, self.condition_size)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))
        components = max(s.prior_components, 1)
        self.register_buffer("prior_weights", torch.full((components,), 1.0 / components))
        self.register_buffer("prior_means", torch.zeros(components, s.latent_size))
        self.register_buffer("prior_cholesky", torch.eye(s.latent_size).repeat(components, 1, 1))
        # oneDNN runs the decoder's narrow full-resolution convolutions faster in channels-last layout:
        # a training step is about 1.4x faster on 2 CPU threads (benchmarks/channels_last_step.py), and 200 CVAE
        # training steps took 21 s instead of 37 s.
        self.to(memory_format=torch.channels_last)

    @property
    def condition_size(self) -> int:
        vocabulary = self.settings.vocabulary
        return len(vocabulary["pitches"]) + len(vocabulary["instruments"]) if self.settings.conditional else 0

    @torch.no_grad()
    def fit(self, dataset) -> None:
        normalizer = training_normalizer(dataset)
        self.low.fill_(normalizer.low)
        self.high.fill_(normalizer.high)

    def features(self, dataset, split: str) -> np.ndarray:
        """Whole training clips (the loss cuts a random 64-frame window of each) with ``random_windows``, else
        their first windows; the first windows of the other splits."""
        if split == "train":
            data = model_clips(dataset, "train", FRAMES).data
            return data if self.settings.random_windows else data[..., :FRAMES]
        return images(dataset, split, training_normalizer(dataset))[0]

    def encode(self, x: torch.Tensor, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)``, each ``(B, latent)``; an autoencoder's log-variance is ``-inf`` (no noise)."""
        h = self.encoder(x, condition)
        if not self.settings.variational:
            return h, torch.full_like(h, -float("inf"))
        mu, log_var = h.chunk(2, dim=1)
        return mu, log_var

    def forward(self, x: torch.Tensor, condition=None):
        mu, log_var = self.encode(x, condition)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu) if self.settings.variational and self.training else mu
        return self.decoder(z, condition), mu, log_var

    def loss(self, batch, phase: str = ""):
        """MSE per pixel + ``beta`` × KL per pixel (0 for the autoencoder), on 64-frame windows of the batch."""
        images_, condition = (batch[0], batch[1]) if isinstance(batch, tuple) else (batch, None)
        x = windows(images_, FRAMES, random=self.training)[:, None]
        reconstruction, mu, log_var = self(x, condition)
        mse = ((reconstruction - x) ** 2).mean()
        if not self.settings.variational:
            return mse
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(dim=1).mean() / x[0].numel()
        return mse + self.settings.beta * kl

    @torch.no_grad()
    def finish(self, dataset, max_codes: int = 16000, seed: int = 0) -> None:
        """Fit the Gaussian-mixture prior to the mean codes of the training windows (nothing for ``prior_components = 0``).

        Encodes up to ``max_codes`` 64-frame windows, evenly spaced within each training clip.
        """
        if not self.settings.prior_components:
            return
        from sklearn.mixture import GaussianMixture

        train = model_clips(dataset, "train", FRAMES)
        n_offsets = train.data.shape[-1] - FRAMES + 1
        per_clip = int(np.clip(max_codes // len(train.data), 1, n_offsets))
        offsets = np.linspace(0, n_offsets - 1, per_clip).round().astype(int)
        by_offset: list[list[np.ndarray]] = [[] for _ in offsets]
        for chunk in train.chunks(256):  # memory holds one chunk of the split (read, not mapped, when streamed)
            for codes_at, o in zip(by_offset, offsets):
                codes_at.append(self.encode_images(chunk[..., o:o + FRAMES]))
        codes = np.concatenate([np.concatenate(codes_at) for codes_at in by_offset])
        mixture = GaussianMixture(self.settings.prior_components, covariance_type="full", reg_covar=1e-4,
                                  random_state=seed).fit(codes)
        self.prior_weights.copy_(torch.as_tensor(mixture.weights_, dtype=torch.float32))
        self.prior_means.copy_(torch.as_tensor(mixture.means_, dtype=torch.float32))
        self.prior_cholesky.copy_(torch.as_tensor(np.linalg.cholesky(mixture.covariances_), dtype=torch.float32))

    def sample(self, n: int, seconds: float, seed: int, prior: str = "model") -> base.LogMel:
        """``n`` clips decoded from codes of the fitted prior (``prior="standard"``: N(0, I)), one slow walk per clip
        (:func:`sample_latents`), one decoded image (0.74 s) after another."""
        return self._decoded(n, seconds, seed, labels=None, prior=prior)

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> base.LogMel:
        """Encode the last 64 frames of each row of ``prime``, then walk from that code: each next image adds
        ``variation`` × N(0, I) to the previous code."""
        return self._decoded(len(prime), seconds, seed, labels=None, prime=prime)

    def _decoded(self, n: int, seconds: float, seed: int, labels: dict | None, prior: str = "model",
                 prime: np.ndarray | None = None) -> base.LogMel:
        rng = np.random.default_rng(seed)
        per_clip = images_for(seconds, self.audio)
        condition = None
        if self.condition_size:
            vocabulary, labels = self.settings.vocabulary, labels or {}
            asked = [{"pitch": labels.get("pitch") if labels.get("pitch") is not None else int(rng.choice(vocabulary["pitches"])),
                      "instrument": (labels.get("instrument") if labels.get("instrument") is not None
                                     else str(rng.choice(vocabulary["instruments"])))} for _ in range(n)]
            condition = np.repeat(one_hot(asked, vocabulary), per_clip, axis=0)
        if prime is not None:
            log_mel = np.stack([features.log_mel(np.asarray(p), self.audio) for p in prime])
            if log_mel.shape[-1] < FRAMES:
                raise ValueError(f"a continuation needs at least {FRAMES} frames "
                                 f"({FRAMES * self.audio.hop_length / self.audio.sample_rate:.2f} s) of audio to encode")
            start = self.encode_images(self.normalizer.normalize(log_mel[..., -FRAMES:]),
                                       None if condition is None else condition[::per_clip])
            z = start[:, None] + self.settings.variation * np.cumsum(rng.standard_normal((n, per_clip, self.settings.latent_size)), axis=1)
        else:
            z = sample_latents(self, n, per_clip, rng, self.settings.latent_correlation, prior)
        decoded = self.decode(z.reshape(n * per_clip, -1), condition)
        return self.log_mel_clips(decoded.reshape(n, per_clip, *decoded.shape[1:]))

    def round_trip(self, clips: np.ndarray) -> base.LogMel:
        """Each clip's log-mel cut into 64-frame images (the last one padded by repeating the final frame), each image
        encoded to its mean code and decoded, side by side: what ``latent_size`` numbers per image keep of the music."""
        normalized = np.stack([self.normalizer.normalize(features.log_mel(np.asarray(y), self.audio)) for y in clips])
        n, n_mels, n_frames = normalized.shape
        per_clip = -(-n_frames // FRAMES)
        padded = np.pad(normalized, ((0, 0), (0, 0), (0, per_clip * FRAMES - n_frames)), mode="edge")
        images_ = padded.reshape(n, n_mels, per_clip, FRAMES).transpose(0, 2, 1, 3).reshape(n * per_clip, n_mels, FRAMES)
        decoded = self.decode(self.encode_images(images_))
        return self.log_mel_clips(decoded.reshape(n, per_clip, n_mels, FRAMES))

    def heldout_scores(self, dataset) -> dict:
        """Held-out reconstruction L1 beside PCA with as many components as the latent; a CVAE adds :func:`pitch_accuracy`."""
        from musiclib.baselines import PCABaseline

        train = model_clips(dataset, "train", FRAMES)
        val, test = (model_clips(dataset, split, FRAMES, train.normalizer) for split in ("val", "test"))
        labels, condition = dataset.labels("val") + dataset.labels("test"), None
        keep = np.ones(len(val) + len(test), dtype=bool)
        if self.condition_size:
            keep = np.array([int(l["pitch"]) in self.settings.vocabulary["pitches"] for l in labels], dtype=bool)
        # A bounded number of images, evenly spread and read alone, however large the data: memory does not grow with it.
        kept = np.flatnonzero(keep)
        kept = kept[evenly_spaced(len(kept), HELDOUT_IMAGES)]
        held = np.concatenate([val.read(kept[kept < len(val)]), test.read(kept[kept >= len(val)] - len(val))])[..., :FRAMES]
        if self.condition_size:
            condition = one_hot([labels[i] for i in kept], self.settings.vocabulary)
        pca = PCABaseline(self.settings.latent_size).fit(train.read(evenly_spaced(len(train), PCA_IMAGES))[..., :FRAMES])
        scores = {"reconstruction_l1": reconstruction_l1(self, held, condition=condition),
                  "pca_reconstruction_l1": reconstruction_l1(self, held, pca.reconstruct(held)),
                  "n_heldout": len(held)}
        if self.condition_size:
            scores["pitch_accuracy"] = pitch_accuracy(self, heard=heard_pairs(dataset))
        return scores

    # Images in and out, outside training

    def _batched(self, function, inputs, condition) -> np.ndarray:
        """``function(x, c)`` over ``inputs`` (and ``condition``) :data:`INFERENCE_BATCH` rows at a time, without
        gradients: memory holds one batch's activations however many rows there are."""
        out = []
        with eval_mode(self):
            for start in range(0, len(inputs), INFERENCE_BATCH):
                x = torch.as_tensor(np.array(inputs[start : start + INFERENCE_BATCH], np.float32), device=self.low.device)
                c = None if condition is None else torch.as_tensor(
                    np.asarray(condition[start : start + INFERENCE_BATCH], np.float32), device=self.low.device)
                out.append(function(x, c).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    def decode(self, z, condition=None) -> np.ndarray:
        """Latent codes ``(n, latent)`` → images ``(n, n_mels, 64)`` in normalised units."""
        return self._batched(lambda x, c: self.decoder(x, c)[:, 0], z, condition)

    def encode_images(self, images_, condition=None) -> np.ndarray:
        """Images ``(n, n_mels, 64)`` → the mean latent codes ``(n, latent)``."""
        return self._batched(lambda x, c: self.encode(x[:, None], c)[0], images_, condition)

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(float(self.low), float(self.high))

    def to_log_mel(self, images_: np.ndarray) -> np.ndarray:
        return self.normalizer.denormalize(images_)

    def log_mel_clips(self, images_: np.ndarray, start: int = 0) -> base.LogMel:
        """``(n, per_clip, n_mels, 64)`` normalised images → each clip's images side by side as one :class:`LogMel`."""
        n, per_clip, n_mels, frames = images_.shape
        log_mel = self.to_log_mel(images_).transpose(0, 2, 1, 3).reshape(n, n_mels, per_clip * frames)
        return base.LogMel(log_mel, self.audio, start)


@dataclasses.dataclass(frozen=True)
class AESettings(VAESettings):
    variational: bool = False
    prior_components: int = 0


@register
class AE(VAE):
    """Convolutional autoencoder on log-mel images: nothing fills its codes' space, so a random ``z`` decodes to noise."""

    name = "ae"
    description = "convolutional autoencoder on log-mel images (cannot sample: no prior)"
    gallery = ""
    Settings = AESettings


@dataclasses.dataclass(frozen=True)
class CVAESettings(VAESettings):
    # The labels already say pitch and timbre; a strong KL term (beta 10) keeps that out of z, so the decoder
    # must read the labels (at beta 0.5 z carried the pitch and the labels were ignored). The Notes set's notes
    # start at frame 0, so the model learns each from its onset (no random windows); the strong KL term already
    # fills N(0, I), so no prior is fitted.
    conditional: bool = True
    beta: float = 10.0
    random_windows: bool = False
    prior_components: int = 0
    steps: int = 1000


@register
class CVAE(VAE):
    """The VAE with one-hot pitch and instrument labels appended to the encoder's features and to ``z``."""

    name, data = "cvae", "notes"
    description = "conditional VAE on labelled notes: ask for a pitch and an instrument (--data notes)"
    gallery = ""
    Settings = CVAESettings
    round_trip = base.Model.round_trip  # its codes need the pitch and instrument of the music, which held-out chorales lack

    @classmethod
    def settle(cls, settings: CVAESettings, dataset) -> CVAESettings:
        """The labels the training split has (they size the condition layers)."""
        return settings.replace(vocabulary=label_vocabulary(dataset))

    def features(self, dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, one-hot labels)``; held-out notes of pitches the training split lacks are left out."""
        vocabulary, labels = self.settings.vocabulary, dataset.labels(split)
        if split == "train":
            return super().features(dataset, split), one_hot(labels, vocabulary)
        known = np.array([int(l["pitch"]) in vocabulary["pitches"] for l in labels], dtype=bool)
        return super().features(dataset, split)[known], one_hot([l for l, keep in zip(labels, known) if keep], vocabulary)

    def conditioned(self, n: int, seconds: float, seed: int, pitch: int | None = None, instrument: str | None = None) -> base.LogMel:
        """``n`` clips of the requested ``pitch`` and ``instrument`` (random ones from the vocabulary where not given)."""
        return self._decoded(n, seconds, seed, labels={"pitch": pitch, "instrument": instrument})


def training_normalizer(dataset) -> Normalizer:
    """The global normaliser of a dataset's training images (cached with them)."""
    return model_clips(dataset, "train", FRAMES).normalizer


def images_for(seconds: float, audio: AudioConfig) -> int:
    """How many 64-frame images, side by side, cover ``seconds``."""
    return -(-int(round(seconds * audio.sample_rate)) // (FRAMES * audio.hop_length))


def sample_latents(model: VAE, n: int, per_clip: int, rng: np.random.Generator, correlation: float = 0.9,
                   prior: str = "model") -> np.ndarray:
    """``(n, per_clip, latent)`` codes from the model's prior (``prior="standard"``: N(0, I)), one slowly wandering sequence per clip.

    Each clip picks one mixture component ``k`` and walks inside it,
    ``z[t+1] = mu_k + rho (z[t] - mu_k) + sqrt(1 - rho^2) L_k eps``, so every code is
    distributed exactly as the prior while neighbouring images stay related (``rho`` =
    ``correlation``; 0 gives independent images).
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    latent_size = model.settings.latent_size
    if prior == "standard":
        weights, means, cholesky = np.ones(1), np.zeros((1, latent_size)), np.eye(latent_size)[None]
    else:
        weights = model.prior_weights.cpu().numpy().astype(np.float64)
        means, cholesky = model.prior_means.cpu().numpy(), model.prior_cholesky.cpu().numpy()
    component = rng.choice(len(weights), size=n, p=weights / weights.sum())
    noise = rng.standard_normal((n, per_clip, latent_size))
    innovations = np.einsum("nij,ntj->nti", cholesky[component], noise)
    z = np.empty_like(innovations)
    z[:, 0] = innovations[:, 0]
    for t in range(1, per_clip):
        z[:, t] = correlation * z[:, t - 1] + np.sqrt(1 - correlation**2) * innovations[:, t]
    return (z + means[component][:, None]).astype(np.float32)


def reconstruction_l1(model: VAE, images_: np.ndarray, reconstructed: np.ndarray | None = None, condition=None) -> float:
    """Mean absolute error (natural-log mel units, nats) between ``(n, n_mels, 64)`` images and their reconstructions.

    ``reconstructed`` defaults to the model's own (encode, then decode); pass another
    model's (e.g. PCA's) to score it in the same units.
    """
    if reconstructed is None:
        reconstructed = model.decode(model.encode_images(images_, condition), condition)
    return float(np.mean(np.abs(model.to_log_mel(reconstructed) - model.to_log_mel(images_))))


def pitch_accuracy(model: CVAE, seed: int = 0, tolerance_cents: float = 50.0, heard: set | None = None) -> dict:
    """Ask a CVAE for every pitch on every instrument of its vocabulary and track each note with ``librosa.pyin``.

    Args:
        heard: Optional ``(pitch, instrument)`` pairs the model was trained on; the score is then
            also given apart for the requests it heard and for the combinations it never heard.

    Returns ``within_tolerance`` (the share of all voiced frames within ``tolerance_cents`` of the
    requested pitch, pooled over the requests), ``voiced_fraction`` and ``n_requests``; with
    ``heard``, also ``within_tolerance_heard``, ``within_tolerance_unheard`` and ``n_unheard``.
    """
    from musiclib import metrics

    vocabulary, audio = model.settings.vocabulary, model.audio
    requests = [(p, i) for i in vocabulary["instruments"] for p in vocabulary["pitches"]]
    n_samples = FRAMES * audio.hop_length
    stats = []
    for k, (pitch, instrument) in enumerate(requests):
        note = base.make_audio(model, 1, n_samples / audio.sample_rate, seed + k, mode="condition", pitch=pitch,
                               instrument=instrument)[0]
        stats.append(metrics.pitch_statistics(note, audio.sample_rate, pitch, tolerance_cents))
    # Every note has the same number of frames, so voiced fractions weight the per-note shares into a pooled one.
    voiced = np.array([s["voiced_fraction"] for s in stats])
    within = np.array([s["within_tolerance"] for s in stats])

    def pooled(keep):
        return float(np.sum((within * voiced)[keep]) / max(np.sum(voiced[keep]), 1e-12))

    scores = {"within_tolerance": pooled(np.ones(len(stats), bool)), "voiced_fraction": float(np.mean(voiced)),
              "n_requests": len(requests)}
    if heard is not None:
        was_heard = np.array([(int(p), str(i)) in heard for p, i in requests])
        scores.update(within_tolerance_heard=pooled(was_heard), within_tolerance_unheard=pooled(~was_heard),
                      n_unheard=int((~was_heard).sum()))
    return scores


def heard_pairs(dataset) -> set:
    """The ``(pitch, instrument)`` pairs of a labelled dataset's training split."""
    return {(int(label["pitch"]), str(label["instrument"])) for label in dataset.labels("train")}


HELDOUT_IMAGES = 512
"""At most this many held-out images (evenly spread over val and test) are scored by :meth:`VAE.heldout_scores`."""
PCA_IMAGES = 1024
"""At most this many training images (evenly spread) fit the PCA baseline."""


def images(dataset, split: str, normalizer=None) -> tuple[np.ndarray, object]:
    """``(n, n_mels, 64)`` normalised log-mel images (the first 64 frames of each clip) and the normaliser."""
    clips = model_clips(dataset, split, FRAMES, normalizer)
    return clips.data[..., :FRAMES], clips.normalizer
