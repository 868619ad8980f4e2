"""Shared test set-up: TensorFlow tests skip (with the reason) where TensorFlow is not installed."""
import importlib.util
import os

import pytest

# TensorFlow prints its start-up chatter unless told before it is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def pytest_configure(config):
    config.addinivalue_line("markers", "tensorflow: needs TensorFlow/Keras (skipped where it is not installed)")
    config.addinivalue_line("markers", "quality: trains real models to a quality bar over several seeds (`make test-quality`)")


def pytest_collection_modifyitems(config, items):
    if HAS_TENSORFLOW:
        return
    skip = pytest.mark.skip(reason="TensorFlow is not installed: pip install 'musiclib[tf-cpu]' (or [tf]) to run the Keras twins")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(skip)
