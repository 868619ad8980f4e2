"""Is `musiclib train MODEL --minutes M` honoured? Every registered model, timed from outside the command.

Runs the real command (``MUSICLIB_FAST=1``: the tiny configurations and the fast bundled sets,
already in the data cache) for every registered model with the same budget, and prints the
command's wall time against the budget (goal: within 10 %), the steps it chose and took, and
whether the plan or the budget ended the run. The budget counts from the command's start, imports
included; the Python interpreter's own start (before musiclib is imported) is outside it.

Usage: python benchmarks/train_budget.py [--minutes 1] [--models vae,dcgan] [--threads 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from musiclib import models

GOAL = 0.10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--models", default=",".join(models.names()), help="comma-separated registered models (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    musiclib = shutil.which("musiclib")
    if musiclib is None:
        raise SystemExit("the `musiclib` command is not on PATH: install it with `make setup` and put .venv/bin on PATH")
    env = {**os.environ, "MUSICLIB_FAST": "1", "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    print(f"budget {args.minutes:g} min; {args.threads} CPU threads; goal: wall time within {GOAL:.0%} of the budget\n")
    print(f"{'model':<18} {'wall s':>7} {'/ budget':>8} {'steps':>7} {'s/step':>7}  ended by")
    misses = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            run = Path(tmp, name)
            command = [musiclib, "train", name, "--data", models.get(name).data, "--out", str(run), "--minutes", str(args.minutes)]
            started = time.perf_counter()
            result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                misses.append(name)
                print(f"{name:<18} {wall:7.1f}  failed: {result.stderr.strip().splitlines()[-1]}", flush=True)
                continue
            session = json.loads((run / "budget.json").read_text())[-1]
            ratio = wall / (60 * args.minutes)
            if abs(ratio - 1) > GOAL:
                misses.append(name)
            print(f"{name:<18} {wall:7.1f} {ratio:8.3f} {session['reached_step']:7d} {session['seconds_per_step']:7.3f}  {session['stopped_by']}",
                  flush=True)
    print(f"\n{'every model within the goal' if not misses else 'outside the goal: ' + ', '.join(misses)}")


if __name__ == "__main__":
    main()
