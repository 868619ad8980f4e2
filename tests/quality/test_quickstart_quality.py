"""`musiclib quickstart` on recordings no test trains on: within its budget, and closer to them than noise.

The recordings are string-quartet movements by Mozart and Haydn played by the SoundFont
(:func:`musiclib.datasets.bundled.write_example_recordings`), in flac, ogg and wav files at 44.1 kHz:
none of the bundled sets holds them. CI runs a 3-minute budget on two seeds;
``benchmarks/quickstart.py`` measures the 10-minute budget a user would give.
"""
import time

import pytest

from musiclib.datasets import bundled
from musiclib.quickstart import DISTANCES, quickstart

MINUTES = 3.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    return bundled.write_example_recordings(tmp_path_factory.mktemp("recordings") / "music", n_files=16, seconds=20.0)[0].parents[1]


@pytest.mark.parametrize("seed", (0, 1))
def test_quickstart_stays_in_its_budget_and_beats_noise_on_every_distance(recordings, tmp_path, seed):
    started = time.monotonic()
    summary = quickstart(recordings, tmp_path / "out", minutes=MINUTES, seed=seed, started=started)
    wall = time.monotonic() - started
    print(f"seed {seed}: {summary['model']} for {summary['steps']} steps, {wall:.0f} s of {60 * MINUTES:.0f}; margins over noise "
          + ", ".join(f"{key} {value:+.3g}" for key, value in summary["margins"].items()))
    assert wall <= 60 * MINUTES
    assert all(summary["margins"][key] > 0 for key in DISTANCES), summary["scores"]
