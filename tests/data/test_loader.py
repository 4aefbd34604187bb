from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from catseg.data import SegmentationLoader, VOCSegmentationDataset, make_synthetic_voc
from catseg.data.loader import default_num_workers
from catseg.errors import ConfigError

fork_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers are forked only on Linux"
)


class FreezeProbe(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Items report how many objects the garbage collector has frozen where they load."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(gc.get_freeze_count()), torch.tensor(index)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_voc(tmp_path_factory.mktemp("loader"), n=10, size=24)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_a_plain_dataloader(synthetic: Path, workers: int) -> None:
    dataset = VOCSegmentationDataset(synthetic, image_dtype="uint8", mask_dtype="uint8")
    ours = SegmentationLoader(dataset, batch_size=3, num_workers=workers)
    plain = DataLoader(dataset, batch_size=3)
    pairs = list(zip(ours, plain, strict=True))
    assert len(pairs) == 4
    for (image, mask), (ref_image, ref_mask) in pairs:
        assert torch.equal(image, ref_image)
        assert torch.equal(mask, ref_mask)
        assert mask.dtype == torch.uint8


@fork_only
def test_workers_start_frozen_and_the_parent_is_left_as_it_was() -> None:
    # Something else in this process (pytest-xdist's worker does) may have frozen objects
    # already; the loader then leaves the freeze alone, so start from an unfrozen heap.
    frozen_before = gc.get_freeze_count()
    gc.unfreeze()
    try:
        counts, _ = next(iter(SegmentationLoader(FreezeProbe(), batch_size=4, num_workers=1)))
        assert int(counts.min()) > 0  # the worker's collector skips the parent's objects
        assert gc.get_freeze_count() == 0  # ... and the parent's is unfrozen again
        plain, _ = next(iter(DataLoader(FreezeProbe(), batch_size=4, num_workers=1)))
        assert int(plain.max()) == 0  # what a plain DataLoader's worker gets
    finally:
        if frozen_before:
            gc.freeze()


def _is_frozen(obj: object) -> bool:
    # gc.get_objects() walks the collected generations only, not the frozen one.
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


@fork_only
def test_a_callers_own_freeze_is_not_undone() -> None:
    # The count itself may drop while the loader runs (frozen objects still die when
    # their last reference goes), so check a live object the caller froze instead.
    sentinel: list[object] = [object()]
    assert not _is_frozen(sentinel)
    gc.freeze()
    try:
        assert _is_frozen(sentinel)
        list(SegmentationLoader(FreezeProbe(), batch_size=2, num_workers=1))
        assert _is_frozen(sentinel)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert not _is_frozen(sentinel)


def test_defaults() -> None:
    loader = SegmentationLoader(FreezeProbe(), batch_size=2)
    assert loader.num_workers == default_num_workers()
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.persistent_workers == (loader.num_workers > 0)
    assert not SegmentationLoader(FreezeProbe(), num_workers=0).persistent_workers
    assert SegmentationLoader(FreezeProbe(), num_workers=1).persistent_workers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"num_workers": -1}, "num_workers must be an int >= 0, got -1"),
        ({"num_workers": 1.5}, r"num_workers must be an int, got 1\.5"),
        ({"batch_size": True}, r"batch_size must be an int, got True"),
        ({"shuffle": "yes"}, r"shuffle must be True or False, got 'yes'"),
        ({"shuffle": True, "sampler": [0, 1]}, "cannot be combined with a sampler"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SegmentationLoader(FreezeProbe(), **kwargs)  # type: ignore[arg-type]
