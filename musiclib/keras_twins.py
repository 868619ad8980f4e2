"""The Keras twins: four of the course's PyTorch models built again in Keras 3, layer for layer.

Each twin has its model's layers and parameter count; weights copied across (Keras → PyTorch) give the same
outputs, which the tests and notebooks check. The seeds were written in Keras: the twins show one model in two
frameworks. (The PyTorch models are the ones ``musiclib train`` trains; :mod:`musiclib.keras_training` has the
Keras callbacks.)

- the VAE of notebook 10: :func:`vae_parts` (encoder and decoder), :func:`trainable_vae` (with its KL term);
- the GRUV LSTM of notebook 06: :func:`gruv`, :func:`copy_gruv`;
- the sample LSTM of notebook 07: :func:`sample_lstm`, :func:`copy_sample_lstm`;
- the token prior of notebook 12: :func:`token_prior`, :func:`copy_token_prior`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from musiclib.models.gruv_lstm import GRUV
from musiclib.models.layers import copy_dense, copy_lstm
from musiclib.models.sample_lstm import LEAKY_SLOPE, SampleLSTM
from musiclib.models.token_transformer import TokenPrior
from musiclib.models.vae import FRAMES


def vae_parts(n_mels: int = 80, width: int = 16, latent_size: int = 16, variational: bool = True, condition_size: int = 0):
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


def trainable_vae(n_mels: int = 80, width: int = 16, latent_size: int = 16, beta: float = 1.0, seed: int = 0):
    """A trainable Keras VAE: image ``(n_mels, 64, 1)`` → reconstruction, with the PyTorch loss.

    The encoder and decoder are :func:`vae_parts`'s; between them a sampling layer draws
    ``z = mu + sigma * eps`` and adds ``beta`` × KL per pixel with ``add_loss``, so that
    ``model.compile(loss="mse")`` and ``model.fit(x, x)`` optimise exactly :meth:`VAE.loss <musiclib.models.vae.VAE.loss>`.
    Returns ``(vae, encoder, decoder)``.
    """
    import keras

    encoder, decoder = vae_parts(n_mels, width, latent_size, variational=True)
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


def gruv(feature_size: int, hidden_size: int):
    """The same model in Keras 3, as the seed wrote it (TimeDistributed Dense → LSTM → TimeDistributed Dense)."""
    import keras

    return keras.Sequential([
        keras.Input((None, feature_size)),
        keras.layers.TimeDistributed(keras.layers.Dense(hidden_size)),
        keras.layers.LSTM(hidden_size, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(feature_size)),
    ], name="gruv_lstm")


def copy_gruv(model: GRUV, keras_model) -> GRUV:
    """Copy a :func:`gruv` model's weights into ``model`` (same outputs afterwards)."""
    encode, lstm, decode = keras_model.layers
    copy_dense(encode.layer, model.encode)
    copy_lstm(lstm, model.lstm)
    copy_dense(decode.layer, model.decode)
    return model


def sample_lstm(look_back: int = 3, hidden_size: int = 100, dense_sizes=(50, 25, 12), output_activation: str = "leaky_relu"):
    """The same model in Keras 3, input ``(batch, 1, look_back)`` as in the seed."""
    import keras

    layers = [keras.Input((1, look_back)), keras.layers.LSTM(hidden_size)]
    layers += [keras.layers.Dense(size, activation="relu") for size in dense_sizes]
    layers.append(keras.layers.Dense(1, activation="relu" if output_activation == "relu" else None))
    if output_activation == "leaky_relu":
        layers.append(keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE))
    return keras.Sequential(layers, name="sample_lstm")


def copy_sample_lstm(model: SampleLSTM, keras_model) -> SampleLSTM:
    """Copy a :func:`sample_lstm` model's weights into ``model`` (same outputs afterwards)."""
    import keras

    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    linear = [layer for layer in model.head if isinstance(layer, torch.nn.Linear)]
    copy_lstm(keras_model.layers[0], model.lstm)
    for source, target in zip(dense, linear, strict=True):
        copy_dense(source, target)
    return model


