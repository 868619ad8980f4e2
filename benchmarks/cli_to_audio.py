"""From nothing to audible output with the CLI's tiny configs: `musiclib train` then `musiclib generate`.

Runs the real commands (``MUSICLIB_FAST=1``: the tiny configuration; the CVAE with 600
steps) in a temporary folder, with an empty data cache by default so that building the
bundled data counts too, and prints each step's wall time, the total against its goal (2 CPU
cores: 120 s on a bundled set; 180 s from a user's folder, ``musiclib prepare`` included), and
the loudness of the file written (audible: RMS above -40 dBFS). The user's folder
(``note-transformer-own``) holds 4 files, 3 minutes in all, of string quartets no model here has
heard (:func:`musiclib.datasets.bundled.write_example_recordings`, written before the clock starts).

Usage: python benchmarks/cli_to_audio.py [--models vae,cvae,vq,token-transformer,flow,note-transformer,note-transformer-own]
       [--threads 2] [--warm-cache]
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from musiclib import audio, baselines
from musiclib.datasets import bundled

GOAL_SECONDS = 120.0
OWN_FOLDER_GOAL_SECONDS = 180.0
OWN = "{own}"
"""Stands for the prepared dataset of the user's folder in a pipeline's arguments."""
AUDIBLE_DBFS = -40.0
PIPELINES = {
    "vae": (["train", "vae", "--data", "chorales"], ["--mode", "autonomous", "--seconds", "4"]),
    # 600 of the CVAE's 1,000 fast steps: about 83 % of its notes at the requested pitch instead of 87 %.
    "cvae": (["train", "cvae", "--data", "notes", "--steps", "600"], ["--mode", "condition", "--pitch", "60", "--instrument", "organ", "--seconds", "1"]),
    "vq": (["train", "vq", "--data", "chorales"], ["--seconds", "4"]),
    # Trains its own tokenizer first (a whole vq run), then the transformer.
    "token-transformer": (["train", "token-transformer", "--data", "chorales"], ["--mode", "continue", "--seconds", "4"]),
    # Trains its own codec first (a whole codec run), then the flow.
    "flow": (["train", "flow", "--data", "chorales"], ["--mode", "continue", "--seconds", "4"]),
    # Transcribes the chorales with the transcriber trained once per machine (in the timing on an empty cache).
    "note-transformer": (["train", "note-transformer", "--data", "chorales"], ["--mode", "continue", "--seconds", "4"]),
    # A user's folder: prepared, transcribed by the transcriber trained once per machine, learned, continued.
    "note-transformer-own": (["train", "note-transformer", "--data", OWN], ["--mode", "continue", "--seconds", "4"]),
}


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PIPELINES), help=f"comma-separated, from {sorted(PIPELINES)}")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the goal assumes 2)")
    parser.add_argument("--warm-cache", action="store_true", help="use the existing data cache instead of building the data")
    args = parser.parse_args()
    musiclib = shutil.which("musiclib")
    if musiclib is None:
        raise SystemExit("the `musiclib` command is not on PATH: install it with `make setup` and put .venv/bin on PATH")

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MUSICLIB_FAST": "1", "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        if not args.warm_cache:
            env["MUSICLIB_CACHE"] = str(Path(tmp, "cache"))
        print(f"{args.threads} CPU threads; data cache {'existing' if args.warm_cache else 'empty (built in the timing)'}")
        for name in args.models.split(","):
            train_args, generate_args = PIPELINES[name]
            run_dir, wav = Path(tmp, name), Path(tmp, f"{name}.wav")
            prepare_s, goal = 0.0, GOAL_SECONDS
            if OWN in train_args:
                own = Path(tmp, f"{name}-data")
                bundled.write_example_recordings(Path(tmp, f"{name}-music"), n_files=4, seconds=45.0)
                prepare_s = timed([musiclib, "prepare", str(Path(tmp, f"{name}-music")), str(own)], env)
                train_args, goal = [str(own) if arg == OWN else arg for arg in train_args], OWN_FOLDER_GOAL_SECONDS
            train_s = timed([musiclib, *train_args, "--out", str(run_dir)], env)
            generate_s = timed([musiclib, "generate", str(run_dir), "--out", str(wav), *generate_args], env)
            y, sample_rate = audio.load(wav)
            dbfs = 20 * np.log10(max(baselines.rms(y), 1e-12))
            total = prepare_s + train_s + generate_s
            print(f"{name:5s} " + (f"prepare {prepare_s:5.1f} s + " if prepare_s else "") + f"train {train_s:6.1f} s + "
                  f"generate {generate_s:5.1f} s = {total:6.1f} s ({total / goal:.2f} of the {goal:.0f}-s goal); "
                  f"output {len(y) / sample_rate:.1f} s at {dbfs:.1f} dBFS "
                  f"({'audible' if dbfs > AUDIBLE_DBFS else 'TOO QUIET'})")


if __name__ == "__main__":
    main()
