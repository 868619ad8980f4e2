"""The PyTorch training loop every model shares: seeded, resumable, with atomic checkpoints.

A checkpoint holds the model, the optimiser, the step, the RNG state, the audio
configuration and the model configuration, and loads with
``torch.load(weights_only=True)``. Batches follow a permutation derived from
``(seed, epoch)``, so a run resumed from a checkpoint ends with exactly the
weights of an uninterrupted one (on CPU).

Started by ``torchrun`` as several processes (:mod:`musiclib.distributed`), the same loop
trains with DistributedDataParallel: each rank takes its slice of the same global batch,
and rank 0 alone writes.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from musiclib import distributed
from musiclib.config import AudioConfig
from musiclib.datasets.store import take_rows
from musiclib.utils import get_device, progress_interval, set_seed, write_text_atomically

CHECKPOINT = "checkpoint.pt"


def clock() -> float:
    """Seconds on a monotonic clock: what time budgets are measured with (tests replace it to simulate time)."""
    return time.monotonic()


@dataclasses.dataclass
class TrainConfig:
    """How long and how to train.

    Attributes:
        steps: Optimiser steps in total (a resumed run continues up to this number).
        batch_size: Examples per step.
        learning_rate: The optimiser's step size.
        optimizer: ``"adam"`` (default) or ``"rmsprop"`` (what Keras-era seeds used).
        betas: Adam's ``(beta1, beta2)``; GANs use a small beta1 such as 0.5.
        seed: Seeds the weights, the batch order and any sampling.
        checkpoint_every: Steps between checkpoints (and validation).
        learning_rate_schedule: ``(from_step, factor)`` pairs: from ``from_step`` on, every optimiser
            steps at its own base rate times ``factor`` (e.g. ``((16000, 0.1), (22000, 0.01))``
            for two tenfold drops). Empty: constant rates.
        device: ``None`` picks CUDA → MPS → CPU.
        progress: Show a tqdm bar.
    """

    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    checkpoint_every: int = 50
    learning_rate_schedule: tuple[tuple[int, float], ...] = ()
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < float("inf")):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
        try:
            self.learning_rate_schedule = tuple(sorted((int(step), float(factor)) for step, factor in self.learning_rate_schedule))
        except (TypeError, ValueError) as err:
            raise ValueError(f"learning_rate_schedule {self.learning_rate_schedule!r}: give (from_step, factor) pairs, "
                             "e.g. [[16000, 0.1], [22000, 0.01]].") from err
        if any(step < 0 or not factor > 0 for step, factor in self.learning_rate_schedule):
            raise ValueError(f"learning_rate_schedule {self.learning_rate_schedule}: steps must be >= 0 and factors > 0.")

    def learning_rate_factor(self, step: int) -> float:
        """The factor on every base rate at ``step`` (1 before the schedule's first entry)."""
        factor = 1.0
        for start, value in self.learning_rate_schedule:
            if step >= start:
                factor = value
        return factor


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A checkpoint's state; a file that cannot be read raises ``ValueError`` naming it and the fix."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises several unrelated types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}); it is damaged or was not written by "
                         "musiclib. Delete it to train from the last good state, or use a new --out folder.") from err


