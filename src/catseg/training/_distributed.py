"""torch.distributed helpers: everything is a no-op in a single process.

catseg does not launch processes; ``torchrun`` (or any launcher that calls
:func:`torch.distributed.init_process_group`) does. When a process group is initialised,
``fit`` wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`, shards
the data, and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset
from torch.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler

from catseg._modules import unwrap_model
from catseg._runtime import resolve_device
from catseg.errors import ConfigError

T = TypeVar("T")
# What a sharded loader keeps of the original, by DataLoader argument name; the
# worker-only ones only when it has workers (DataLoader rejects them otherwise).
_KEPT = ("batch_size", "num_workers", "collate_fn", "pin_memory", "drop_last", "timeout",
         "worker_init_fn", "generator")  # fmt: skip
_KEPT_WITH_WORKERS = ("multiprocessing_context", "prefetch_factor", "persistent_workers")


def is_distributed() -> bool:
    """Whether a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes checkpoints and logs (rank 0)."""
    return rank() == 0


def device_for(device: str | torch.device) -> torch.device:
    """The device to train on; under torch.distributed ``"auto"`` is this process's GPU.

    Raises:
        ConfigError: If the device is unknown or absent, or this process's ``LOCAL_RANK``
            has no GPU of its own (NCCL needs one GPU per process).
    """
    if device == "auto" and is_distributed() and torch.cuda.is_available():
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= count:
            raise ConfigError(
                f"device='auto' under torchrun gives each process its own GPU, but LOCAL_RANK "
                f"is {local} and this machine has {count} GPU(s); start at most {count} "
                "processes per node, or pass run=RunOptions(device='cpu') (or 'cuda:0' with "
                "the gloo backend) explicitly"
            )
        device = torch.device("cuda", local)
    resolved = resolve_device(device)
    if is_distributed() and resolved.type == "cuda":
        torch.cuda.set_device(resolved)  # nccl collectives use the current device
    return resolved


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when distributed, else return it."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place and return it (identity in one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_over_processes(value: float, device: torch.device) -> float:
    """The largest ``value`` of all processes (e.g. the slowest rank's time)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every process (identity in one process)."""
    box: list[Any] = [obj]
    if is_distributed():
        dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def gather_objects(obj: T) -> list[T]:
    """``obj`` of every process, indexed by rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP keeps parameters identical, but each process updates its own BatchNorm statistics
    from its own batches; after an epoch they are made equal so that evaluation and the
    saved model agree on every rank.
    """
    for buffer in unwrap_model(model).buffers() if is_distributed() else ():
        dist.broadcast(buffer.data, src=0)


def shard(loader: DataLoader[Any], *, train: bool, seed: int = 0) -> DataLoader[Any]:
    """A loader that gives this process its share of the data (``loader`` in one process).

    A loader that already uses a DistributedSampler is kept. Otherwise a train loader is
    rebuilt with a DistributedSampler (shuffling if it shuffled, seeded with ``seed``),
    an evaluation loader with every ``world_size``-th index from this rank (disjoint and
    unpadded, so each image is counted once); batch size, workers, collate function, pinned
    memory, drop_last and the other options are kept.

    Raises:
        ConfigError: If the loader cannot be sharded (IterableDataset, custom batch
            sampler, a train sampler that is neither shuffle nor sequential).
    """
    role = "train" if train else "validation"
    if not is_distributed() or isinstance(loader.sampler, DistributedSampler):
        return loader
    if isinstance(loader.dataset, IterableDataset):
        raise ConfigError(
            f"the {role} loader reads an IterableDataset, which torch.distributed cannot shard "
            "for you; use a map-style dataset, or shard it yourself and run train_one_epoch"
        )
    if loader.batch_size is None or not isinstance(loader.batch_sampler, BatchSampler):
        raise ConfigError(
            f"under torch.distributed the {role} loader must use batch_size= with a plain "
            f"sampler, got a custom batch_sampler {type(loader.batch_sampler).__name__}; "
            "give it a torch.utils.data.DistributedSampler yourself"
        )
    if not train:
        sampler: Any = range(rank(), len(loader.dataset), world_size())  # type: ignore[arg-type]
    elif isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed)
    else:
        raise ConfigError(
            f"under torch.distributed the train loader's sampler must be a DistributedSampler "
            f"or a plain shuffle/sequential one, got {type(loader.sampler).__name__}; wrap "
            "your sampling logic in a DistributedSampler subclass"
        )
    kept = _KEPT + (_KEPT_WITH_WORKERS if loader.num_workers > 0 else ())
    return DataLoader(loader.dataset, sampler=sampler, **{k: getattr(loader, k) for k in kept})


def set_epoch(loader: DataLoader[Any], epoch: int) -> None:
    """Tell the loader's DistributedSampler (if any) which epoch starts, for reshuffling."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
