"""Peak memory of `musiclib evaluate` as the dataset grows tenfold: it must stay flat.

Builds two synthetic datasets (chords in noise, 1-s clips) whose training splits differ
tenfold, trains the spectral-noise model for a few steps on each, then runs `musiclib
evaluate` on each in a fresh process and reads its peak resident memory
(``ru_maxrss`` of the child). Prints both peaks and their ratio; the goal is a ratio
within 1.2 (evaluate reads a fixed budget of clips, not the split).

Usage: python benchmarks/evaluate_memory.py [--clips 300] [--factor 10]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from musiclib import AudioConfig, signals
from musiclib.datasets import DatasetWriter

GOAL_RATIO = 1.2


def build(root: Path, n_train: int) -> Path:
    writer = DatasetWriter(root, AudioConfig(), clip_seconds=1.0, description="synthetic chords for the memory benchmark")
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", max(8, n_train // 10)), ("test", max(8, n_train // 10))):
        for start in range(0, n, 50):
            clips = [signals.chord(notes=tuple(int(p) for p in rng.integers(48, 72, 3)), seconds=1.0, sample_rate=22050,
                                   seed=int(rng.integers(1 << 30))) * 0.3 for _ in range(min(50, n - start))]
            writer.add(split, np.stack(clips).astype(np.float32), f"{split}_{start}")
    return writer.finish().root


PEAK_OF_ONE_COMMAND = ("import resource, sys\nfrom musiclib import cli\nassert cli.main(sys.argv[1:]) == 0\n"
                       "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def peak_mb(arguments: list[str], env: dict) -> float:
    """Peak resident memory of one `musiclib` command, measured inside its own process."""
    process = subprocess.run([sys.executable, "-c", PEAK_OF_ONE_COMMAND, *arguments], env=env, capture_output=True, text=True)
    if process.returncode:
        sys.exit(process.stderr)
    return int(process.stdout.split("peak_kb")[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500, help="training clips of the small dataset (at least the budget of runs.TRAIN_REFERENCE)")
    parser.add_argument("--factor", type=int, default=10, help="how many times larger the big one is")
    args = parser.parse_args()
    env = {**os.environ, "MUSICLIB_FAST": "1", "OMP_NUM_THREADS": "2"}
    musiclib = [sys.executable, "-m", "musiclib"]
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.clips, args.clips * args.factor):
            data = build(Path(tmp, f"data_{n}"), n)
            run = Path(tmp, f"run_{n}")
            subprocess.run(musiclib + ["train", "spectral-noise", "--data", str(data), "--out", str(run), "--steps", "5"],
                           env=env, check=True, capture_output=True)
            peaks[n] = peak_mb(["evaluate", str(run)], env)
            print(f"evaluate, {n:>5} training clips: peak {peaks[n]:.0f} MB")
    small, big = peaks.values()
    print(f"ratio {big / small:.2f} (goal <= {GOAL_RATIO}): {'met' if big / small <= GOAL_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
