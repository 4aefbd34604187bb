"""Silent wrong answers of the metrics (issue 21) and the one-place option checks.

Each case used to give a number (mIoU 1.0 from half-wrong data, a wrapped label, NaN
with no word) and must now raise a catseg error that names the cause.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from catseg.errors import CatsegError, ConfigError, DataError
from catseg.metrics import MeanIoU, confusion_matrix, mean_iou
from catseg.training import evaluate

Entry = Callable[[torch.Tensor, torch.Tensor], Any]


def _metric_update(**options: Any) -> Entry:
    def call(preds: torch.Tensor, target: torch.Tensor) -> Any:
        metric = MeanIoU(2, **options)
        metric.update(preds, target)
        return metric.compute()

    return call


ENTRIES: dict[str, Entry] = {
    "mean_iou": lambda p, t: mean_iou(p, t, 2),
    "mean_iou-per-image": lambda p, t: mean_iou(p, t, 2, per_image=True),
    "confusion_matrix": lambda p, t: confusion_matrix(p, t, 2),
    "MeanIoU": _metric_update(),
    "MeanIoU-per-image": _metric_update(per_image=True),
    "MeanIoU-ignore-none": _metric_update(ignore_index=None),
}


class ConstantLabel(nn.Module):
    """A two-class 'model' whose arg-max is ``label`` at every pixel."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 2, *x.shape[2:], device=x.device)
        logits[:, self.label] = self.scale
        return logits


@pytest.mark.parametrize("entry", ENTRIES, ids=list(ENTRIES))
@pytest.mark.parametrize("pred_label", [0, 1])
def test_target_label_num_classes_raises_whatever_the_prediction(
    entry: str, pred_label: int
) -> None:
    # Label 2 with num_classes=2 used to be dropped silently under prediction 0
    # (num_classes * 2 + 0 fell into the ignore bin): mIoU 1.0 from half-wrong data.
    target = torch.tensor([[[0, 1, 2, 1]]])
    preds = torch.tensor([[[0, 1, pred_label, 1]]])
    with pytest.raises(DataError, match=r"label\(s\) \[2\] outside \[0, 1\].*num_classes=2"):
        ENTRIES[entry](preds, target)


@pytest.mark.parametrize("pred_label", [0, 1])
def test_evaluate_refuses_a_label_equal_to_num_classes(pred_label: int) -> None:
    images = torch.rand(2, 3, 4, 4)
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[1, 0, 0] = 2
    with pytest.raises(DataError, match=r"\[2\] outside \[0, 1\] that are not ignore_index=255"):
        evaluate(
            ConstantLabel(pred_label), [(images, masks)], MeanIoU(2), device="cpu",
            precision="fp32",
        )  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES, ids=list(ENTRIES))
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_negative_target_raises_instead_of_wrapping(entry: str, dtype: torch.dtype) -> None:
    # An int8 -1 used to compare equal to ignore_index=255 (the scalar wrapped) and vanish.
    target = torch.tensor([[[0, 1, -1, 1]]], dtype=dtype)
    preds = torch.tensor([[[0, 1, 1, 1]]])
    with pytest.raises(DataError, match=r"label\(s\) \[-1\] outside \[0, 1\]"):
        ENTRIES[entry](preds, target)


def test_int8_target_error_says_the_dtype_cannot_hold_ignore_index() -> None:
    target = torch.tensor([[[0, -1]]], dtype=torch.int8)
    with pytest.raises(DataError, match=r"torch\.int8 target cannot hold 255: store masks as"):
        mean_iou(torch.zeros(1, 1, 2, dtype=torch.long), target, 2)


def test_uint8_255_is_not_ignore_index_minus_one() -> None:
    target = torch.tensor([[[0, 1, 255]]], dtype=torch.uint8)
    preds = torch.tensor([[[0, 1, 1]]])
    with pytest.raises(DataError, match=r"\[255\] outside \[0, 1\] that are not ignore_index=-1"):
        mean_iou(preds, target, 2, ignore_index=-1)
    # ...while an int64 target with -1 as its ignore value is fine.
    wide = torch.tensor([[[0, 1, -1]]])
    assert mean_iou(preds, wide, 2, ignore_index=-1).confusion.tolist() == [[1, 0], [0, 1]]


