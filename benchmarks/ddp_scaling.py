"""Steps per second of `musiclib train` with one process and with several (DistributedDataParallel), same global batch.

Each model trains its fast recipe on the bundled chorales for at least ``--steps`` steps (more for a
fast model, until the loop takes ``--seconds``), once in one process (every core's threads) and once
with ``--nproc N`` (torchrun, the cores shared out), at the same steps and global batch.
The rate is the steps over the training loop's own seconds (``history.json``: start-up, data
preparation and the last checkpoint are left out). The table goes into ``docs/results.json``
under ``"scaling"`` and into ``docs/results.md`` (``musiclib compare`` keeps it).

Usage: python benchmarks/ddp_scaling.py [--models gruv vae ...] [--steps 24] [--seconds 10] [--nproc 2] [--no-write]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from musiclib import report, runs

MODELS = ("gruv", "sample-lstm", "dcgan", "vae", "vq", "melgan")
SETTINGS = {"melgan": {"warmup_steps": 0}}  # the adversarial game, its costlier regime, from the first step
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.json"


def loop_seconds(model: str, steps: int, nproc: int, folder: Path) -> float:
    """Seconds of the training loop of ``steps`` steps (a fresh run each time)."""
    run = folder / f"{model}_{nproc}_{steps}"
    command = [sys.executable, "-m", "musiclib", "train", model, "--steps", str(steps), "--out", str(run),
               "--set", json.dumps({"checkpoint_every": steps, **SETTINGS.get(model, {})})]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    env = {**os.environ, "MUSICLIB_FAST": "1", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    if process.returncode:
        sys.exit(f"{model} with {nproc} process(es) failed:\n{process.stderr[-3000:]}")
    return runs.history(run)[-1]["train_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=24, help="steps at least (default 24)")
    parser.add_argument("--seconds", type=float, default=10.0, help="training loop time at least, in one process (default 10)")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            steps, seconds = args.steps, loop_seconds(model, args.steps, 1, Path(tmp))
            if seconds < args.seconds:  # too short to time: more steps
                steps = int(args.steps * args.seconds / max(seconds, 0.01)) + 1
                seconds = loop_seconds(model, steps, 1, Path(tmp))
            one, several = steps / seconds, steps / loop_seconds(model, steps, args.nproc, Path(tmp))
            batch = runs.models.get(model).Settings().batch_size
            rows.append({"model": model, "settings": SETTINGS.get(model, {}), "batch_size": batch, "steps": steps,
                         "one": one, "several": several})
            print(f"{model:<12} batch {batch:>4}: {one:7.2f} steps/s in 1 process, {several:7.2f} in {args.nproc} "
                  f"({several / one:.2f}x)", flush=True)
    scaling = {"command": "python benchmarks/ddp_scaling.py" + (f" --steps {args.steps}" if args.steps != 24 else ""),
               "date": datetime.date.today().isoformat(), "minutes": round((time.time() - started) / 60, 1),
               "cores": os.cpu_count(), "nproc": args.nproc, "rows": rows}
    if args.no_write:
        return
    results = json.loads(RESULTS.read_text())
    command = results.pop("command")
    results["scaling"] = scaling
    report.write(results, RESULTS.with_suffix(".md"), command=command)
    print(f"wrote the table into {RESULTS.with_suffix('.md')} and {RESULTS.name}")


if __name__ == "__main__":
    main()
