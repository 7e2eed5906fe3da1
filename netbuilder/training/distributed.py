"""Training in several processes with PyTorch's own machinery: launched by `torchrun`, joined
through torch.distributed (gloo on CPUs, NCCL on GPUs), the model wrapped in
DistributedDataParallel. netbuilder adds no protocol of its own: a rank is a process, and
everything below is a thin layer over torch.distributed's collectives.

    torchrun --nproc_per_node=2 cli.py train SPEC          # one machine
    torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=host:29500 ... cli.py train SPEC
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import NetbuilderError
from .device import resolve_device


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def cluster_from_environment() -> Cluster:
    """torchrun's variables (WORLD_SIZE, RANK, LOCAL_RANK); none means a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Cluster(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(device_name: str) -> tuple[Cluster, torch.device]:
    """Start the process group when torchrun launched several processes, and pick this rank's
    device: its own GPU (LOCAL_RANK) with NCCL, or the CPU with gloo."""
    cluster = cluster_from_environment()
    device = resolve_device(device_name)
    if not cluster.distributed:
        return cluster, device
    if device.type == "cuda":
        device = torch.device("cuda", cluster.local_rank)
        torch.cuda.set_device(device)
    if device.type == "mps":
        raise NetbuilderError(
            "distributed training runs on CPUs (gloo) or CUDA GPUs (NCCL), not on MPS"
        )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return cluster, device


def leave(cluster: Cluster) -> None:
    if cluster.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(tensor: Tensor, cluster: Cluster) -> Tensor:
    """The element-wise sum over all ranks (the tensor itself with one process)."""
    if cluster.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(value: Any, cluster: Cluster) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not cluster.distributed:
        return [value]
    values: list[Any] = [None] * cluster.world
    dist.all_gather_object(values, value)
    return values


def from_main(value: Any, cluster: Cluster) -> Any:
    """Rank 0's `value`, on every rank."""
    if not cluster.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(cluster: Cluster) -> None:
    if cluster.distributed:
        dist.barrier()


def wrap(
    model: nn.Module, cluster: Cluster, device: torch.device, sync_batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    """(the model whose state is saved, the module to call): DistributedDataParallel around it
    when there are several ranks, with BatchNorm synchronised across them if asked."""
    if not cluster.distributed:
        return model, model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    ids = [device.index] if device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(model, device_ids=ids)
