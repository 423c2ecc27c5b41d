"""torchrun support: which process this is, and the few collective calls the trainer makes.

`torchrun --nproc-per-node N -m cocoer_core.train ...` sets RANK, WORLD_SIZE
and LOCAL_RANK; the same command without torchrun is a world of one, where
every call here is a no-op. Process 0 alone evaluates and writes files; the
others wait for it at a barrier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, requested: str) -> torch.device:
        """CUDA processes take the GPU of their local rank."""
        device = torch.device(requested)
        if device.type == "cuda" and self.distributed:
            return torch.device("cuda", self.local_rank)
        return device

    def any(self, flag: bool) -> bool:
        """True on every process when it is True on one (a stop request, say)."""
        if not self.distributed:
            return flag
        on = "cuda" if dist.get_backend() == "nccl" else "cpu"
        value = torch.tensor([1.0 if flag else 0.0], device=on)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, values: list[float]) -> list[float]:
        """Each value averaged over the processes (the log's losses: each process saw its share)."""
        if not self.distributed:
            return values
        on = "cuda" if dist.get_backend() == "nccl" else "cpu"
        total = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(total)
        return [float(v) / self.size for v in total.cpu()]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order (on every process)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def join(device: str) -> World:
    """Join torchrun's process group when launched by it (gloo on CPU, nccl on CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend=backend)
    return world


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
