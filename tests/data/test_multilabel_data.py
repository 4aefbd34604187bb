"""The one-mask-per-label folder layout and the synthetic multilabel generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.data.multilabel import VOCMultilabelDataset, make_synthetic_multilabel
from catseg.errors import DataError, MissingFileError


def _write(root: Path, layers: dict[str, np.ndarray], size: tuple[int, int] = (2, 3)) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (size[1], size[0]), (10, 20, 30)).save(root / "JPEGImages" / "a.png")
    for label, mask in layers.items():
        folder = root / "SegmentationLabels" / label
        folder.mkdir(parents=True)
        Image.fromarray(mask.astype(np.uint8)).save(folder / "a.png")
    (root / "labels.txt").write_text("\n".join(layers) + "\n")
    return root


def test_reads_multi_hot_layers_with_ignore(tmp_path: Path) -> None:
    cloud = np.array([[1, 1, 0], [255, 0, 0]])
    shadow = np.array([[0, 1, 1], [0, 255, 1]])
    data = VOCMultilabelDataset(_write(tmp_path, {"cloud": cloud, "shadow": shadow}))
    image, mask = data[0]
    assert data.class_names == ["cloud", "shadow"]
    assert mask.dtype == torch.uint8
    assert mask.tolist() == [cloud.tolist(), shadow.tolist()]
    assert image.shape == (3, 2, 3)
    assert image[:, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])


def test_resize_keeps_exact_values(tmp_path: Path) -> None:
    cloud = np.array([[1, 0], [255, 0]])
    data = VOCMultilabelDataset(_write(tmp_path, {"cloud": cloud}, (2, 2)), image_size=4)
    _, mask = data[0]
    assert mask.shape == (1, 4, 4)
    assert set(mask.unique().tolist()) == {0, 1, 255}


def test_bad_values_and_missing_masks_are_named(tmp_path: Path) -> None:
    data = VOCMultilabelDataset(_write(tmp_path / "a", {"cloud": np.array([[0, 2, 1], [0, 0, 0]])}))
    with pytest.raises(DataError, match="holds values \\[2\\]"):
        data[0]
    root = _write(tmp_path / "b", {"cloud": np.zeros((2, 3))})
    (root / "SegmentationLabels" / "rain").mkdir()
    (root / "labels.txt").write_text("cloud\nrain\n")
    with pytest.raises(MissingFileError, match="rain"):
        VOCMultilabelDataset(root)
    (root / "labels.txt").unlink()
    with pytest.raises(MissingFileError, match=r"labels\.txt"):
        VOCMultilabelDataset(root)


def test_synthetic_multilabel_has_overlaps_and_is_deterministic(tmp_path: Path) -> None:
    first = make_synthetic_multilabel(tmp_path / "a", n=12, size=32, seed=5)
    second = make_synthetic_multilabel(tmp_path / "b", n=12, size=32, seed=5)
    a, b = VOCMultilabelDataset(first), VOCMultilabelDataset(second)
    masks = torch.stack([a[i][1] for i in range(len(a))])
    assert torch.equal(masks, torch.stack([b[i][1] for i in range(len(b))]))
    both = ((masks[:, 0] == 1) & (masks[:, 1] == 1)).sum().item()
    assert both > 0  # overlapping labels exist
    assert set(masks.unique().tolist()) == {0, 1, 255}
    no_void = VOCMultilabelDataset(
        make_synthetic_multilabel(tmp_path / "c", n=2, size=16, void_width=0)
    )
    assert set(no_void[0][1].unique().tolist()) <= {0, 1}
    with pytest.raises(DataError, match="not an empty folder"):
        make_synthetic_multilabel(first)
