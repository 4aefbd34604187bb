"""make_synthetic_voc: layout, determinism, mask values, separability, argument errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg.data import read_mask
from catseg.data.synthetic import make_synthetic_voc
from catseg.data.voc import VOCSegmentationDataset
from catseg.errors import ConfigError, DataError


def split(root: Path, name: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()


def test_layout_and_splits(tmp_path: Path) -> None:
    root = make_synthetic_voc(tmp_path / "voc", n=10, size=(24, 40), val_fraction=0.3)
    assert (root / "class_names.txt").read_text().splitlines() == ["_background_", "blob"]
    train, val, trainval = split(root, "train"), split(root, "val"), split(root, "trainval")
    assert len(val) == 3
    assert len(train) == 7
    assert sorted(train + val) == trainval
    assert trainval == [f"synth_{i:04d}" for i in range(10)]
    with Image.open(root / "JPEGImages" / "synth_0000.jpg") as image:
        assert (image.mode, image.size) == ("RGB", (40, 24))
    with Image.open(root / "SegmentationClassPNG" / "synth_0000.png") as mask:
        assert (mask.mode, mask.size) == ("P", (40, 24))


def test_same_seed_same_data_other_seed_differs(tmp_path: Path) -> None:
    first = make_synthetic_voc(tmp_path / "a", n=4, size=32, seed=3)
    second = make_synthetic_voc(tmp_path / "b", n=4, size=32, seed=3)
    third = make_synthetic_voc(tmp_path / "c", n=4, size=32, seed=4)
    for name in ("synth_0000", "synth_0003"):
        mask_a = read_mask(first / "SegmentationClassPNG" / f"{name}.png")
        assert np.array_equal(mask_a, read_mask(second / "SegmentationClassPNG" / f"{name}.png"))
        assert not np.array_equal(mask_a, read_mask(third / "SegmentationClassPNG" / f"{name}.png"))
        jpeg = f"JPEGImages/{name}.jpg"
        assert (first / jpeg).read_bytes() == (second / jpeg).read_bytes()
    assert split(first, "val") == split(second, "val")


def test_mask_values_and_void_band(tmp_path: Path) -> None:
    banded = make_synthetic_voc(tmp_path / "band", n=6, size=32, seed=1)
    plain = make_synthetic_voc(tmp_path / "plain", n=6, size=32, seed=1, void_width=0)
    for index in range(6):
        name = f"synth_{index:04d}.png"
        with_band = read_mask(banded / "SegmentationClassPNG" / name)
        without = read_mask(plain / "SegmentationClassPNG" / name)
        assert set(np.unique(with_band).tolist()) == {0, 1, 255}
        assert set(np.unique(without).tolist()) == {0, 1}
        keep = with_band != 255
        assert np.array_equal(with_band[keep], without[keep])  # the band only hides pixels
        # every band pixel touches a class boundary of the plain mask
        edge = np.zeros_like(without, dtype=bool)
        edge[:, 1:] |= without[:, 1:] != without[:, :-1]
        edge[:, :-1] |= without[:, 1:] != without[:, :-1]
        edge[1:] |= without[1:] != without[:-1]
        edge[:-1] |= without[1:] != without[:-1]
        assert np.array_equal(with_band == 255, edge)


def test_blobs_separable_by_brightness(tmp_path: Path) -> None:
    """A one-number threshold already finds the blobs: a small model learns this easily."""
    root = make_synthetic_voc(tmp_path / "voc", n=16, size=48, seed=0)
    dataset = VOCSegmentationDataset(root, "trainval")
    intersection = union = 0
    for index in range(len(dataset)):
        image, mask = dataset[index]
        predicted = image.mean(dim=0) > 0.4
        valid = mask != 255
        truth = mask == 1
        intersection += int((predicted & truth & valid).sum())
        union += int(((predicted | truth) & valid).sum())
    assert intersection / union > 0.9


def test_refuses_non_empty_root(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="exists and is not an empty folder"):
        make_synthetic_voc(tmp_path, n=2)
    assert (tmp_path / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"size": 8}, "size must be at least 16 pixels on each side, got 8"),
        ({"size": (32, "a")}, r"size must be an int or \(height, width\)"),
        (
            {"val_fraction": 1.0},
            r"val_fraction must be a finite number in \[0\.0, 1\.0\), got 1",
        ),
        ({"void_width": -1}, "void_width must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make_synthetic_voc(tmp_path / "voc", **kwargs)  # type: ignore[arg-type]
