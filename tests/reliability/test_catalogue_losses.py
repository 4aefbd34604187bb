"""Bad-input catalogue rows for catseg.losses (issues 18 and 21), in the style of test_catalogue.py.

Each row either raises a catseg error of the listed class whose message names the value,
or returns the documented result (checked by value).
"""

from __future__ import annotations

import math

import pytest
import torch
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)

from catseg.errors import ConfigError, ShapeError
from catseg.losses import DiceCELoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss


def _overlapping_labels(_: object) -> float:
    # cloud and shadow on the same pixel: multilabel, perfectly predicted
    target = torch.tensor([[[[1, 0]], [[1, 1]]]])
    return DiceLoss(mode="multilabel")(target * 40.0 - 20.0, target).item()


def _nan_at_ignored_pixel(_: object) -> float:
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 1, 1] = float("nan")
    target = torch.tensor([[[0, 1], [2, 255]]])
    return DiceCELoss(mode="multiclass")(logits, target).item()


ROWS = [
    Row(
        "loss-from-logits-int",
        lambda _: DiceLoss(from_logits=1),
        "ConfigError naming the value",  # type: ignore[arg-type]
        ConfigError,
        r"from_logits must be True or False, got 1",
    ),
    Row(
        "loss-squared-string",
        lambda _: DiceLoss(squared="no"),
        "ConfigError (was: silently True)",  # type: ignore[arg-type]
        ConfigError,
        r"squared must be True or False, got 'no'",
    ),
    Row(
        "loss-smooth-inf",
        lambda _: DiceLoss(smooth=math.inf),
        "ConfigError naming the value",
        ConfigError,
        r"smooth must be a finite number in \[0\.0, 1e\+30\], got inf",
    ),
    Row(
        "loss-tversky-alpha-beta-zero",
        lambda _: TverskyLoss(alpha=0.0, beta=0.0),
        "ConfigError: the loss would be constant",
        ConfigError,
        r"alpha and beta are both 0",
    ),
    Row(
        "loss-focal-scalar-alpha-multiclass",
        lambda _: FocalLoss(mode="multiclass", alpha=0.25),
        "ConfigError: one alpha per class expected",
        ConfigError,
        r"alpha must be one weight per class in multiclass mode .*got 0\.25",
    ),
    Row(
        "loss-lovasz-per-image-none",
        lambda _: LovaszLoss(per_image=None),  # type: ignore[arg-type]
        "ConfigError naming the value",
        ConfigError,
        r"per_image must be True or False, got None",
    ),
    Row(
        "loss-multilabel-target-as-label-map",
        lambda _: DiceLoss(mode="multilabel")(
            torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
        ),
        "ShapeError naming both shapes",
        ShapeError,
        r"target has shape \(2, 4, 4\), expected \(2, 3, 4, 4\)",
    ),
    Row(
        "loss-multilabel-overlapping-labels",
        _overlapping_labels,
        "overlap is allowed: perfect prediction gives 0",
        check=lambda v: abs(v) < 1e-6,
    ),
    Row(
        "loss-nan-logit-at-ignored-pixel",
        _nan_at_ignored_pixel,
        "NaN is not hidden by ignore_index",
        check=math.isnan,
    ),
]


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_losses(row: Row) -> None:
    run_row(row, None)
