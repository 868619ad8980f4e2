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
