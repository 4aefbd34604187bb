"""A DataLoader whose worker processes keep sharing the parent's memory.

On Linux, DataLoader workers are forked and share the parent's memory pages until a
page is written. CPython's garbage collector writes to every object it scans, so each
worker's first collection copies the pages of the parent's objects (tens of MiB).
:class:`SegmentationLoader` freezes the collector's view of them (:func:`gc.freeze`, as
CPython recommends before a ``fork``) while its workers start, then unfreezes in the
parent, whose own garbage collection is unchanged.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.dataloader import _BaseDataLoaderIter

from catseg._bounds import short
from catseg._validation import check_bool, check_callable, check_int
from catseg.errors import ConfigError

__all__ = ["SegmentationLoader", "default_num_workers"]


def default_num_workers() -> int:
    """Worker processes to use by default: half the usable CPU cores, at most 4.

    The other half is left to the model's own threads; on a 1-core machine loading
    stays in the main process.

    Examples:
        >>> 0 <= default_num_workers() <= 4
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(4, cores // 2)


class SegmentationLoader(DataLoader[Any]):
    """A :class:`torch.utils.data.DataLoader` with segmentation defaults and lean workers.

    It batches exactly like a DataLoader built with the same arguments. The differences:

    * worker processes start with the garbage collector's view of the parent frozen
      (see the module description), which roughly halves their memory (nothing is
      touched when the caller has called :func:`gc.freeze` already);
    * ``num_workers=None`` picks :func:`default_num_workers`, ``pin_memory=None`` pins
      only when CUDA is available, and ``persistent_workers=None`` keeps workers (and
      any per-worker dataset cache) alive across epochs whenever there are workers.

    Args:
        dataset: A map-style dataset of ``(image, mask)`` pairs.
        batch_size: Items per batch.
        shuffle: Reshuffle every epoch (not with ``sampler``).
        num_workers: Worker processes; ``0`` loads in the main process.
        pin_memory: Page-lock batches for faster host-to-GPU copies.
        drop_last: Drop the last incomplete batch.
        persistent_workers: Keep workers between epochs.
        sampler: Optional sampler of indices (e.g. a ``DistributedSampler``).
        generator: Random generator for shuffling (and worker seeds).
        collate_fn: Optional function merging a list of items into a batch.
        worker_init_fn: Optional function called with the worker id in each worker.

    Raises:
        ConfigError: When an argument is of the wrong type, ``batch_size`` or
            ``num_workers`` is not a valid int, or ``shuffle`` is combined with a ``sampler``.

    Examples:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(10, 3, 4, 4), torch.zeros(10, 4, 4))
        >>> loader = SegmentationLoader(data, batch_size=4, num_workers=0)
        >>> [images.shape[0] for images, masks in loader]
        [4, 4, 2]
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int = 1,
        *,
        shuffle: bool = False,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        drop_last: bool = False,
        persistent_workers: bool | None = None,
        sampler: Sampler[int] | None = None,
        generator: torch.Generator | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        worker_init_fn: Callable[[int], None] | None = None,
    ) -> None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        workers = default_num_workers() if num_workers is None else num_workers
        workers = check_int("num_workers", workers, minimum=0)
        shuffle = check_bool("shuffle", shuffle)
        drop_last = check_bool("drop_last", drop_last)
        if pin_memory is not None:
            pin_memory = check_bool("pin_memory", pin_memory)
        if persistent_workers is not None:
            persistent_workers = check_bool("persistent_workers", persistent_workers)
        if not callable(getattr(dataset, "__getitem__", None)):
            raise ConfigError(f"dataset must be a map-style dataset, got {type(dataset).__name__}")
        if sampler is not None and not isinstance(sampler, Iterable):
            raise ConfigError(f"sampler must be an iterable of indices, got {short(sampler)}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {short(generator)}")
        check_callable("collate_fn", collate_fn, optional=True)
        check_callable("worker_init_fn", worker_init_fn, optional=True)
        if shuffle and sampler is not None:
            raise ConfigError("shuffle=True cannot be combined with a sampler; shuffle in it")
        super().__init__(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_fn,
            pin_memory=torch.cuda.is_available() if pin_memory is None else bool(pin_memory),
            drop_last=drop_last,
            worker_init_fn=worker_init_fn,
            generator=generator,
            persistent_workers=workers > 0 and persistent_workers is not False,
        )

    def __iter__(self) -> _BaseDataLoaderIter:
        # Workers are forked when the iterator is created, inside super().__iter__().
        if self.num_workers == 0 or gc.get_freeze_count() > 0:
            return super().__iter__()
        gc.freeze()
        try:
            return super().__iter__()
        finally:
            gc.unfreeze()
