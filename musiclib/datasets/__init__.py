"""Datasets: one on-disk format for every source (bundled, your own folder, NSynth, MAESTRO).

A dataset directory holds ``manifest.json`` (audio config, clip length, splits,
sources, checksums) and one memory-mappable ``clips_<split>.npy`` of shape
``(n_clips, clip_samples)`` per split, plus ``labels_<split>.json`` when the
clips are labelled. Model features (GRUV blocks, spectrograms) are derived from it.

Notebook: 05_data_pipeline.ipynb
"""
from musiclib.datasets.store import SPLITS, AudioDataset, DatasetError, DatasetWriter

__all__ = ["SPLITS", "AudioDataset", "DatasetError", "DatasetWriter"]
