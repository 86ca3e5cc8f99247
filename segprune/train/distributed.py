"""Process-group setup for ``torchrun`` and the helpers that keep ranks in step.

``torchrun --nproc_per_node N segprune train ...`` sets ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK``; :func:`init_distributed` reads them and picks NCCL on GPUs and gloo on
CPUs, so the same command works on a laptop (one process, nothing initialised) and on a
multi-GPU node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group described by the environment, if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """``None``/``"auto"`` means the local GPU when there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            from segprune.errors import ConfigError

            raise ConfigError(f"device {device!r} asked for but no CUDA GPU is visible: use --device cpu")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def shard_indices(n: int, ctx: DistContext) -> range:
    """This rank's share of ``n`` evaluation samples: disjoint, no padding, no repeats.

    ``DistributedSampler`` pads the last shard with repeated samples, which would count
    some pixels twice in a confusion matrix; evaluation uses strided shards instead.
    """
    return range(ctx.rank, n, ctx.world_size)


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (BN running statistics) before evaluating.

    DDP broadcasts buffers at the start of each forward, so after the last training step
    each rank holds the statistics of its own last batch. Evaluating with those would
    score a different model on each shard; rank 0's copy is the one that gets saved.
    """
    if ctx.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
