"""torch.distributed helpers: everything is a no-op in a single process.

catseg does not launch processes; ``torchrun`` (or any launcher that calls
:func:`torch.distributed.init_process_group`) does. When a process group is initialised,
``fit`` wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`, shards
the data with :class:`~torch.utils.data.DistributedSampler`, and only rank 0 writes
checkpoints and logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data.sampler import BatchSampler

from catseg._modules import unwrap_model
from catseg.errors import ConfigError

T = TypeVar("T")


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


def default_device(device: str | torch.device) -> str | torch.device:
    """Under torch.distributed with CUDA, ``"auto"`` means this process's local GPU.

    Raises:
        ConfigError: If this process's ``LOCAL_RANK`` has no GPU of its own (more
            processes on the node than GPUs: NCCL needs one GPU per process).
    """
    if device == "auto" and is_distributed() and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(
                f"device='auto' under torchrun gives each process its own GPU, but LOCAL_RANK "
                f"is {local} and this machine has {count} GPU(s); start at most {count} "
                "processes per node, or pass run=RunOptions(device='cpu') (or 'cuda:0' with "
                "the gloo backend) explicitly"
            )
        return torch.device("cuda", local)
    return device


def bind_device(device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device (nccl collectives use it)."""
    if is_distributed() and device.type == "cuda":
        torch.cuda.set_device(device)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when distributed, else return it."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        torch.cuda.set_device(device)
        return DistributedDataParallel(model, device_ids=[device])
    return DistributedDataParallel(model)


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


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one."""
    return max_over_processes(float(flag), device) > 0


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every process (identity in one process)."""
    if not is_distributed():
        return obj
    box: list[Any] = [obj]
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

    DDP keeps parameters identical on all processes, but each process updates its own
    BatchNorm statistics from its own batches; after an epoch they are made equal so that
    evaluation and the saved model agree on every rank.
    """
    if not is_distributed():
        return
    for buffer in unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src=0)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index starting at this process's rank; no padding, no shuffle.

    Used for evaluation: unlike DistributedSampler it never repeats a sample to even out
    the shards, so the all-reduced confusion matrix counts each image exactly once.
    """

    def __init__(self, length: int, *, rank: int, world_size: int) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


# What a sharded loader keeps of the original, by DataLoader argument name; the
# worker-only ones only when it has workers (DataLoader rejects them otherwise).
_KEPT = ("batch_size", "collate_fn", "pin_memory", "drop_last", "timeout", "worker_init_fn",
         "generator")  # fmt: skip
_KEPT_WITH_WORKERS = ("multiprocessing_context", "prefetch_factor", "persistent_workers")


def _rebuild(loader: DataLoader[Any], sampler: Sampler[int]) -> DataLoader[Any]:
    workers = loader.num_workers
    kept = _KEPT + (_KEPT_WITH_WORKERS if workers > 0 else ())
    options = {name: getattr(loader, name) for name in kept}
    return DataLoader(loader.dataset, sampler=sampler, num_workers=workers, **options)


def _sampler_to_replace(loader: DataLoader[Any], role: str) -> object | None:
    """The plain sampler that sharding replaces; ``None`` when ``loader`` needs no sharding."""
    if not is_distributed():
        return None
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
    return None if isinstance(loader.sampler, DistributedSampler) else loader.sampler


def shard_train_loader(loader: DataLoader[Any], *, seed: int) -> DataLoader[Any]:
    """A loader that gives this process its share of the training data.

    Without torch.distributed, or when ``loader`` already uses a DistributedSampler,
    ``loader`` itself is returned. Otherwise it is rebuilt with a DistributedSampler
    (shuffling if the original shuffled, seeded with ``seed``) keeping batch size, workers,
    collate function, pinned memory and drop_last.

    Raises:
        ConfigError: If the loader cannot be sharded (custom sampler, IterableDataset).
    """
    sampler = _sampler_to_replace(loader, "train")
    if sampler is None:
        return loader
    if not isinstance(sampler, (RandomSampler, SequentialSampler)):
        raise ConfigError(
            f"under torch.distributed the train loader's sampler must be a DistributedSampler "
            f"or a plain shuffle/sequential one, got {type(sampler).__name__}; wrap your "
            "sampling logic in a DistributedSampler subclass"
        )
    shuffle = isinstance(sampler, RandomSampler)
    return _rebuild(loader, DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed))


def shard_eval_loader(loader: DataLoader[Any]) -> DataLoader[Any]:
    """A loader that gives this process a disjoint, unpadded share of the evaluation data.

    Without torch.distributed, or when ``loader`` already uses a DistributedSampler
    (which may repeat up to ``world_size - 1`` images), ``loader`` is returned unchanged.

    Raises:
        ConfigError: If the loader cannot be sharded (custom sampler, IterableDataset).
    """
    sampler = _sampler_to_replace(loader, "validation")
    if sampler is None:
        return loader
    length = len(loader.dataset)  # type: ignore[arg-type]
    return _rebuild(loader, ShardSampler(length, rank=rank(), world_size=world_size()))


def set_epoch(loader: DataLoader[Any], epoch: int) -> None:
    """Tell the loader's DistributedSampler (if any) which epoch starts, for reshuffling."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