def token_prior(codebook_size: int, n_codebooks: int = 1, context: int = 64, d_model: int = 128, heads: int = 4,
                layers: int = 2):
    """A Keras model ``(B, T, Q)`` int tokens → ``(B, T, Q, codebook_size)`` logits with :class:`TokenPrior`'s layers
    (no dropout)."""
    import keras
    from keras import ops

    class TokenAndPosition(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.tokens = [keras.layers.Embedding(codebook_size + 1, d_model, name=f"token_embedding_{q}")
                           for q in range(n_codebooks)]
            self.positions = keras.layers.Embedding(context, d_model, name="position_embedding")

        def call(self, tokens):
            embedded = sum(embedding(tokens[..., q]) for q, embedding in enumerate(self.tokens))
            return embedded + self.positions(ops.arange(ops.shape(tokens)[1]))[None]

    class CausalAttention(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.query, self.key, self.value, self.out = (keras.layers.Dense(d_model, name=name) for name in ("query", "key", "value", "out"))

        def call(self, x):
            length = ops.shape(x)[1]

            def split(t):
                return ops.transpose(ops.reshape(t, (-1, length, heads, d_model // heads)), (0, 2, 1, 3))

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(d_model // heads)
            future = ops.triu(ops.ones((length, length), dtype="bool"), k=1)
            weights = ops.softmax(ops.where(future, float("-inf"), scores), axis=-1)
            y = ops.reshape(ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3)), (-1, length, d_model))
            return self.out(y)

    tokens = keras.Input((None, n_codebooks), dtype="int32")
    x = TokenAndPosition(name="embedding")(tokens)
    for i in range(layers):
        x = x + CausalAttention(name=f"attention_{i}")(keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm1_{i}")(x))
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm2_{i}")(x)
        h = keras.layers.Dense(4 * d_model, activation="gelu", name=f"mlp_in_{i}")(h)
        x = x + keras.layers.Dense(d_model, name=f"mlp_out_{i}")(h)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")(x)
    logits = keras.layers.Dense(n_codebooks * codebook_size, name="head")(x)
    return keras.Model(tokens, keras.layers.Reshape((-1, n_codebooks, codebook_size))(logits), name="token_prior")


@torch.no_grad()
def copy_token_prior(keras_model, prior: TokenPrior) -> None:
    """Copy :func:`vae_parts`'s weights into a :class:`TokenPrior` of the same size."""
    def norm(layer, torch_norm):
        gamma, beta = layer.get_weights()
        torch_norm.weight.copy_(torch.from_numpy(gamma))
        torch_norm.bias.copy_(torch.from_numpy(beta))

    embedding = keras_model.get_layer("embedding")
    for keras_embedding, torch_embedding in zip(embedding.tokens, prior.token_embeddings, strict=True):
        torch_embedding.weight.copy_(torch.from_numpy(np.asarray(keras_embedding.embeddings)))
    prior.position_embedding.weight.copy_(torch.from_numpy(np.asarray(embedding.positions.embeddings)))
    for i, block in enumerate(prior.blocks):
        norm(keras_model.get_layer(f"norm1_{i}"), block.norm1)
        norm(keras_model.get_layer(f"norm2_{i}"), block.norm2)
        attention = keras_model.get_layer(f"attention_{i}")
        for name in ("query", "key", "value", "out"):
            copy_dense(getattr(attention, name), getattr(block.attention, name))
        copy_dense(keras_model.get_layer(f"mlp_in_{i}"), block.mlp[0])
        copy_dense(keras_model.get_layer(f"mlp_out_{i}"), block.mlp[2])
    norm(keras_model.get_layer("norm"), prior.norm)
    copy_dense(keras_model.get_layer("head"), prior.head)
