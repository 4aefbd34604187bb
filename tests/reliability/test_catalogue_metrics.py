"""Catalogue rows for the metrics (issue 21: silent wrong answers; issue 18: multilabel).

Same contract as ``test_catalogue.py``: each row either returns the documented result,
checked against a value worked out by hand, or raises the listed catseg error whose
message names the value and what was expected. A silent number where an error is due
fails the row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)
from torch import nn

from catseg.errors import ConfigError, DataError, DTypeError, ShapeError
from catseg.metrics import MeanIoU, confusion_matrix, mean_iou
from catseg.training import evaluate


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


# ------------------------------------------------------------------ issue 21 rows
def _label_eq_num_classes_pred_0(_: object) -> Any:
    # Target label 2 with num_classes=2 under prediction 0: it was dropped (mIoU 1.0).
    return mean_iou(torch.tensor([[[0, 1, 0]]]), torch.tensor([[[0, 1, 2]]]), 2).miou


def _label_eq_num_classes_confusion(_: object) -> Any:
    return confusion_matrix(torch.tensor([[[0, 0]]]), torch.tensor([[[0, 3]]]), 3)


def _int8_minus_one_target(_: object) -> Any:
    target = torch.tensor([[[0, 1, -1]]], dtype=torch.int8)  # -1 compared equal to 255
    return mean_iou(torch.tensor([[[0, 1, 1]]]), target, 2).miou


def _uint8_void_with_ignore_minus_one(_: object) -> Any:
    target = torch.tensor([[[0, 1, 255]]], dtype=torch.uint8)
    return mean_iou(torch.tensor([[[0, 1, 1]]]), target, 2, ignore_index=-1).miou


def _confusion_nan_threshold(_: object) -> Any:
    logits = torch.zeros(1, 1, 2, 2)
    return confusion_matrix(logits, torch.zeros(1, 2, 2, dtype=torch.long), 2, threshold=math.nan)


def _confusion_threshold_above_one(_: object) -> Any:
    logits = torch.zeros(1, 1, 2, 2)
    return confusion_matrix(logits, torch.zeros(1, 2, 2, dtype=torch.long), 2, threshold=1.5)


def _compute_before_update(_: object) -> Any:
    return MeanIoU(2).compute().miou


def _evaluate_empty_loader(_: object) -> Any:
    return evaluate(nn.Conv2d(3, 1, 1), [], MeanIoU(2), device="cpu", precision="fp32").miou


def _all_pixels_void(_: object) -> Any:
    target = torch.full((1, 2, 2), 255)
    result = mean_iou(torch.ones(1, 2, 2, dtype=torch.long), target, 2)
    return math.isnan(result.miou), int(result.confusion.sum())


def _from_logits_string(_: object) -> Any:
    return MeanIoU(2, from_logits="False")  # type: ignore[arg-type]


# ---------------------------------------------------------------- multilabel rows
def _multilabel_target_value_2(_: object) -> Any:
    target = torch.tensor([[[[0, 1]], [[2, 255]]]])
    return mean_iou(torch.zeros(1, 2, 1, 2), target, 2, mode="multilabel")


def _multilabel_float_target(_: object) -> Any:
    return mean_iou(torch.zeros(1, 2, 1, 2), torch.ones(1, 2, 1, 2), 2, mode="multilabel")


def _multilabel_label_map_target(_: object) -> Any:
    # A multiclass label map passed to a multilabel metric.
    return mean_iou(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3).long(), 2, mode="multilabel")


def _multilabel_k1_equals_binary(_: object) -> Any:
    logits = torch.tensor([[[[2.0, -1.0, 0.5, -3.0]]]])
    target = torch.tensor([[[[1, 1, 0, 255]]]])
    multi = mean_iou(logits, target, 1, mode="multilabel").miou
    return multi, mean_iou(logits, target, 2).miou  # TP 1, FN 1, FP 1: IoU 1 / 3


ROWS = [
    Row("metric-label-eq-num-classes-under-pred-0", _label_eq_num_classes_pred_0,
        "DataError naming label, range and ignore_index", DataError,
        r"label\(s\) \[2\] outside \[0, 1\] that are not ignore_index=255 \(num_classes=2\)"),
    Row("confusion-matrix-label-eq-num-classes", _label_eq_num_classes_confusion,
        "DataError naming the label", DataError, r"label\(s\) \[3\] outside \[0, 2\]"),
    Row("metric-int8-minus-one-target", _int8_minus_one_target,
        "DataError: -1 is not wrapped into 255", DataError,
        r"label\(s\) \[-1\] .* torch\.int8 target cannot hold 255"),
    Row("metric-uint8-255-with-ignore-minus-one", _uint8_void_with_ignore_minus_one,
        "DataError: 255 is not -1", DataError, r"\[255\] .* not ignore_index=-1"),
    Row("confusion-matrix-nan-threshold", _confusion_nan_threshold,
        "ConfigError like MeanIoU", ConfigError, r"threshold must be a finite number .* nan"),
    Row("confusion-matrix-threshold-above-one", _confusion_threshold_above_one,
        "ConfigError like MeanIoU", ConfigError, r"threshold .* in \(0\.0, 1\.0\), got 1\.5"),
    Row("metric-compute-before-update", _compute_before_update,
        "DataError: no data, not NaN", DataError, r"compute\(\) has no data"),
    Row("evaluate-empty-loader", _evaluate_empty_loader,
        "DataError: no data, not NaN", DataError, r"yielded no images|no data"),
    Row("metric-all-pixels-void", _all_pixels_void,
        "documented: every class absent, NaN mIoU, empty matrix", check=_equal((True, 0))),
    Row("metric-from-logits-string", _from_logits_string,
        "ConfigError naming the option", ConfigError, r"from_logits must be True or False"),
    Row("multilabel-target-value-2", _multilabel_target_value_2,
        "DataError naming value and label", DataError,
        r"value\(s\) \[2\] \(for label\(s\) \[1\]\) that are neither 0, 1 nor ignore_index"),
    Row("multilabel-float-target", _multilabel_float_target,
        "DTypeError naming the dtype", DTypeError, r"multi-hot .* got dtype torch\.float32"),
    Row("multilabel-label-map-target", _multilabel_label_map_target,
        "ShapeError naming the shapes", ShapeError, r"with K = num_classes = 2, got \(1, 3, 3\)"),
    Row("multilabel-one-label-equals-binary", _multilabel_k1_equals_binary,
        "equal to the binary metric: 1/3", check=_equal((1 / 3, 1 / 3))),
]  # fmt: skip


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_metrics(row: Row) -> None:
    run_row(row, None)