def test_valid_labels_and_ignored_pixels_still_count_the_same() -> None:
    preds = torch.tensor([[[0, 1, 2, 2], [1, 1, 0, 2]]])
    target = torch.tensor([[[0, 1, 255, 2], [1, 0, 0, 255]]])
    for dtype in (torch.uint8, torch.int16, torch.int64):
        expected = [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
        assert confusion_matrix(preds, target.to(dtype), 3).tolist() == expected
        per_image = MeanIoU(3, per_image=True, include_background=True)
        per_image.update(preds, target.to(dtype))
        assert per_image.compute().confusion.tolist() == expected
    # ignore_index inside the class range: that class is simply not counted.
    assert confusion_matrix(preds, target.clamp(max=2), 3, ignore_index=2).sum() == 5


@pytest.mark.parametrize("threshold", [math.nan, 0.0, 1.0, 1.5, -0.1, math.inf, "0.5", True])
def test_confusion_matrix_validates_threshold_like_mean_iou(threshold: Any) -> None:
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    expected = r"threshold must be a finite number in \(0\.0, 1\.0\), got "
    match = expected + re.escape(repr(threshold))
    for call in (
        lambda: confusion_matrix(logits, target, 2, threshold=threshold),
        lambda: mean_iou(logits, target, 2, threshold=threshold),
        lambda: MeanIoU(2, threshold=threshold),
    ):
        with pytest.raises(ConfigError, match=match):
            call()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"from_logits": "no"}, r"from_logits must be True or False, got 'no'"),
        ({"from_logits": 1}, r"from_logits must be True or False, got 1"),
        ({"include_background": None}, r"include_background must be True or False, got None"),
        ({"sync": 0}, r"sync must be True or False, got 0"),
        ({"ignore_index": True}, r"ignore_index must be an int or None, got True"),
        ({"ignore_index": 255.0}, r"ignore_index must be an int or None, got 255\.0"),
        ({"mode": "binary"}, r"mode must be one of 'multiclass', 'multilabel'; got 'binary'"),
        ({"absent": None}, r"absent must be one of 'nan', 'zero', 'one'; got None"),
        ({"num_classes": True}, r"num_classes must be an int, got True"),
        ({"num_classes": 0, "mode": "multilabel"}, r"num_classes must be a positive int, got 0"),
        (
            {"ignore_index": 1, "mode": "multilabel"},
            r"ignore_index must not be 0 or 1 in multilabel mode .* got 1",
        ),
    ],
)
def test_every_option_is_checked_at_construction(options: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {"num_classes": 2, **options}
    with pytest.raises(ConfigError, match=match):
        MeanIoU(**kwargs)


def test_confusion_matrix_checks_its_options() -> None:
    preds = torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ConfigError, match=r"from_logits must be True or False, got 'yes'"):
        confusion_matrix(preds, preds, 2, from_logits="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"num_classes must be an int >= 2, got 1"):
        confusion_matrix(preds, preds, 1)
    with pytest.raises(ConfigError, match=r"mode must be one of"):
        confusion_matrix(preds, preds, 2, mode="multi")  # type: ignore[arg-type]


def test_compute_without_data_raises_instead_of_nan() -> None:
    for metric in (MeanIoU(2), MeanIoU(3, per_image=True), MeanIoU(2, absent="one")):
        with pytest.raises(DataError, match=r"compute\(\) has no data: update\(\) received no"):
            metric.compute()
        # An empty batch is no data either.
        metric.update(torch.zeros(0, 4, 4, dtype=torch.long), torch.zeros(0, 4, 4).long())
        with pytest.raises(DataError, match="no data"):
            metric.compute()
    with pytest.raises(DataError, match="no data"):
        mean_iou(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long), 3)


def test_evaluate_on_an_empty_loader_raises() -> None:
    model = nn.Conv2d(3, 1, 1)
    with pytest.raises(DataError, match=r"yielded no images"):
        evaluate(model, [], MeanIoU(2), device="cpu", precision="fp32")


def test_all_pixels_ignored_is_documented_absent_not_an_error() -> None:
    # Data was seen, but every pixel is void: every class is absent (the documented result).
    target = torch.full((1, 2, 2), 255)
    result = mean_iou(torch.zeros(1, 2, 2, dtype=torch.long), target, 2)
    assert math.isnan(result.miou)
    assert int(result.confusion.sum()) == 0
    assert mean_iou(torch.zeros(1, 2, 2).long(), target, 2, absent="one").miou == 1.0


def test_errors_are_catseg_errors() -> None:
    with pytest.raises(CatsegError):
        MeanIoU(2).compute()
