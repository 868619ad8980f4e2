"""One process of a distributed test run: ``tests/test_distributed.py`` starts several, joined by a file rendezvous.

Usage: ``python distributed_worker.py RENDEZVOUS_FILE RANK WORLD_SIZE JOBS_JSON DUMP_DIR``

Each job ``{"name", "model", "out", "steps", "set"}`` is a :func:`musiclib.runs.train` call made by every
rank, as ``torchrun -m musiclib train`` makes it (model ``"stft-loss"``: the gradient of the multi-resolution
STFT loss instead, :func:`stft_loss_gradient`; ``"shared-transcriber"``: the path of :func:`shared_transcriber`). Afterwards this rank's model state goes to
``DUMP_DIR/<name>_rank<r>.pt`` and the paths it wrote under the run folder to ``<name>_writes_rank<r>.json``.
"""
import builtins
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from musiclib import distributed, models, runs, training
from musiclib.losses import multi_resolution_stft_loss


def main(rendezvous: str, rank: int, world_size: int, jobs: list[dict], dump: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    writes: list[str] = []
    _record_writes(writes)
    trainers: list[training.Trainer] = []
    fit = training.Trainer.fit

    def recording_fit(trainer):
        trainers.append(trainer)
        return fit(trainer)

    training.Trainer.fit = recording_fit
    for job in jobs:
        if job["model"] == "stft-loss":
            torch.save(stft_loss_gradient(rank, world_size), dump / f"{job['name']}_rank{rank}.pt")
            continue
        if job["model"] == "shared-transcriber":
            (dump / f"{job['name']}_rank{rank}.json").write_text(json.dumps(str(shared_transcriber(job["set"]))))
            continue
        writes.clear()
        runs.train(job["model"], "chorales", job["out"], steps=job["steps"], overrides=job.get("set"), progress=False)
        mine = [path for path in writes if Path(path).resolve().is_relative_to(Path(job["out"]).resolve())]
        torch.save(trainers[-1].model.state_dict(), dump / f"{job['name']}_rank{rank}.pt")
        (dump / f"{job['name']}_writes_rank{rank}.json").write_text(json.dumps(sorted(set(mine))))
    dist.destroy_process_group()


def shared_transcriber(settings: dict) -> Path:
    """The note transformer's shared transcriber run (:func:`musiclib.runs.shared_upstream_run`), asked for by every rank."""
    model_class = models.get("note-transformer")
    return runs.shared_upstream_run(model_class.upstream, model_class.Settings.recipe(True).replace(**settings), progress=False, fast=True)


def stft_loss_batch(n: int = 8, samples: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``(real, noise)``, float64: a fixed batch for the multi-resolution STFT loss (a ratio over the whole batch)."""
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(n, samples, generator=generator, dtype=torch.float64),
            torch.randn(n, samples, generator=generator, dtype=torch.float64))


class Gain(torch.nn.Module):
    """A gain per sample, shared by every example: ``fake = gain * real + noise``."""

    def __init__(self, samples: int):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.full((samples,), 0.5, dtype=torch.float64))

    def forward(self, real, noise):
        from musiclib.models.melgan import STFT_RESOLUTIONS
        return multi_resolution_stft_loss(real, self.gain * real + 0.1 * noise, STFT_RESOLUTIONS)


def stft_loss_gradient(rank: int, world_size: int) -> torch.Tensor:
    """The gradient of the loss on this rank's slice of :func:`stft_loss_batch`, averaged by DDP."""
    real, noise = stft_loss_batch()
    share = len(real) // world_size
    module = torch.nn.parallel.DistributedDataParallel(Gain(real.shape[1]))
    with distributed.training_step():
        loss = module(real[rank * share : (rank + 1) * share], noise[rank * share : (rank + 1) * share])
    loss.backward()
    return module.module.gain.grad


def _record_writes(writes: list[str]) -> None:
    """Note every file opened for writing, renamed or made as a folder, then let it happen."""
    real_open, real_replace, real_mkdir = builtins.open, os.replace, os.mkdir

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(flag in mode for flag in "wax+"):
            writes.append(os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        writes.append(os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        writes.append(os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    builtins.open, os.replace, os.mkdir = open_, replace, mkdir


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(Path(sys.argv[4]).read_text()), Path(sys.argv[5]))
