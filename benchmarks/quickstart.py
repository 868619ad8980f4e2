"""`musiclib quickstart SRC OUT --minutes 10` as a user runs it, on recordings no model was trained on.

Writes string-quartet movements by Mozart and Haydn played by the SoundFont
(:func:`musiclib.datasets.bundled.write_example_recordings`: flac, ogg and wav at 44.1 kHz, in
one folder per composer), runs the real command with a fresh data cache, and prints its wall time
against the budget (goal: at most the budget, on 2 CPU cores after the install) and each distance's
margin over noise (goal: positive on every one).

Usage: python benchmarks/quickstart.py [--minutes 10] [--files 16] [--seconds 30] [--threads 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from musiclib.datasets import bundled


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=16, help="recordings (one movement each)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of each recording")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    musiclib = shutil.which("musiclib")
    if musiclib is None:
        raise SystemExit("the `musiclib` command is not on PATH: install it with `make setup` and put .venv/bin on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "my music")
        files = bundled.write_example_recordings(src, args.files, args.seconds)
        print(f"{len(files)} recordings of {args.seconds:g} s in {src}; budget {args.minutes:g} min; {args.threads} CPU threads")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
               "MUSICLIB_CACHE": str(Path(tmp, "cache"))}
        env.pop("MUSICLIB_FAST", None)
        started = time.perf_counter()
        subprocess.run([musiclib, "quickstart", str(src), str(Path(tmp, "out")), "--minutes", str(args.minutes)], env=env,
                       check=True, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        summary = json.loads(Path(tmp, "out", "summary.json").read_text())
    print(f"\nwall time {wall:.0f} s of {60 * args.minutes:.0f} ({wall / (60 * args.minutes):.3f} of the budget); "
          f"{summary['model']} trained {summary['steps']} steps")
    for key, margin in summary["margins"].items():
        print(f"  {key}: generated {summary['scores']['generated'][key]:.4g}, noise {summary['scores']['white_noise'][key]:.4g}, "
              f"margin {margin:+.4g}, your other held-out music {summary['scores']['your_music'][key]:.4g}")


if __name__ == "__main__":
    main()
