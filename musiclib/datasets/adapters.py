"""The same arrays as a PyTorch ``Dataset`` and as a ``tf.data`` pipeline.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import numpy as np


class ArrayDataset:
    """A ``torch.utils.data.Dataset`` over aligned arrays (memory maps welcome: rows are read on demand).

    Items are tuples of float32 tensors, one per array; a single array gives a single tensor.
    """

    def __init__(self, *arrays):
        import torch  # noqa: F401  (fail early with a clear ImportError)

        if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
            raise ValueError("give one or more arrays of the same length")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        import torch

        items = tuple(torch.from_numpy(np.array(a[index], dtype=np.float32)) for a in self.arrays)
        return items[0] if len(items) == 1 else items


def tf_dataset(*arrays, batch_size: int = 32, shuffle: bool = True, seed: int = 0):
    """A batched ``tf.data.Dataset`` yielding the rows of ``arrays`` (read lazily from memory maps)."""
    import tensorflow as tf

    n = len(arrays[0])
    signature = tuple(tf.TensorSpec(shape=a.shape[1:], dtype=tf.float32) for a in arrays)

    def rows():
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        for i in order:
            row = tuple(np.asarray(a[i], dtype=np.float32) for a in arrays)
            yield row if len(row) > 1 else row[0]

    spec = signature if len(arrays) > 1 else signature[0]
    return tf.data.Dataset.from_generator(rows, output_signature=spec).batch(batch_size).prefetch(tf.data.AUTOTUNE)
