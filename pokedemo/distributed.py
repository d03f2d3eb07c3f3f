"""Data-parallel training on PyTorch's own engine (torch.distributed, DistributedDataParallel).

    torchrun --standalone --nproc_per_node N -m pokedemo.train teacher|student ...

torchrun sets RANK / WORLD_SIZE / MASTER_ADDR...; without them training is one process and nothing here
does anything. gloo on the CPU, NCCL on CUDA. BatchNorm stays per process (no SyncBatchNorm): each rank
sees whole classes of a class-balanced batch, 32 / N species x 4 images, enough for its statistics, and
SyncBatchNorm would add an all-reduce per layer per step that gloo on a CPU pays dearly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Only this process writes logs, checkpoints and the card."""
        return self.rank == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA, this process's own GPU (cuda:LOCAL_RANK, made current); else `device`."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def setup(device: torch.device) -> Ranks:
    """Join the process group torchrun describes (one process: Ranks(0, 1), nothing started)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def _on_backend(tensor: Tensor) -> Tensor:
    """NCCL moves CUDA tensors only: a CPU tensor goes to this process's GPU for a collective."""
    return tensor.cuda() if dist.get_backend() == "nccl" else tensor


def shutdown(ranks: Ranks) -> None:
    if ranks.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        dist.barrier()


def broadcast_from_main(tensor: Tensor, ranks: Ranks) -> Tensor:
    """rank 0's tensor on every rank (the others pass a tensor of the same shape and dtype to fill)."""
    if ranks.world_size > 1:
        moved = _on_backend(tensor)
        dist.broadcast(moved, src=0)
        return moved.to(tensor.device)
    return tensor


def my_share(batch_index: Tensor, ranks: Ranks) -> Tensor:
    """This rank's contiguous share of a class-major global batch: whole classes, no overlap between ranks."""
    if len(batch_index) % ranks.world_size:
        raise ValueError(f"a batch of {len(batch_index)} images does not split over {ranks.world_size} processes: "
                         "make --classes-per-batch a multiple of the number of processes")
    return batch_index.view(ranks.world_size, -1)[ranks.rank]


def wrap(module: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module` under torchrun, `module` itself otherwise."""
    if ranks.world_size == 1:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def weights_agree(module: nn.Module, ranks: Ranks) -> bool:
    """Whether every rank holds rank 0's learned weights exactly (DDP keeps them in step: this checks it).
    BatchNorm's running statistics are not compared: each rank updates them on its own share, DDP copies
    rank 0's to the others before every forward, and rank 0's are the ones saved."""
    if ranks.world_size == 1:
        return True
    flat = torch.cat([p.detach().float().flatten().cpu() for p in module.parameters()])
    reference = broadcast_from_main(flat.clone(), ranks)
    same = _on_backend(torch.tensor([int(torch.equal(flat, reference))]))
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())
