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

from musiclib import features
from musiclib.config import AudioConfig
from musiclib.datasets.spectrogram import Normalizer, model_clips, windows
from musiclib.models import ModelSpec, register
from musiclib.models.layers import eval_mode
from musiclib.utils import evenly_spaced

FRAMES = 64
MODES = ("autonomous", "continue", "condition")
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


class SpectrogramVAE(nn.Module):
    """Autoencoder (``variational=False``) or (conditional) VAE on normalised log-mel images.

    Buffers ``low``/``high`` hold the global normaliser, so a decoded image can be turned
    back into natural-log mel without the training data.
    """

    def __init__(self, n_mels: int = 80, width: int = 16, latent_size: int = 16, variational: bool = True,
                 beta: float = 1.0, condition_size: int = 0, prior_components: int = 0):
        super().__init__()
        if n_mels % 16:
            raise ValueError(f"n_mels must be a multiple of 16 for four stride-2 layers, got {n_mels}")
        self.variational, self.beta, self.latent_size, self.condition_size = variational, beta, latent_size, condition_size
        self.encoder = Encoder(n_mels, width, 2 * latent_size if variational else latent_size, condition_size)
        self.decoder = Decoder(n_mels, width, latent_size, condition_size)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.ones(()))
        # The latent prior as a Gaussian mixture: weights (K,), means (K, latent), Cholesky factors
        # (K, latent, latent). Until fit_prior() runs, every component is N(0, I).
        components = max(prior_components, 1)
        self.register_buffer("prior_weights", torch.full((components,), 1.0 / components))
        self.register_buffer("prior_means", torch.zeros(components, latent_size))
        self.register_buffer("prior_cholesky", torch.eye(latent_size).repeat(components, 1, 1))

    def encode(self, x: torch.Tensor, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)``, each ``(B, latent)``; an autoencoder's log-variance is ``-inf`` (no noise)."""
        h = self.encoder(x, condition)
        if not self.variational:
            return h, torch.full_like(h, -float("inf"))
        mu, log_var = h.chunk(2, dim=1)
        return mu, log_var

    def forward(self, x: torch.Tensor, condition=None):
        mu, log_var = self.encode(x, condition)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu) if self.variational and self.training else mu
        return self.decoder(z, condition), mu, log_var

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

    def encode_images(self, images, condition=None) -> np.ndarray:
        """Images ``(n, n_mels, 64)`` → the mean latent codes ``(n, latent)``."""
        return self._batched(lambda x, c: self.encode(x[:, None], c)[0], images, condition)

    def to_log_mel(self, images: np.ndarray) -> np.ndarray:
        return Normalizer(float(self.low), float(self.high)).denormalize(images)


def loss(model: SpectrogramVAE, batch):
    """MSE per pixel + ``beta`` × KL per pixel (0 for the autoencoder), on 64-frame windows of the batch."""
    images, condition = (batch[0], batch[1]) if isinstance(batch, tuple) else (batch, None)
    x = windows(images, FRAMES, random=model.training)[:, None]
    reconstruction, mu, log_var = model(x, condition)
    mse = ((reconstruction - x) ** 2).mean()
    if not model.variational:
        return mse
    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(dim=1).mean() / x[0].numel()
    return mse + model.beta * kl


# ---------------------------------------------------------------------------
# Keras twin (the seed's framework): same layers, same parameter count
# ---------------------------------------------------------------------------