def rng_states() -> dict:
    """The CPU (and, where there is one, every CUDA device's) random-number state, as CPU byte tensors."""
    states = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda_rng"] = [state.cpu() for state in torch.cuda.get_rng_state_all()]
    return states


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random stream: ``seed`` itself on rank 0 (so one process is unchanged)."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def restore_rng_states(state: dict) -> None:
    """Undo :func:`rng_states`. The states are moved back to the CPU first: ``torch.set_rng_state`` takes
    nothing else, and a checkpoint loaded with a device ``map_location`` holds them on that device."""
    torch.set_rng_state(state["torch_rng"].cpu())
    cuda = state.get("cuda_rng")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([rng.cpu() for rng in cuda])


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the batch used at ``step``: epoch ``e`` follows permutation ``rng(seed, e)``."""
    per_epoch = max(1, n // batch_size)
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[offset * batch_size : (offset + 1) * batch_size] if n >= batch_size else order


OPTIMIZERS = {
    "adam": lambda parameters, lr, betas: torch.optim.Adam(parameters, lr=lr, betas=tuple(betas)),
    "rmsprop": lambda parameters, lr, betas: torch.optim.RMSprop(parameters, lr=lr),
}


def make_optimizer(name: str, parameters, learning_rate: float, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](parameters, learning_rate, betas)


def n_examples(data) -> int:
    return len(data[0]) if isinstance(data, (tuple, list)) else len(data)


def rank_slice(indices: np.ndarray, world: distributed.World) -> np.ndarray:
    """Rank ``world.rank``'s equal, contiguous share of a global batch's sorted indices.

    The slices, concatenated in rank order, are the batch one process would take, so a loss that is a
    mean over examples has the same gradient (the mean of the ranks' means) at any number of processes.
    """
    indices = np.sort(indices)
    if len(indices) % world.size:
        raise ValueError(f"a batch of {len(indices)} examples does not split into {world.size} equal slices; "
                         f"use a number of processes that divides the batch size, or another batch_size.")
    share = len(indices) // world.size
    return indices[world.rank * share : (world.rank + 1) * share]


class _PhaseLoss(torch.nn.Module):
    """One phase's loss as a module, so that DistributedDataParallel runs the whole loss in its forward.

    Whatever parts of the model a loss calls (a generator, then a discriminator, or an encoder's method),
    every parameter it reaches is averaged across ranks: no loss can reach an unwrapped module by mistake.
    """

    def __init__(self, model: torch.nn.Module, phase: str):
        super().__init__()
        self.model, self.phase = model, phase

    def forward(self, batch):
        return self.model.loss(batch, self.phase)


class Trainer:
    """Train a :class:`~musiclib.models.base.Model` by minimising ``model.loss(batch)``, resuming from ``run_dir`` if a
    checkpoint is there.

    Adversarial models take turns instead: a model whose class declares ``phases`` (e.g.
    ``("discriminator", "generator")``) gets one optimiser per phase over ``model.phase_parameters(phase)``,
    at ``model.phase_learning_rate(phase, learning_rate)``, and each step calls ``model.loss(batch, phase)`` and steps
    that phase's optimiser, in order, for the phases ``model.active_phases(step)`` names (e.g. a warm-up before the
    adversarial game starts). A loss may return ``(loss, logs)`` where ``logs`` is a dict of floats (e.g. ``D(x)``) to
    average into the history.

    Args:
        model: A :class:`~musiclib.models.base.Model`.
        train_data: Array ``(n, ...)`` (memory maps fine), or a tuple of such arrays of equal length
            (e.g. inputs and targets); a batch is a tensor on the device (float32, or int64 for integer arrays such as
            tokens), or a tuple of them.
        run_dir: Where ``checkpoint.pt`` and ``history.json`` go.
        config: :class:`TrainConfig`.
        audio_config, model_config: Stored in every checkpoint.
        val_data: Optional array scored by ``model.loss`` at every checkpoint.
        on_checkpoint: Optional ``(trainer, step) -> None`` hook, e.g. to write an audio preview.
        deadline: Optional :func:`clock` time to stop at, before ``config.steps`` if need be: the step that
            passes it is checkpointed (with the hook) and :meth:`fit` returns with ``stopped_by_budget`` set.
            Resuming then continues to ``config.steps`` exactly as an uninterrupted run would have.
        on_replan: With a ``deadline``: at every checkpoint the steps still to take are planned again from the
            measured pace (steps and checkpoints), ``config.steps`` and ``model_config["steps"]`` set to the
            new total, and ``on_replan(steps)`` called (e.g. to record it in the run's ``config.json``).
    """

    def __init__(self, model, train_data, run_dir, config: TrainConfig, audio_config: AudioConfig,
                 model_config: dict, val_data=None, on_checkpoint: Callable | None = None, deadline: float | None = None,
                 on_replan: Callable[[int], None] | None = None):
        self.world = distributed.world()
        self.device = distributed.device(config.device) or get_device(config.device)
        if self.world.distributed and deadline is not None:
            raise ValueError("a time budget (--minutes) plans one process; give --steps when training with several processes")
        if self.world.distributed and self.device.type == "cuda":  # per-rank batch statistics → the global batch's (GPU only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif self.world.distributed and self.world.is_main and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                                   for m in model.modules()):
            warnings.warn("BatchNorm normalises each process's slice of the batch on CPUs (SyncBatchNorm needs GPUs): "
                          "this run trains like, but not exactly as, one process would.", stacklevel=2)
        self.model = model.to(self.device)
        self.train_data = train_data
        self.val_data = val_data
        self.run_dir = Path(run_dir)
        self.config = config
        self.audio_config = audio_config
        self.model_config = model_config
        self.on_checkpoint = on_checkpoint
        self.phases = tuple(model.phases)
        if self.phases:
            self.optimizers = {phase: make_optimizer(config.optimizer, model.phase_parameters(phase),
                                                     model.phase_learning_rate(phase, config.learning_rate), config.betas)
                               for phase in self.phases}
        else:
            self.optimizers = {"": make_optimizer(config.optimizer, self.model.parameters(), config.learning_rate, config.betas)}
        self.base_rates = {phase: [group["lr"] for group in optimizer.param_groups] for phase, optimizer in self.optimizers.items()}
        self.replicas = self._replicas() if self.world.distributed else {}
        self.step = 0
        self.history: list[dict] = []
        self.deadline = deadline
        self.on_replan = on_replan
        self.stopped_by_budget = False

    def _replicas(self) -> dict:
        """One DistributedDataParallel module per phase, each running that phase's whole loss.

        A phase averages the gradients of the parameters it trains and no others: the other player's (an
        adversarial phase reaches the discriminator from the generator's loss) are left out of its module, and
        are zeroed before their own phase. A model trained in one phase may hold parameters its loss never
        reaches (an LSTM's unused second bias): its module learns which on the first step (a static graph).
        """
        DDP = torch.nn.parallel.DistributedDataParallel
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        replicas = {}
        for phase, optimizer in self.optimizers.items():
            loss_module = _PhaseLoss(self.model, phase)
            if self.phases:
                trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
                DDP._set_params_and_buffers_to_ignore_for_model(
                    loss_module, [f"model.{name}" for name, p in self.model.named_parameters() if id(p) not in trained])
            replicas[phase] = DDP(loss_module, device_ids=device_ids, static_graph=not self.phases)
        return replicas

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def state(self) -> dict:
        """What a checkpoint holds (with several processes, every rank must call it: it gathers their RNG states)."""
        by_rank = distributed.gather_objects(rng_states())
        return {
            "model": self.model.state_dict(),
            "optimizer": {phase: optimizer.state_dict() for phase, optimizer in self.optimizers.items()},
            "step": self.step,
            **by_rank[0],
            "rng_by_rank": by_rank,
            "audio_config": self.audio_config.to_dict(),
            "model_config": self.model_config,
            "history": self.history,
        }

    def resume(self) -> bool:
        """Load the checkpoint in ``run_dir`` if there is one. Returns whether it did."""
        if not self.checkpoint_path.exists():
            return False
        # Loaded on the CPU: load_state_dict moves weights and optimiser state to the model's device,
        # and the RNG states must stay CPU byte tensors.
        state = load_checkpoint(self.checkpoint_path)
        if state["audio_config"] != self.audio_config.to_dict():
            raise ValueError(f"{self.checkpoint_path}: trained with another AudioConfig; use a new run folder.")
        self.model.load_state_dict(state["model"])
        for phase, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizer"][phase])
        self.step = int(state["step"])
        by_rank = state.get("rng_by_rank", [state])
        if len(by_rank) == self.world.size:
            restore_rng_states(by_rank[self.world.rank])
        elif self.world.rank == 0:  # another number of processes: rank 0 keeps its stream, the others start new ones
            restore_rng_states(by_rank[0])
        else:
            torch.manual_seed(rank_seed(self.config.seed + self.step, self.world.rank))
        self.history = list(state["history"])
        return True

    def _apply_learning_rate_schedule(self) -> None:
        # Set from the step on every step, so a resumed run follows the schedule whatever rate its checkpoint held.
        factor = self.config.learning_rate_factor(self.step)
        for phase, optimizer in self.optimizers.items():
            for group, base in zip(optimizer.param_groups, self.base_rates[phase]):
                group["lr"] = base * factor

    def _batch(self, data, indices):
        if isinstance(data, (tuple, list)):
            return tuple(self._batch(part, indices) for part in data)
        rows = np.asarray(take_rows(data, np.sort(indices)))
        return torch.from_numpy(rows.astype(np.int64 if rows.dtype.kind in "iu" else np.float32, copy=False)).to(self.device)

    def _optimise(self, batch, phase: str = "") -> dict:
        """One optimiser step (of one phase); returns the losses and logs as floats."""
        if self.replicas:
            with distributed.training_step():
                result = self.replicas[phase](batch)
        else:
            result = self.model.loss(batch, phase)
        loss, logs = result if isinstance(result, tuple) else (result, {})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{phase or 'the'} loss became {loss.item()} at step {self.step}; lower the learning rate.")
        optimizer = self.optimizers[phase]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {f"loss_{phase}" if phase else "train_loss": loss.item(), **logs}

    def validate(self) -> float | None:
        if self.phases or self.val_data is None or n_examples(self.val_data) == 0:
            return None
        self.model.eval()
        with torch.no_grad():
            results = [self.model.loss(self._batch(self.val_data, np.arange(i, min(i + 64, n_examples(self.val_data)))))
                       for i in range(0, n_examples(self.val_data), 64)]
        losses = [float(result[0] if isinstance(result, tuple) else result) for result in results]
        self.model.train()
        return float(np.mean(losses))

    def train_step(self) -> dict:
        """One training step (every active phase) on the batch ``(seed, step)`` defines (this rank's slice of it);
        returns its logs."""
        indices = batch_indices(n_examples(self.train_data), self.config.batch_size, self.config.seed, self.step)
        batch = self._batch(self.train_data, rank_slice(indices, self.world) if self.world.distributed else indices)
        logs = {}
        self._apply_learning_rate_schedule()
        for phase in self.model.active_phases(self.step) or ("",):
            logs.update(self._optimise(batch, phase))
        self.step += 1
        return logs

    def _window_means(self, running: dict[str, list[float]]) -> dict[str, float]:
        """Each log's mean over the steps since the last checkpoint (and over the ranks: the global batch's)."""
        names = sorted(running)
        means = torch.tensor([float(np.mean(running[name])) for name in names], dtype=torch.float64)
        return dict(zip(names, distributed.mean_over_ranks(means).tolist()))

    def seconds_per_step(self, seconds: float, max_steps: int = 20) -> float:
        """How long one training step takes here: the median over steps taken for about ``seconds`` (at least 3,
        at most ``max_steps``) after one warm-up step.

        It trains this trainer's model and optimisers and writes nothing: meant for a throwaway copy
        (:func:`musiclib.runs.train` restores the initial weights afterwards).
        """
        self.model.train()
        times: list[float] = []
        while len(times) < 4 or (sum(times[1:]) < seconds and len(times) < max_steps + 1):
            started = clock()
            self.train_step()
            times.append(clock() - started)
        return float(np.median(times[1:]))

    def _replan(self, step_seconds: float, checkpoint_seconds: float) -> None:
        """Set ``config.steps`` to what fits before the deadline at the measured pace (3 % kept free)."""
        checkpoints_left = -(-(self.config.steps - self.step) // self.config.checkpoint_every)
        spare = 0.97 * (self.deadline - clock() - checkpoints_left * checkpoint_seconds)
        steps = self.step + max(1, int(spare / max(step_seconds, 1e-9)))
        if steps != self.config.steps:
            self.config.steps = steps
            self.model_config["steps"] = steps
            self.on_replan(steps)

    def fit(self) -> list[dict]:
        """Train until ``config.steps``; checkpoint every ``checkpoint_every`` steps and at the end."""
        if not self.resume():
            set_seed(self.config.seed)
            if self.world.rank:
                torch.manual_seed(rank_seed(self.config.seed, self.world.rank))
        self.model.train()
        bar = tqdm(total=self.config.steps, initial=self.step, desc="training", unit="step", mininterval=progress_interval(),
                   disable=not (self.config.progress and self.world.is_main))
        running: dict[str, list[float]] = {}
        # Wall-clock seconds of training so far, carried across resumes (the comparison table's training time).
        seconds_before = self.history[-1].get("train_seconds", 0.0) if self.history else 0.0
        started = time.perf_counter()
        window_started, window_step = clock(), self.step
        try:
            while self.step < self.config.steps:
                logs = self.train_step()
                for name, value in logs.items():
                    running.setdefault(name, []).append(value)
                bar.update(1)
                bar.set_postfix({name: f"{value:.4f}" for name, value in logs.items() if name.startswith(("loss", "train"))},
                                refresh=False)  # shown when the bar next draws itself (every mininterval seconds)
                out_of_time = self.deadline is not None and clock() >= self.deadline and self.step < self.config.steps
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.steps or out_of_time:
                    checkpoint_started = clock()
                    record = {"step": self.step, **self._window_means(running),
                              "val_loss": distributed.broadcast_object(self.validate() if self.world.is_main else None),
                              "train_seconds": round(seconds_before + time.perf_counter() - started, 2)}
                    if self.config.learning_rate_schedule:  # the factor the window's last step ran at
                        record["learning_rate_factor"] = self.config.learning_rate_factor(self.step - 1)
                    self.history.append(record)
                    running = {}
                    state = self.state()
                    if self.world.is_main:  # one writer; the others wait for the checkpoint to be complete
                        save_checkpoint(self.checkpoint_path, state)
                        write_text_atomically(self.run_dir / "history.json", json.dumps(self.history, indent=1) + "\n")
                        if self.on_checkpoint:
                            self.on_checkpoint(self, self.step)
                    distributed.barrier()
                    if self.on_replan is not None and self.deadline is not None and not out_of_time and self.step < self.config.steps:
                        self._replan((checkpoint_started - window_started) / (self.step - window_step), clock() - checkpoint_started)
                        bar.total = self.config.steps
                        bar.refresh()
                    window_started, window_step = clock(), self.step
                if out_of_time:
                    self.stopped_by_budget = True
                    break
        finally:
            bar.close()
        return self.history
