"""Fault tolerance: one bad file among many, read through a DataLoader (issue #9).

Covered elsewhere and not repeated here:

* a checkpoint write killed mid-way (SIGKILL of the writer process) or failing
  (disk full) leaves the previous file loadable:
  tests/checkpoint/test_checkpoint.py::test_killed_writer_leaves_the_old_file_loadable and
  ::test_failed_save_keeps_the_old_file;
* a training run killed with SIGKILL mid-epoch resumes from ``last.pt`` and ends
  with the same number of epochs: tests/test_training.py::test_sigkill_mid_epoch_then_resume;
* ``labelme_to_voc`` failing half-way leaves no partial output:
  tests/data/test_labelme.py::test_labelme_to_voc_leaves_nothing_on_failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_builders import (
    random_sample,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
    tree_snapshot,
    write_voc,
)
from torch.utils.data import DataLoader

from catseg.data import VOCSegmentationDataset
from catseg.errors import DataError

N = 12
BAD = "img05"


def _voc_with_one_corrupt_file(root: Path) -> Path:
    items = {f"img{i:02d}": random_sample(6, 8, seed=i) for i in range(N)}
    write_voc(root, items)
    # Half a file, as left by an interrupted copy.
    data = (root / "JPEGImages" / f"{BAD}.png").read_bytes()
    (root / "JPEGImages" / f"{BAD}.png").write_bytes(data[: len(data) // 2])
    split = root / "ImageSets" / "Segmentation"
    split.mkdir(parents=True)
    # One more id in the split whose mask was never written.
    Image.fromarray(random_sample(6, 8, 99)[0]).save(root / "JPEGImages" / "nomask.png")
    (split / "train.txt").write_text("".join(f"{i}\n" for i in [*items, "nomask"]))
    return root


def test_one_corrupt_file_among_many_fails_naming_that_file(tmp_path: Path) -> None:
    root = _voc_with_one_corrupt_file(tmp_path / "voc")
    dataset = VOCSegmentationDataset(root)  # split=None: ids with both files
    assert len(dataset) == N
    loader = DataLoader(dataset, batch_size=4, shuffle=False)
    batches = iter(loader)
    first_images, _ = next(batches)  # img00..img03 are fine
    assert first_images.shape == (4, 3, 6, 8)
    with pytest.raises(DataError, match=rf"JPEGImages/{BAD}\.png is truncated or corrupt"):
        next(batches)


def test_one_corrupt_file_fails_naming_it_through_worker_processes(tmp_path: Path) -> None:
    root = _voc_with_one_corrupt_file(tmp_path / "voc")
    loader = DataLoader(VOCSegmentationDataset(root), batch_size=N, num_workers=1)
    # The worker's exception is re-raised in this process with the same class and text.
    with pytest.raises(DataError, match=rf"{BAD}\.png is truncated or corrupt"):
        next(iter(loader))


def test_skip_mode_reads_everything_else_and_counts_what_it_skipped(tmp_path: Path) -> None:
    root = _voc_with_one_corrupt_file(tmp_path / "voc")
    dataset = VOCSegmentationDataset(root, "train", on_error="skip")
    # The id without a mask is dropped (and counted) when the dataset is built.
    assert dataset.skipped_ids == ("nomask",)
    assert len(dataset) == N
    seen: list[torch.Tensor] = []
    for images, masks in DataLoader(dataset, batch_size=5, shuffle=False):
        assert images.dtype == torch.float32
        seen.extend(masks)
    assert len(seen) == N  # the corrupt item is replaced by the next readable one
    expected = [torch.from_numpy(random_sample(6, 8, seed=i)[1]).long() for i in range(N)]
    bad = int(BAD[-2:])
    assert all(torch.equal(seen[i], expected[i]) for i in range(N) if i != bad)
    assert torch.equal(seen[bad], expected[bad + 1])
    assert dataset.skipped_ids == ("nomask", BAD)
    assert dataset.num_skipped == 2


def test_skip_mode_raises_when_nothing_is_readable(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": random_sample(3, 3, 0), "b": random_sample(3, 3, 1)})
    for name in ("a", "b"):
        (root / "JPEGImages" / f"{name}.png").write_bytes(b"not a png")
    dataset = VOCSegmentationDataset(root, on_error="skip")
    with pytest.raises(DataError, match=r"every item of VOCSegmentationDataset\(.*\) failed"):
        dataset[0]
    assert dataset.skipped_ids == ("a", "b")


def test_reading_a_dataset_writes_nothing_into_it(tmp_path: Path) -> None:
    root = _voc_with_one_corrupt_file(tmp_path / "voc")
    before = tree_snapshot(root)
    dataset = VOCSegmentationDataset(root, "train", on_error="skip", cache=True, image_size=4)
    for index in range(len(dataset)):
        dataset[index]
    assert tree_snapshot(root) == before
    with Image.open(root / "SegmentationClassPNG" / "img00.png") as mask:
        assert np.array_equal(np.array(mask), random_sample(6, 8, seed=0)[1])
