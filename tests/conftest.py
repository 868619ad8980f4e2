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


class SimulatedTime:
    """A clock that stands still except when a training step runs: each step takes ``step_seconds``.

    It replaces ``musiclib.training.clock`` (what time budgets are measured with), so budgeted runs plan
    and stop the same way on any machine. After ``slow_from`` steps (counted from its start), each step takes
    ``slow_seconds`` instead.
    """

    def __init__(self, monkeypatch, step_seconds: float):
        from musiclib import training

        self.now, self.step_seconds, self.steps = 1000.0, step_seconds, 0
        self.slow_from, self.slow_seconds = None, step_seconds
        monkeypatch.setattr(training, "clock", lambda: self.now)
        real_step = training.Trainer.train_step

        def timed_step(trainer):
            self.steps += 1
            slow = self.slow_from is not None and self.steps > self.slow_from
            self.now += self.slow_seconds if slow else self.step_seconds
            return real_step(trainer)

        monkeypatch.setattr(training.Trainer, "train_step", timed_step)


@pytest.fixture
def simulated_time(monkeypatch):
    """``simulated_time(step_seconds)`` → a :class:`SimulatedTime` installed for this test."""
    return lambda step_seconds: SimulatedTime(monkeypatch, step_seconds)
