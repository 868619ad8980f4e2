"""Peak memory of `prepare`, `train` and `evaluate` as a folder of music grows sixfold: it must stay flat.

Writes two folders of 30-s wav files (chords that change every second, 22,050 Hz): 20 minutes
and 2 hours. On each it runs `musiclib prepare --workers 2`, `musiclib train vae` (the fast
recipe's settings, a few steps: the data's spectrograms are computed and cached in full) and
`musiclib evaluate`, each in a fresh process, and reads the peak resident memory of the
command and of its largest child process (``ru_maxrss``). The goal: every command's peak
within 1.2 times its peak on the small folder.

Usage: python benchmarks/stream_memory.py [--minutes 20] [--factor 6] [--steps 20]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

GOAL_RATIO = 1.2
SAMPLE_RATE = 22050
FILE_SECONDS = 30

PEAK_OF_ONE_COMMAND = ("import resource, sys\nfrom musiclib import cli\nassert cli.main(sys.argv[1:]) == 0\n"
                       "print('peak_kb', max(resource.getrusage(who).ru_maxrss for who in "
                       "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))")


def write_folder(folder: Path, minutes: float) -> None:
    """``minutes`` of chords in 30-s wav files: three partials per note, a new chord every second."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    fade = np.minimum(1, np.minimum(t, t[::-1]) * 50)
    for index in range(int(round(minutes * 60 / FILE_SECONDS))):
        seconds = []
        for _ in range(FILE_SECONDS):
            notes = 440 * 2 ** ((rng.integers(45, 75, 3) - 69) / 12)
            chord = sum(np.sin(2 * np.pi * k * f * t) / k for f in notes for k in (1, 2, 3))
            seconds.append(0.1 * fade * chord)
        sf.write(folder / f"piece_{index:04d}.wav", np.concatenate(seconds).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def peak_mb(arguments: list[str], env: dict) -> float:
    """Peak resident memory of one `musiclib` command (or of its largest child), measured inside its own process."""
    process = subprocess.run([sys.executable, "-c", PEAK_OF_ONE_COMMAND, *arguments], env=env, capture_output=True, text=True)
    if process.returncode:
        sys.exit(process.stderr[-3000:])
    return int(process.stdout.split("peak_kb")[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20, help="minutes of music in the small folder (default 20)")
    parser.add_argument("--factor", type=int, default=6, help="how many times larger the big one is (default 6)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    args = parser.parse_args()
    peaks: dict[str, list[float]] = {"prepare": [], "train": [], "evaluate": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MUSICLIB_FAST": "1", "OMP_NUM_THREADS": "2", "MUSICLIB_CACHE": str(Path(tmp, "cache"))}
        for minutes in (args.minutes, args.minutes * args.factor):
            music, data, run = (Path(tmp, f"{name}_{minutes:g}") for name in ("music", "data", "run"))
            write_folder(music, minutes)
            peaks["prepare"].append(peak_mb(["prepare", str(music), str(data), "--workers", "2"], env))
            peaks["train"].append(peak_mb(["train", "vae", "--data", str(data), "--out", str(run), "--steps", str(args.steps)], env))
            peaks["evaluate"].append(peak_mb(["evaluate", str(run), "--n-clips", "16"], env))
            print(f"{minutes:g} minutes of music: " + ", ".join(f"{name} {values[-1]:.0f} MB" for name, values in peaks.items()),
                  flush=True)
    for name, (small, big) in peaks.items():
        ratio = big / small
        print(f"{name:<8} {small:6.0f} MB → {big:6.0f} MB: ratio {ratio:.2f} (goal <= {GOAL_RATIO}): "
              f"{'met' if ratio <= GOAL_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
