import pytest
import numpy as np

from musiclib import AudioConfig, keras_training, set_seed


def _model():
    import keras

    set_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)])
    model.compile(optimizer="rmsprop", loss="mse")
    return model


@pytest.mark.tensorflow
def test_keras_callbacks_checkpoint_and_resume(tmp_path):
    import keras

    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated crash")

    cbs = keras_training.callbacks(tmp_path, AudioConfig(), {"hidden": 8}, progress=False)
    model = _model()
    try:
        model.fit(x, x, epochs=4, batch_size=16, verbose=0, callbacks=cbs + [StopAfter()])
    except KeyboardInterrupt:
        pass
    assert (tmp_path / "model.keras").exists() and (tmp_path / "backup").exists()
    resumed = _model()
    history = resumed.fit(x, x, epochs=4, batch_size=16, verbose=0, callbacks=keras_training.callbacks(tmp_path, AudioConfig(), progress=False))
    assert len(history.history["loss"]) == 2, "BackupAndRestore resumes at epoch 3 of 4"
    loaded = keras_training.load_model(tmp_path)
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), resumed.predict(x[:4], verbose=0), atol=1e-6)


MIRRORED = """
import numpy as np
from musiclib import keras_training
strategy = keras_training.mirrored_strategy(2)
import keras
from musiclib.keras_twins import trainable_vae, vae_parts

x = np.random.default_rng(0).standard_normal((32, 16, 64, 1)).astype("float32")

def train(strategy, variational):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        if variational:
            model = trainable_vae(n_mels=16, width=4, latent_size=4)[0]
        else:
            encoder, decoder = vae_parts(n_mels=16, width=4, latent_size=4, variational=False)
            image = keras.Input((16, 64, 1))
            model = keras.Model(image, decoder(encoder(image)))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    losses = model.fit(x, x, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    return [np.asarray(w) for w in model.weights], losses

import tensorflow as tf
assert strategy.num_replicas_in_sync == 2
one, _ = train(tf.distribute.OneDeviceStrategy("/cpu:0"), variational=False)
two, _ = train(strategy, variational=False)
print("autoencoder", max(float(np.abs(a - b).max()) for a, b in zip(one, two)))
_, losses = train(strategy, variational=True)
print("vae", losses[0], losses[-1])
"""


@pytest.mark.tensorflow
def test_mirrored_strategy_over_two_cpus_trains_like_one_device():
    """Keras side of distributed training: MirroredStrategy splits each batch over two logical CPUs (a fresh process:
    logical devices are fixed when TensorFlow starts). A deterministic autoencoder ends with the weights of one
    device; the VAE (its noise is drawn per device) trains to finite, falling losses."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("autoencoder", "vae")))
    assert float(lines["autoencoder"]) < 1e-6
    first, last = map(float, lines["vae"].split())
    assert np.isfinite(last) and last < first
