"""Several processes training one model: PyTorch's DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N -m musiclib train ...`` starts N copies of the command; each
calls :func:`init_from_environment`, which joins them in one process group (gloo on CPUs,
NCCL on CUDA GPUs, one GPU per process). The :class:`~musiclib.training.Trainer` then splits
every global batch, defined by ``(seed, step)`` as in one process, into equal slices, one
per rank, and DDP averages the gradients, so the weights do not depend on the number of
processes. Rank 0 alone writes files.

The traps this module exists for (each measured in ``tests/test_distributed.py``):

* A statistic of the batch kept in a buffer (a running residual, a codebook's EMA) sees only
  a rank's slice: :func:`batch_mean`, :func:`batch_sum` and :func:`batch_rows` make it the global one.
* A loss that is not a mean over examples (a ratio of norms over the whole batch) is not
  averaged correctly by DDP: :func:`global_sum` gives the global sum with a gradient DDP's
  average turns into the right one.
* BatchNorm normalises each rank's slice with its own statistics. ``SyncBatchNorm`` fixes
  that on GPUs only; on CPUs a model with BatchNorm trains, but not exactly as in one process.
* Random draws: each rank gets its own stream (seeded by ``(seed, rank)``) so that ranks
  do not draw the same noise for different examples; a stochastic model therefore matches a
  one-process run in distribution, not number for number.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands: its ``rank`` among ``size`` processes, and its GPU index on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place in the process group (rank 0 of 1 when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` started this process as one of several (it sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend() -> str:
    """NCCL where there are CUDA GPUs, gloo on CPUs."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_environment(timeout_minutes: float = 30) -> World:
    """Join the process group ``torchrun`` describes in the environment (nothing to do in a lone process).

    On CUDA each process takes the GPU of its ``LOCAL_RANK``.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return world()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend(), timeout=datetime.timedelta(minutes=timeout_minutes))
    return world()


def device(requested: str | None = None) -> torch.device | None:
    """In a process group on CUDA: this rank's GPU; otherwise ``None`` (the caller's usual choice)."""
    here = world()
    if here.distributed and torch.cuda.is_available() and requested in (None, "cuda"):
        return torch.device("cuda", here.local_rank)
    return None


def barrier() -> None:
    """Wait until every rank gets here (nothing in a lone process)."""
    if world().distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Run the block on rank 0 first, then on the others: for work that fills a cache (a bundled dataset, features)."""
    here = world()
    if here.distributed and not here.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if here.distributed and here.is_main:
            dist.barrier()


def broadcast_object(value, source: int = 0):
    """Rank ``source``'s ``value`` on every rank (picklable objects)."""
    if not world().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def gather_objects(value) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    if not world().distributed:
        return [value]
    out = [None] * world().size
    dist.all_gather_object(out, value)
    return out


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.get_backend() == "nccl" and not tensor.is_cuda:  # NCCL reduces GPU tensors only
        on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_gpu)
        return tensor.copy_(on_gpu)
    dist.all_reduce(tensor)
    return tensor


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks, in place and returned (no gradient flows through it); every rank must call it."""
    return _all_reduce_sum(tensor) if world().distributed else tensor


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks, in place and returned; every rank must call it."""
    return sum_over_ranks(tensor).div_(world().size) if world().distributed else tensor


_in_step = False


@contextlib.contextmanager
def training_step():
    """Marks the forward pass of a distributed training step: where the ``batch_*`` functions communicate.

    Outside it (validation or a preview on rank 0 alone, a lone process) they return their input, so a
    model's code may call them anywhere.
    """
    global _in_step
    previous, _in_step = _in_step, world().distributed
    try:
        yield
    finally:
        _in_step = previous


def in_training_step() -> bool:
    """Inside the forward pass of a distributed training step (see :func:`training_step`)."""
    return _in_step


def batch_mean(statistic: torch.Tensor) -> torch.Tensor:
    """A mean over this rank's slice of the batch → the mean over the global batch (for buffers; no gradient)."""
    return mean_over_ranks(statistic.detach().clone()) if _in_step else statistic


def batch_sum(statistic: torch.Tensor) -> torch.Tensor:
    """A sum over this rank's slice of the batch → the sum over the global batch (for buffers; no gradient)."""
    return sum_over_ranks(statistic.detach().clone()) if _in_step else statistic


def batch_rows(rows: torch.Tensor) -> torch.Tensor:
    """This rank's rows (each rank has as many) → every rank's, in rank order: the global batch's rows (no gradient)."""
    if not _in_step:
        return rows
    parts = [torch.empty_like(rows) for _ in range(world().size)]
    dist.all_gather(parts, rows.detach().contiguous())
    return torch.cat(parts)


def batch_from_main(value: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``value`` (same shape on every rank): a random choice every rank must share (no gradient)."""
    if _in_step:
        value = value.detach().contiguous()
        dist.broadcast(value, src=0)
    return value


def global_sum(local: torch.Tensor) -> torch.Tensor:
    """The sum of ``local`` over the global batch, with a gradient, for losses that are not a mean over examples.

    Its value is the sum over ranks; its gradient with respect to this rank's ``local`` is the
    number of ranks, which DDP's gradient average (a division by that number) turns into the
    gradient of the global loss. Outside a distributed training step it is ``local`` itself.
    """
    if not _in_step:
        return local
    total = sum_over_ranks(local.detach().clone())
    size = world().size
    return size * local - (size - 1) * local.detach() + (total - local.detach())


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
