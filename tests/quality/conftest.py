"""The quality tier: every test here trains a real model and is marked `quality`."""
import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/quality/" in str(item.fspath):
            item.add_marker(pytest.mark.quality)
