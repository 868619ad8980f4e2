"""The Keras side of the training infrastructure: the same guarantees through Keras callbacks.

``callbacks(run_dir)`` gives a model checkpoint (``model.keras``, written by Keras
then kept as the latest), ``BackupAndRestore`` (an interrupted ``fit`` resumes at
the epoch it reached) and a progress logger. The audio configuration is written
beside them so a Keras run carries it like a PyTorch one. ``mirrored_strategy()``
trains one Keras model on several devices of one machine (data parallel, in one process).

Notebook: 06_lstm_fft_blocks.ipynb
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from musiclib.config import AudioConfig

# Imported before keras, these keep TensorFlow's start-up log out of notebooks and test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def callbacks(run_dir: str | Path, audio_config: AudioConfig, model_config: dict | None = None, progress: bool = True) -> list:
    """Checkpoint, backup-and-restore and progress callbacks for ``model.fit`` in ``run_dir``.

    Args:
        run_dir: Run folder; ``model.keras``, ``backup/`` and ``config.json`` go there.
        audio_config: Stored as ``config.json`` beside the checkpoint.
        model_config: Model settings, stored with it.
        progress: Print a per-epoch progress line (Keras' own bar is left to ``verbose``).
    """
    import keras

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"framework": "keras", "audio_config": audio_config.to_dict(),
                                                     "model_config": model_config or {}}, indent=1) + "\n")
    result = [
        keras.callbacks.ModelCheckpoint(str(run_dir / "model.keras"), save_best_only=False),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
    ]
    if progress:
        result.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()), flush=True)))
    return result


def load_model(run_dir: str | Path):
    """The last checkpointed Keras model of a run folder."""
    import keras

    path = Path(run_dir) / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no Keras checkpoint; train with musiclib.keras_training.callbacks first.")
    return keras.models.load_model(path)


def mirrored_strategy(cpu_devices: int = 2):
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs, or, without one, over ``cpu_devices`` logical CPUs.

    Build and compile the model inside ``with strategy.scope():``; ``fit`` then splits each batch
    between the devices and sums their gradients (a deterministic model trains to the weights of one
    device, tested). One process only: Keras' multi-worker strategy is broken since TensorFlow 2.16
    (keras-team/keras#20585), so several machines are PyTorch's (``torchrun``). Logical CPUs are fixed
    when TensorFlow starts: call this first, in a fresh kernel.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    try:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    except RuntimeError as err:
        if len(tf.config.list_logical_devices("CPU")) != cpu_devices:
            raise RuntimeError(f"TensorFlow has already started with {len(tf.config.list_logical_devices('CPU'))} CPU "
                               f"device(s); call mirrored_strategy({cpu_devices}) first, in a fresh kernel.") from err
    return tf.distribute.MirroredStrategy([f"/cpu:{index}" for index in range(cpu_devices)])
