"""Training to a wall-clock budget (``musiclib train --minutes``): how many steps fit, and the record of each session.

:func:`plan` measures a model's step time on a throwaway copy and plans the steps (and four checkpoints, and the
work after the last step) that fit before a deadline; the :class:`~musiclib.training.Trainer` then plans again from
the measured pace at every checkpoint and stops cleanly at the deadline whatever the estimate said.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from musiclib import training
from musiclib.training import Trainer, TrainConfig
from musiclib.utils import write_text_atomically

RECORD = "budget.json"
"""A run folder's record of its time-budgeted sessions."""

CALIBRATION_SECONDS = 5.0
"""At most this long (and at most 2 % of a budget) is spent measuring the step time before a budgeted run."""


def plan(model, dataset, train_array, val_array, config: TrainConfig, preview: Callable[[object], None], deadline: float,
         start_step: int, minutes: float) -> dict:
    """How many steps fit before ``deadline``, measured on ``model`` (which this trains: restore it afterwards).

    Measures one training step (in each regime a model has, e.g. a warm-up and an adversarial game, weighted by their
    share of the steps still to take), one checkpoint (validation, ``preview(model)``, the write) and the work after the
    last step (``model.finish``, a last checkpoint); plans the run's four checkpoints (or its ``checkpoint_every``)
    and that work into the budget.

    Raises:
        ValueError: when the budget does not hold even one step, naming the minutes that would.
    """
    probe = Trainer(model, train_array, ".", config, dataset.config, {}, val_array)
    end = max(config.steps, start_step + 1)
    positions = np.linspace(start_step, end - 1, 8).round().astype(int)
    regimes = [tuple(model.active_phases(int(step))) for step in positions]
    calibration = min(CALIBRATION_SECONDS, 0.02 * (deadline - training.clock())) / len(set(regimes))
    regime_seconds = {}
    for regime, step in zip(regimes, positions):
        if regime not in regime_seconds:
            probe.step = int(step)
            regime_seconds[regime] = probe.seconds_per_step(calibration)
    seconds_per_step = float(np.mean([regime_seconds[regime] for regime in regimes]))
    tick = training.clock()
    probe.validate()
    preview(probe.model)
    torch.save(probe.state(), io.BytesIO())
    seconds_per_checkpoint = training.clock() - tick
    tick = training.clock()
    if model.fits_after_training():
        model.finish(dataset)
    seconds_to_finish = training.clock() - tick + seconds_per_checkpoint
    # 3 % of what is left is kept free: a step's time varies, and a run that ends by its plan is a whole run.
    available = 0.97 * (deadline - training.clock() - seconds_to_finish)
    if model.settings.checkpoint_every:
        n_steps = int(available / (seconds_per_step + seconds_per_checkpoint / model.settings.checkpoint_every))
    else:
        n_steps = int((available - 4 * seconds_per_checkpoint) / seconds_per_step)
    if n_steps < 1:
        needed = (training.clock() - (deadline - 60 * minutes) + seconds_to_finish + 4 * seconds_per_checkpoint
                  + 10 * seconds_per_step) / 60
        raise ValueError(f"--minutes {minutes:g}: too short to train {model.name} here (one step takes {seconds_per_step:.2f} s, "
                         f"one checkpoint {seconds_per_checkpoint:.1f} s); give at least {max(needed, 0.1):.1f} minutes.")
    return {"minutes": minutes, "from_step": start_step, "planned_steps": start_step + n_steps,
            "seconds_per_step": round(seconds_per_step, 4), "seconds_per_checkpoint": round(seconds_per_checkpoint, 3),
            "seconds_to_finish": round(seconds_to_finish, 3)}


def record(run_dir: Path, session: dict) -> None:
    """Add one budgeted session to a run folder's :data:`RECORD`."""
    path = Path(run_dir) / RECORD
    write_text_atomically(path, json.dumps([*sessions(run_dir), session], indent=1) + "\n")


def sessions(run_dir: str | Path) -> list[dict]:
    """A run's time-budgeted sessions (``musiclib train --minutes``), oldest first; empty if it never had one."""
    path = Path(run_dir) / RECORD
    return json.loads(path.read_text()) if path.exists() else []