def build_keras(n_mels: int = 80, width: int = 16, latent_size: int = 16, variational: bool = True, condition_size: int = 0):
    """``(encoder, decoder)`` Keras models with the PyTorch model's layers and parameter counts.

    The encoder maps ``[image (n_mels, 64, 1)]`` (+ ``[condition]``) to ``2 * latent`` numbers
    (mean and log-variance) for a VAE, ``latent`` for an autoencoder; the decoder maps
    ``[z]`` (+ ``[condition]``) to an image.
    """
    import keras
    from keras import layers

    image = keras.Input((n_mels, FRAMES, 1))
    inputs, h = [image], image
    for out in (width, 2 * width, 4 * width, 8 * width):
        h = layers.LeakyReLU(0.2)(layers.Conv2D(out, 4, strides=2, padding="same")(h))
    h = layers.Flatten()(h)
    if condition_size:
        condition = keras.Input((condition_size,))
        inputs.append(condition)
        h = layers.Concatenate()([h, condition])
    encoder = keras.Model(inputs, layers.Dense(2 * latent_size if variational else latent_size)(h), name="encoder")

    z = keras.Input((latent_size,))
    inputs, h = [z], z
    if condition_size:
        condition = keras.Input((condition_size,))
        inputs.append(condition)
        h = layers.Concatenate()([z, condition])
    h = layers.LeakyReLU(0.2)(layers.Dense(8 * width * (n_mels // 16) * (FRAMES // 16))(h))
    h = layers.Reshape((n_mels // 16, FRAMES // 16, 8 * width))(h)
    for out in (4 * width, 2 * width, width, width):
        h = layers.LeakyReLU(0.2)(layers.Conv2D(out, 3, padding="same")(layers.UpSampling2D(2)(h)))
    decoder = keras.Model(inputs, layers.Conv2D(1, 3, padding="same")(h), name="decoder")
    return encoder, decoder


def keras_vae(n_mels: int = 80, width: int = 16, latent_size: int = 16, beta: float = 1.0, seed: int = 0):
    """A trainable Keras VAE: image ``(n_mels, 64, 1)`` → reconstruction, with the PyTorch loss.

    The encoder and decoder are :func:`build_keras`'s; between them a sampling layer draws
    ``z = mu + sigma * eps`` and adds ``beta`` × KL per pixel with ``add_loss``, so that
    ``model.compile(loss="mse")`` and ``model.fit(x, x)`` optimise exactly :func:`loss`.
    Returns ``(vae, encoder, decoder)``.
    """
    import keras

    encoder, decoder = build_keras(n_mels, width, latent_size, variational=True)
    pixels = float(n_mels * FRAMES)

    class KLSampling(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, h, training=None):
            mu, log_var = keras.ops.split(h, 2, axis=1)
            kl = keras.ops.mean(keras.ops.sum(0.5 * (mu**2 + keras.ops.exp(log_var) - 1 - log_var), axis=1))
            self.add_loss(beta * kl / pixels)
            if not training:
                return mu
            return mu + keras.ops.exp(0.5 * log_var) * keras.random.normal(keras.ops.shape(mu), seed=self.generator)

    image = keras.Input((n_mels, FRAMES, 1))
    vae_model = keras.Model(image, decoder(KLSampling(name="kl_sampling")(encoder(image))), name="vae")
    return vae_model, encoder, decoder


# ---------------------------------------------------------------------------
# The shared pipeline: data, build, generation modes
# ---------------------------------------------------------------------------


def images(dataset, split: str, normalizer=None) -> tuple[np.ndarray, object]:
    """``(n, n_mels, 64)`` normalised log-mel images (the first 64 frames of each clip) and the normaliser."""
    clips = model_clips(dataset, split, FRAMES, normalizer)
    return clips.data[..., :FRAMES], clips.normalizer


def default_config(fast: bool, variational: bool = True, conditional: bool = False) -> dict:
    # A CVAE's labels already say pitch and timbre; a strong KL term (beta 10) keeps that out of z,
    # so the decoder must read the labels (at beta 0.5 z carried the pitch and the labels were ignored).
    return {"variational": variational, "conditional": conditional, "width": 16, "latent_size": 16,
            "beta": 10.0 if conditional else 0.5,
            "random_windows": not conditional, "learning_rate": 1e-3, "batch_size": 32,
            # Only the unconditional VAE fits its prior: the AE shows what sampling N(0, I) does without
            # one, and the CVAE's strong KL term already fills N(0, I).
            "prior_components": 20 if variational and not conditional else 0, "latent_correlation": 0.9,
            "steps": (1000 if conditional else 600) if fast else 5000}


def build(model_config: dict, audio_config: AudioConfig) -> SpectrogramVAE:
    vocabulary = model_config.get("vocabulary")
    condition_size = len(vocabulary["pitches"]) + len(vocabulary["instruments"]) if model_config["conditional"] else 0
    model = SpectrogramVAE(audio_config.n_mels, model_config["width"], model_config["latent_size"],
                           model_config["variational"], model_config["beta"], condition_size,
                           model_config.get("prior_components", 0))
    # oneDNN runs the decoder's narrow full-resolution convolutions faster in channels-last layout:
    # a training step is about 1.4x faster on 2 CPU threads (benchmarks/channels_last_step.py), and 200 CVAE
    # training steps took 21 s instead of 37 s.
    model = model.to(memory_format=torch.channels_last)
    model.model_config = dict(model_config)
    return model


def training_arrays(dataset, model_config: dict):
    """Training images and validation images (first windows).

    With ``random_windows`` the training array holds whole clips and :func:`loss` cuts a
    random 64-frame window from each; the Notes set turns it off, since its notes start
    at frame 0 and a conditional model should learn them from their onset.
    """
    clips = model_clips(dataset, "train", FRAMES)
    train = clips.data if model_config.get("random_windows") else clips.data[..., :FRAMES]
    val, _ = images(dataset, "val", clips.normalizer)
    if not model_config["conditional"]:
        return train, val
    vocabulary = label_vocabulary(dataset)
    model_config["vocabulary"] = vocabulary
    known = np.array([int(l["pitch"]) in vocabulary["pitches"] for l in dataset.labels("val")], dtype=bool)
    val_labels = [label for label, keep in zip(dataset.labels("val"), known) if keep]
    return (train, one_hot(dataset.labels("train"), vocabulary)), (val[known], one_hot(val_labels, vocabulary))


@torch.no_grad()
def prepare(model: SpectrogramVAE, dataset, model_config: dict) -> None:
    _, normalizer = images(dataset, "train")
    model.low.fill_(normalizer.low)
    model.high.fill_(normalizer.high)


@torch.no_grad()
def fit_prior(model: SpectrogramVAE, dataset, model_config: dict, max_codes: int = 16000, seed: int = 0) -> None:
    """Fit the model's Gaussian-mixture prior to the mean codes of its training windows (no-op for ``prior_components = 0``).

    Encodes up to ``max_codes`` 64-frame windows, evenly spaced within each training clip.
    """
    if not model_config.get("prior_components"):
        return
    from sklearn.mixture import GaussianMixture

    train = model_clips(dataset, "train", FRAMES)
    clips = train.data
    n_offsets = clips.shape[-1] - FRAMES + 1
    per_clip = int(np.clip(max_codes // len(clips), 1, n_offsets))
    offsets = np.linspace(0, n_offsets - 1, per_clip).round().astype(int)
    by_offset: list[list[np.ndarray]] = [[] for _ in offsets]
    for chunk in train.chunks(256):  # memory holds one chunk of the split (read, not mapped, when streamed)
        for codes_at, o in zip(by_offset, offsets):
            codes_at.append(model.encode_images(chunk[..., o:o + FRAMES]))
    codes = np.concatenate([np.concatenate(codes_at) for codes_at in by_offset])
    mixture = GaussianMixture(model_config["prior_components"], covariance_type="full", reg_covar=1e-4, random_state=seed).fit(codes)
    model.prior_weights.copy_(torch.as_tensor(mixture.weights_, dtype=torch.float32))
    model.prior_means.copy_(torch.as_tensor(mixture.means_, dtype=torch.float32))
    model.prior_cholesky.copy_(torch.as_tensor(np.linalg.cholesky(mixture.covariances_), dtype=torch.float32))


def sample_latents(model: SpectrogramVAE, n: int, per_clip: int, rng: np.random.Generator, correlation: float = 0.9,
                   prior: str = "model") -> np.ndarray:
    """``(n, per_clip, latent)`` codes from the model's prior (``prior="standard"``: N(0, I)), one slowly wandering sequence per clip.

    Each clip picks one mixture component ``k`` and walks inside it,
    ``z[t+1] = mu_k + rho (z[t] - mu_k) + sqrt(1 - rho^2) L_k eps``, so every code is
    distributed exactly as the prior while neighbouring images stay related (``rho`` =
    ``correlation``; 0 gives independent images).
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if prior == "standard":
        weights, means, cholesky = np.ones(1), np.zeros((1, model.latent_size)), np.eye(model.latent_size)[None]
    else:
        weights = model.prior_weights.cpu().numpy().astype(np.float64)
        means, cholesky = model.prior_means.cpu().numpy(), model.prior_cholesky.cpu().numpy()
    component = rng.choice(len(weights), size=n, p=weights / weights.sum())
    noise = rng.standard_normal((n, per_clip, model.latent_size))
    innovations = np.einsum("nij,ntj->nti", cholesky[component], noise)
    z = np.empty_like(innovations)
    z[:, 0] = innovations[:, 0]
    for t in range(1, per_clip):
        z[:, t] = correlation * z[:, t - 1] + np.sqrt(1 - correlation**2) * innovations[:, t]
    return (z + means[component][:, None]).astype(np.float32)


def images_to_audio(model, images_: np.ndarray, n_samples: int, seed: int, audio_config: AudioConfig, vocoder=None) -> np.ndarray:
    """``(n, per_clip, n_mels, 64)`` normalised images → ``(n, n_samples)``: each clip's images side by side, then inverted."""
    return features.log_mel_images_to_audio(model.to_log_mel(images_), audio_config, n_samples, seed, vocoder)


def generate(model: SpectrogramVAE, n: int, seconds: float, seed: int, audio_config: AudioConfig, prime=None, vocoder=None,
             mode: str = "autonomous", pitch: int | None = None, instrument: str | None = None, variation: float = 0.5,
             prior: str = "model") -> np.ndarray:
    """``(n, samples)`` audio in one of the seed's three modes, one decoded image (0.74 s) after another.

    - ``autonomous``: decode codes from the model's prior (:func:`sample_latents`: N(0, I), or the
      mixture :func:`fit_prior` fitted; ``prior="standard"`` forces N(0, I)), one slow walk per clip (with random
      labels for a CVAE, unless given).
    - ``continue``: encode the first 64 frames of each clip of ``prime``, then walk from that code:
      each next image adds ``variation`` × N(0, I) to the previous code.
    - ``condition``: a CVAE decodes random ``z`` with the requested ``pitch`` and ``instrument``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rng = np.random.default_rng(seed)
    n_samples = int(round(seconds * audio_config.sample_rate))
    per_clip = -(-n_samples // (FRAMES * audio_config.hop_length))
    condition = None
    if model.condition_size:
        vocabulary = model.model_config["vocabulary"]
        labels = [{"pitch": pitch if pitch is not None else int(rng.choice(vocabulary["pitches"])),
                   "instrument": instrument if instrument is not None else str(rng.choice(vocabulary["instruments"]))} for _ in range(n)]
        condition = np.repeat(one_hot(labels, vocabulary), per_clip, axis=0)
    elif mode == "condition":
        raise ValueError("mode 'condition' needs a conditional model: train one with `musiclib train cvae --data notes`")
    if mode == "continue":
        if prime is None:
            raise ValueError("mode 'continue' needs audio to start from")
        normalizer = Normalizer(float(model.low), float(model.high))
        seeds = np.stack([normalizer.normalize(features.log_mel(np.asarray(p), audio_config))[:, :FRAMES] for p in prime])
        if seeds.shape[-1] < FRAMES:
            raise ValueError(f"mode 'continue' needs at least {FRAMES} frames of audio to encode")
        start = model.encode_images(seeds, None if condition is None else condition[::per_clip])
        z = start[:, None] + variation * np.cumsum(rng.standard_normal((n, per_clip, model.latent_size)), axis=1)
    else:
        z = sample_latents(model, n, per_clip, rng, model.model_config.get("latent_correlation", 0.0), prior)
    decoded = model.decode(z.reshape(n * per_clip, -1), condition)
    return images_to_audio(model, decoded.reshape(n, per_clip, *decoded.shape[1:]), n_samples, seed, audio_config, vocoder)


def reconstruction_l1(model: SpectrogramVAE, images_: np.ndarray, reconstructed: np.ndarray | None = None, condition=None) -> float:
    """Mean absolute error (natural-log mel units, nats) between ``(n, n_mels, 64)`` images and their reconstructions.

    ``reconstructed`` defaults to the model's own (encode, then decode); pass another
    model's (e.g. PCA's) to score it in the same units.
    """
    if reconstructed is None:
        reconstructed = model.decode(model.encode_images(images_, condition), condition)
    return float(np.mean(np.abs(model.to_log_mel(reconstructed) - model.to_log_mel(images_))))


def pitch_accuracy(model: SpectrogramVAE, audio_config: AudioConfig, seed: int = 0, tolerance_cents: float = 50.0,
                   heard: set | None = None) -> dict:
    """Ask a CVAE for every pitch on every instrument of its vocabulary and track each note with ``librosa.pyin``.

    Args:
        heard: Optional ``(pitch, instrument)`` pairs the model was trained on; the score is then
            also given apart for the requests it heard and for the combinations it never heard.

    Returns ``within_tolerance`` (the share of all voiced frames within ``tolerance_cents`` of the
    requested pitch, pooled over the requests), ``voiced_fraction`` and ``n_requests``; with
    ``heard``, also ``within_tolerance_heard``, ``within_tolerance_unheard`` and ``n_unheard``.
    """
    from musiclib import metrics

    vocabulary = model.model_config["vocabulary"]
    requests = [(p, i) for i in vocabulary["instruments"] for p in vocabulary["pitches"]]
    seconds = FRAMES * audio_config.hop_length / audio_config.sample_rate
    stats = [metrics.pitch_statistics(generate(model, 1, seconds, seed + k, audio_config, mode="condition", pitch=pitch,
                                               instrument=instrument)[0], audio_config.sample_rate, pitch, tolerance_cents)
             for k, (pitch, instrument) in enumerate(requests)]
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
"""At most this many held-out images (evenly spread over val and test) are scored by :func:`heldout_scores`."""
PCA_IMAGES = 1024
"""At most this many training images (evenly spread) fit the PCA baseline."""


def heldout_scores(model: SpectrogramVAE, dataset, model_config: dict) -> dict:
    """Held-out reconstruction L1 beside PCA with as many components as the latent; a CVAE adds :func:`pitch_accuracy`."""
    from musiclib.baselines import PCABaseline

    train = model_clips(dataset, "train", FRAMES)
    val, test = (model_clips(dataset, split, FRAMES, train.normalizer) for split in ("val", "test"))
    labels, condition = dataset.labels("val") + dataset.labels("test"), None
    keep = np.ones(len(val) + len(test), dtype=bool)
    if model.condition_size:
        keep = np.array([int(l["pitch"]) in model_config["vocabulary"]["pitches"] for l in labels], dtype=bool)
    # A bounded number of images, evenly spread and read alone, however large the data: memory does not grow with it.
    kept = np.flatnonzero(keep)
    kept = kept[evenly_spaced(len(kept), HELDOUT_IMAGES)]
    held = np.concatenate([val.read(kept[kept < len(val)]), test.read(kept[kept >= len(val)] - len(val))])[..., :FRAMES]
    if model.condition_size:
        condition = one_hot([labels[i] for i in kept], model_config["vocabulary"])
    pca = PCABaseline(model.latent_size).fit(train.read(evenly_spaced(len(train), PCA_IMAGES))[..., :FRAMES])
    scores = {"reconstruction_l1": reconstruction_l1(model, held, condition=condition),
              "pca_reconstruction_l1": reconstruction_l1(model, held, pca.reconstruct(held)),
              "n_heldout": len(held)}
    if model.condition_size:
        scores["pitch_accuracy"] = pitch_accuracy(model, dataset.config, heard=heard_pairs(dataset))
    return scores


AE_SPEC = register(ModelSpec("ae", "convolutional autoencoder on log-mel images (cannot sample: no prior)",
                             lambda fast: default_config(fast, variational=False), build, training_arrays, loss, generate,
                             prepare=prepare, heldout_scores=heldout_scores, accepts_vocoder=True, modes=MODES[:2],
                             family="autoencoder"))
SPEC = register(ModelSpec("vae", "variational autoencoder on log-mel images: sample the prior, continue, interpolate",
                          default_config, build, training_arrays, loss, generate, prepare=prepare, heldout_scores=heldout_scores, accepts_vocoder=True,
                          modes=MODES[:2], after_training=fit_prior, family="autoencoder",
                          gallery="Clips decoded from latent codes drawn from the prior the VAE fitted to its own codes, each "
                                  "next image a small step from the last. Listen for held tones in the chorales' range and "
                                  "for soft, blurred onsets: a VAE's images are smooth."))
CVAE_SPEC = register(ModelSpec("cvae", "conditional VAE on labelled notes: ask for a pitch and an instrument (--data notes)",
                               lambda fast: default_config(fast, conditional=True), build, training_arrays, loss, generate,
                               prepare=prepare, heldout_scores=heldout_scores, accepts_vocoder=True, modes=MODES,
                               family="autoencoder", data="notes"))
