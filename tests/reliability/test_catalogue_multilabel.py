"""Catalogue rows for multilabel inputs (issue 18): losses, metrics, the one-mask-per-label
dataset, the Segmenter's per-label thresholds and labelme's ``mode="multilabel"``.

Same contract as ``test_catalogue.py``: a row either returns the documented result
(checked against hand-worked values) or raises the listed catseg error whose message
names the offending value, file or label.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_builders import (
    Row,
    check_rows,
    run_row,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
)

from catseg.data import LabelmeDataset, VOCMultilabelDataset, read_labelme
from catseg.errors import ConfigError, DataError, LabelmeError, MissingFileError, ShapeError
from catseg.losses import DiceCELoss, DiceLoss, FocalLoss, JaccardLoss, LovaszLoss, TverskyLoss
from catseg.metrics import MeanIoU, mean_iou
from catseg.models import UNet
from catseg.predict import Segmenter

LABELS = ["__ignore__", "_background_", "cat", "dog"]
LOSSES = {
    "dice": DiceLoss,
    "dice-ce": DiceCELoss,
    "focal": FocalLoss,
    "tversky": TverskyLoss,
    "jaccard": JaccardLoss,
    "lovasz": LovaszLoss,
}


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


def _logits() -> torch.Tensor:
    return torch.linspace(-2.0, 2.0, 18).reshape(1, 2, 3, 3)


def _target(value: int | None = None) -> torch.Tensor:
    target = torch.zeros(1, 2, 3, 3, dtype=torch.int64)
    target[0, 0, 1, 1] = 1
    if value is not None:
        target[0, 1, 2, 0] = value
    return target


def _loss(name: str, target: torch.Tensor) -> Callable[[Path], Any]:
    return lambda _: LOSSES[name](mode="multilabel")(_logits(), target)


# --- VOCMultilabelDataset ----------------------------------------------------------------------


def _multilabel_root(tmp: Path, layers: dict[str, Any], image_hw: tuple[int, int] = (2, 3)) -> Path:
    root = tmp / "ml"
    (root / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (image_hw[1], image_hw[0]), (9, 9, 9)).save(root / "JPEGImages" / "a.png")
    for label, mask in layers.items():
        (root / "SegmentationLabels" / label).mkdir(parents=True)
        Image.fromarray(np.asarray(mask, np.uint8)).save(
            root / "SegmentationLabels" / label / "a.png"
        )
    (root / "labels.txt").write_text("\n".join(layers) + "\n")
    return root


def _dataset_item(layers: dict[str, Any], image_hw: tuple[int, int] = (2, 3)) -> Any:
    def call(tmp: Path) -> Any:
        return VOCMultilabelDataset(_multilabel_root(tmp, layers, image_hw))[0][1].tolist()

    return call


def _repeated_label(tmp: Path) -> Any:
    root = _multilabel_root(tmp, {"cloud": np.zeros((2, 3))})
    (root / "labels.txt").write_text("cloud\ncloud\n")
    return VOCMultilabelDataset(root)


def _missing_layer(tmp: Path) -> Any:
    root = _multilabel_root(tmp, {"cloud": np.zeros((2, 3))})
    (root / "labels.txt").write_text("cloud\nrain\n")  # no SegmentationLabels/rain/
    return VOCMultilabelDataset(root)


# --- labelme -------------------------------------------------------------------------------------


def _square(label: str, x0: int, y0: int, x1: int, y1: int) -> dict[str, Any]:
    return {"label": label, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}


def _labelme(shapes: list[dict[str, Any]], labels: Any = LABELS, mode: Any = "multilabel") -> Any:
    def call(tmp: Path) -> Any:
        Image.new("RGB", (10, 10)).save(tmp / "a.png")
        doc = {"imagePath": "a.png", "imageData": None, "shapes": shapes}
        (tmp / "a.json").write_text(json.dumps(doc))
        layers = read_labelme(tmp / "a.json", labels, mode=mode)[1]
        return layers.shape, [int(v) for v in layers.reshape(layers.shape[0], -1).sum(1)]

    return call


def _labelme_dataset(mode: Any, labels: Any = LABELS) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        Image.new("RGB", (4, 4)).save(tmp / "a.png")
        (tmp / "a.json").write_text('{"imagePath": "a.png", "shapes": []}')
        return LabelmeDataset(tmp, labels, mode=mode)[0][1].shape

    return call


# --- Segmenter ---------------------------------------------------------------------------------


def _segmenter(classes: list[str], threshold: Any, channels: int = 2) -> Callable[[Path], Any]:
    def call(_: Path) -> Any:
        torch.manual_seed(0)
        model = UNet(3, channels, init_features=4, depth=2).eval()
        return Segmenter(
            model, classes=classes, threshold=threshold, mode="multilabel", precision="fp32"
        ).threshold

    return call


_OVERLAP = [_square("cat", 1, 1, 5, 5), _square("dog", 3, 3, 8, 7)]

ROWS: list[Row] = [
    # --- losses: a multilabel target holds 0, 1 or the ignore value ---------------------------
    *(
        Row(f"loss-{name}-target-value-2", _loss(name, _target(2)), "DataError naming 2",
            DataError, r"target contains label 2; multilabel mode expects labels in \[0, 1\]")
        for name in LOSSES
    ),
    *(
        Row(f"loss-{name}-{mode}-ignore-index-{value}",
            lambda _, loss=loss, mode=mode, value=value: loss(mode=mode, ignore_index=value),
            "ConfigError: a target value cannot be ignored", ConfigError,
            rf"ignore_index must not be 0 or 1 in {mode} mode .* got {value}")
        for name, loss in LOSSES.items()
        for mode in ("binary", "multilabel")
        for value in (0, 1)
    ),
    Row("loss-label-map-not-layers",
        lambda _: DiceLoss(mode="multilabel")(_logits(), torch.zeros(1, 3, 3, dtype=torch.long)),
        "ShapeError naming both shapes", ShapeError,
        r"target has shape \(1, 3, 3\), expected \(1, 2, 3, 3\)"),
    Row("loss-float-target-above-one",
        lambda _: DiceLoss(mode="multilabel")(_logits(), torch.full((1, 2, 3, 3), 1.5)),
        "DataError naming the value", DataError, r"only 0 and 1 .*got values such as \[1\.5\]"),
    Row("loss-class-weights-per-label",
        lambda _: DiceLoss(mode="multilabel", class_weights=[1.0, 2.0, 3.0])(_logits(), _target()),
        "ConfigError naming the counts", ConfigError,
        r"class_weights has 3 entries, expected one per input channel \(2\)"),
    # --- metrics -----------------------------------------------------------------------------
    Row("miou-target-value-3",
        lambda _: MeanIoU(2, mode="multilabel").update(_logits(), _target(3)),
        "DataError naming value and label", DataError,
        r"target contains value\(s\) \[3\] \(for label\(s\) \[1\]\)"),
    Row("mean-iou-target-minus-one",
        lambda _: mean_iou(_logits(), _target(-1), 2, mode="multilabel"),
        "DataError naming -1", DataError, r"value\(s\) \[-1\] \(for label\(s\) \[1\]\)"),
    Row("miou-ignore-index-one", lambda _: MeanIoU(2, mode="multilabel", ignore_index=1),
        "ConfigError: 1 is a target value", ConfigError,
        r"ignore_index must not be 0 or 1 in multilabel mode .* got 1"),
    Row("miou-K-mismatch", lambda _: MeanIoU(3, mode="multilabel").update(_logits(), _target()),
        "ShapeError naming K", ShapeError, r"K = num_classes = 3, got \(1, 2, 3, 3\)"),
    Row("miou-hand-worked", lambda _: round(mean_iou(_logits() * 0 - 5, _target(), 2,
                                                      mode="multilabel").miou, 6),
        "label 0 missed (IoU 0), label 1 absent (NaN, skipped): 0.0", check=_equal(0.0)),
    # --- VOCMultilabelDataset ---------------------------------------------------------------
    Row("dataset-mask-value-2", _dataset_item({"cloud": [[0, 2, 1], [0, 0, 0]]}),
        "DataError naming file and value", DataError,
        r"cloud[/\\]a\.png holds values \[2\]; a label mask holds 0"),
    Row("dataset-mask-size", _dataset_item({"cloud": np.zeros((3, 3))}),
        "DataError naming both sizes", DataError,
        r"cloud[/\\]a\.png is 3x3 \(W x H\) but its image is 3x2"),
    Row("dataset-repeated-label", _repeated_label, "DataError naming the list", DataError,
        r"labels\.txt must list distinct label names.*\['cloud', 'cloud'\]"),
    Row("dataset-missing-label-folder", _missing_layer, "MissingFileError naming the label",
        MissingFileError, r"label 'rain' of labels\.txt has no folder"),
    Row("dataset-split-not-str",
        lambda t: VOCMultilabelDataset(_multilabel_root(t, {"a": np.zeros((2, 3))}), 3),
        "ConfigError naming the value", ConfigError, r"split must be a split name .* got 3"),
    Row("dataset-overlap-kept", _dataset_item({"a": [[1, 1, 0], [0, 255, 0]],
                                               "b": [[0, 1, 1], [0, 0, 0]]}),
        "both layers as stored", check=_equal([[[1, 1, 0], [0, 255, 0]], [[0, 1, 1], [0, 0, 0]]])),
    # --- Segmenter thresholds ---------------------------------------------------------------
    Row("segmenter-threshold-count", _segmenter(["a", "b"], [0.5, 0.4, 0.3]),
        "ConfigError naming the counts", ConfigError,
        r"threshold holds 3 values; give one, or one per label of a multilabel model \(2\)"),
    Row("segmenter-threshold-nan", _segmenter(["a", "b"], [0.5, float("nan")]),
        "ConfigError naming the entry", ConfigError,
        r"threshold\[1\] must be a finite number in \(0\.0, 1\.0\), got nan"),
    Row("segmenter-threshold-one", _segmenter(["a", "b"], 1.0), "ConfigError naming 1.0",
        ConfigError, r"threshold must be a finite number in \(0\.0, 1\.0\), got 1\.0"),
    Row("segmenter-background-name", _segmenter(["_background_", "a", "b"], 0.5),
        "ConfigError: K names for K channels", ConfigError,
        r"classes has 3 names but a 2-label multilabel model needs 2 names"),
    Row("segmenter-per-label-thresholds", _segmenter(["a", "b"], [0.25, 0.75]),
        "kept per label", check=_equal((0.25, 0.75))),
    # --- labelme mode="multilabel" ----------------------------------------------------------
    Row("labelme-layers-overlap", _labelme(_OVERLAP), "25 + 30 px, 9 shared, both kept",
        check=_equal(((2, 10, 10), [25, 30]))),
    Row("labelme-layers-unknown-label", _labelme([*_OVERLAP, _square("horse", 0, 0, 1, 1)]),
        "LabelmeError naming label and file", LabelmeError,
        r"a\.json: shape 2 has label 'horse', which is not in the label list"),
    Row("labelme-layers-no-label", _labelme([], ["__ignore__", "_background_"]),
        "ConfigError: no layer to make", ConfigError,
        r"labels \['_background_'\] name no class besides '_background_'"),
    Row("labelme-mode-unknown", _labelme(_OVERLAP, mode="layers"), "ConfigError naming it",
        ConfigError, r"mode must be one of 'multiclass', 'multilabel'; got 'layers'"),
    Row("labelme-dataset-mode-bool", _labelme_dataset(True), "ConfigError naming it",
        ConfigError, r"mode must be one of 'multiclass', 'multilabel'; got True"),
    Row("labelme-dataset-layers", _labelme_dataset("multilabel"), "(K, H, W) = (2, 4, 4)",
        check=_equal(torch.Size([2, 4, 4]))),
]  # fmt: skip


def test_rows_are_well_formed() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_row(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
