"""One bad argument at a time over the public API (issue #21's acceptance).

* NaN and ±inf: every (callable, argument) pair below documents a finite value and must
  refuse a non-finite one with a :class:`~catseg.errors.ConfigError` naming the argument
  (a property over the bad value, the pair and, for sequences, the bad entry's position).
* Wrong type: each public constructor, given an object of a type nothing expects for one
  argument at a time (the others valid), raises a catseg error that names the argument,
  never a bare ``TypeError``/``AttributeError`` from deep inside.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_builders import single_threaded_torch  # noqa: F401  (autouse fixture)

from catseg import losses as lo
from catseg import metrics as me
from catseg.data import transforms as tf
from catseg.errors import CatsegError, ConfigError
from catseg.models import UNet, UNetConfig, param_groups
from catseg.predict import Segmenter
from catseg.training import RunOptions
from catseg.visualize import overlay

LOGIT = torch.zeros(1, 1, 4, 4)
LABELS = torch.zeros(1, 4, 4, dtype=torch.long)
IMAGE = torch.zeros(3, 4, 4)
MASK = torch.zeros(4, 4, dtype=torch.long)
NON_FINITE = [math.nan, math.inf, -math.inf]


def _tiny() -> UNet:
    return UNet(num_classes=1, init_features=4, depth=1)


def _triple(value: float, at: int, fill: float) -> tuple[float, float, float]:
    values = [fill, fill, fill]
    values[at] = value
    return (values[0], values[1], values[2])


# (callable, argument): call(value, position) puts the non-finite value in that argument
# (at ``position`` for a sequence argument; scalars ignore it).
FINITE_ARGUMENTS: dict[str, tuple[str, Callable[[float, int], object]]] = {
    "DiceLoss.smooth": ("smooth", lambda v, i: lo.DiceLoss(smooth=v)),
    "DiceLoss.eps": ("eps", lambda v, i: lo.DiceLoss(eps=v)),
    "DiceLoss.class_weights": (
        "class_weights",
        lambda v, i: lo.DiceLoss(mode="multiclass", class_weights=list(_triple(v, i, 1.0))),
    ),
    "SoftDice.smooth": ("smooth", lambda v, i: lo.SoftDice(smooth=v)),
    "soft_dice.smooth": ("smooth", lambda v, i: lo.soft_dice(LOGIT, LABELS, smooth=v)),
    "soft_dice.eps": ("eps", lambda v, i: lo.soft_dice(LOGIT, LABELS, eps=v)),
    "DiceCELoss.ce_weight": ("ce_weight", lambda v, i: lo.DiceCELoss(ce_weight=v)),
    "DiceCELoss.dice_weight": ("dice_weight", lambda v, i: lo.DiceCELoss(dice_weight=v)),
    "DiceCELoss.smooth": ("smooth", lambda v, i: lo.DiceCELoss(smooth=v)),
    "dice_ce_loss.ce_weight": (
        "ce_weight",
        lambda v, i: lo.dice_ce_loss(LOGIT, LABELS, ce_weight=v),
    ),
    "BCEDiceLoss.bce_weight": ("bce_weight", lambda v, i: lo.BCEDiceLoss(bce_weight=v)),
    "BCEDiceLoss.dice_weight": ("dice_weight", lambda v, i: lo.BCEDiceLoss(dice_weight=v)),
    "FocalLoss.gamma": ("gamma", lambda v, i: lo.FocalLoss(gamma=v)),
    "FocalLoss.alpha": ("alpha", lambda v, i: lo.FocalLoss(alpha=v)),
    "focal_loss.gamma": ("gamma", lambda v, i: lo.focal_loss(LOGIT, LABELS, gamma=v)),
    "JaccardLoss.smooth": ("smooth", lambda v, i: lo.JaccardLoss(smooth=v)),
    "jaccard_loss.smooth": ("smooth", lambda v, i: lo.jaccard_loss(LOGIT, LABELS, smooth=v)),
    "TverskyLoss.alpha": ("alpha", lambda v, i: lo.TverskyLoss(alpha=v)),
    "TverskyLoss.beta": ("beta", lambda v, i: lo.TverskyLoss(beta=v)),
    "TverskyLoss.gamma": ("gamma", lambda v, i: lo.TverskyLoss(gamma=v)),
    "tversky_loss.smooth": ("smooth", lambda v, i: lo.tversky_loss(LOGIT, LABELS, smooth=v)),
    "MeanIoU.threshold": ("threshold", lambda v, i: me.MeanIoU(2, threshold=v)),
    "mean_iou.threshold": ("threshold", lambda v, i: me.mean_iou(LOGIT, LABELS, 2, threshold=v)),
    "confusion_matrix.threshold": (
        "threshold",
        lambda v, i: me.confusion_matrix(LOGIT, LABELS, 2, threshold=v),
    ),
    "ColorJitter.brightness": ("brightness", lambda v, i: tf.ColorJitter(brightness=v)),
    "ColorJitter.contrast": ("contrast", lambda v, i: tf.ColorJitter(contrast=v)),
    "ColorJitter.saturation": ("saturation", lambda v, i: tf.ColorJitter(saturation=v)),
    "Normalize.mean": (
        "mean",
        lambda v, i: tf.Normalize(mean=_triple(v, i, 0.5), std=(0.2, 0.2, 0.2)),
    ),
    "Normalize.std": (
        "std",
        lambda v, i: tf.Normalize(mean=(0.5, 0.5, 0.5), std=_triple(v, i, 0.2)),
    ),
    "PadToMultiple.image_fill": ("image_fill", lambda v, i: tf.PadToMultiple(8, image_fill=v)),
    "RandomHorizontalFlip.p": ("p", lambda v, i: tf.RandomHorizontalFlip(p=v)),
    "RandomResizedCrop.scale": (
        "scale",
        lambda v, i: tf.RandomResizedCrop((4, 4), scale=(0.5, v) if i else (v, 1.0)),
    ),
    "RandomResizedCrop.ratio": (
        "ratio",
        lambda v, i: tf.RandomResizedCrop((4, 4), ratio=(0.75, v) if i else (v, 1.33)),
    ),
    "RandomRotation.degrees": ("degrees", lambda v, i: tf.RandomRotation(v)),
    "RandomRotation.degrees range": (
        "degrees",
        lambda v, i: tf.RandomRotation((-10.0, v) if i else (v, 10.0)),
    ),
    "RandomRotation.image_fill": (
        "image_fill",
        lambda v, i: tf.RandomRotation(10.0, image_fill=v),
    ),
    "RunOptions.grad_clip": ("grad_clip", lambda v, i: RunOptions(grad_clip=v)),
    "Segmenter.threshold": ("threshold", lambda v, i: Segmenter(_tiny(), threshold=v)),
    "UNet.describe.mean": (
        "mean",
        lambda v, i: _tiny().describe(mean=_triple(v, i, 0.5), std=(0.2, 0.2, 0.2)),
    ),
    "UNet.describe.std": (
        "std",
        lambda v, i: _tiny().describe(mean=(0.5, 0.5, 0.5), std=_triple(v, i, 0.2)),
    ),
    "UNet.dropout": ("dropout", lambda v, i: UNet(num_classes=1, dropout=v)),
    "UNetConfig.dropout": ("dropout", lambda v, i: UNetConfig(num_classes=1, dropout=v)),
    "param_groups.encoder_lr": (
        "encoder_lr",
        lambda v, i: param_groups(UNet(num_classes=1, init_features=4, depth=1), encoder_lr=v),
    ),
    "param_groups.decoder_lr": (
        "decoder_lr",
        lambda v, i: param_groups(UNet(num_classes=1, init_features=4, depth=1), decoder_lr=v),
    ),
    "overlay.alpha": ("alpha", lambda v, i: overlay(IMAGE, MASK, alpha=v)),
}


@settings(max_examples=150, deadline=None)
@given(
    case=st.sampled_from(sorted(FINITE_ARGUMENTS)),
    value=st.sampled_from(NON_FINITE),
    position=st.integers(0, 2),
)
def test_non_finite_values_are_refused_naming_the_argument(
    case: str, value: float, position: int
) -> None:
    argument, call = FINITE_ARGUMENTS[case]
    with pytest.raises(ConfigError, match=argument):
        call(value, position)


@pytest.mark.parametrize("case", sorted(FINITE_ARGUMENTS))
def test_every_finite_case_is_refused_for_nan_and_both_infinities(case: str) -> None:
    # the property above samples; this sweeps the whole table once, deterministically
    argument, call = FINITE_ARGUMENTS[case]
    for value in NON_FINITE:
        with pytest.raises(ConfigError, match=argument):
            call(value, 1)


class Alien:
    """A value of a type no catseg argument expects (not a number, string, sequence ...)."""

    def __repr__(self) -> str:
        return "<Alien>"


# public constructors and the valid values of their required arguments
CONSTRUCTORS: list[tuple[Callable[..., object], dict[str, Any]]] = [
    (lo.DiceLoss, {}),
    (lo.SoftDice, {}),
    (lo.DiceCELoss, {}),
    (lo.BCEDiceLoss, {}),
    (lo.FocalLoss, {}),
    (lo.JaccardLoss, {}),
    (lo.TverskyLoss, {}),
    (lo.LovaszLoss, {}),
    (me.MeanIoU, {"num_classes": 2}),
    (tf.ColorJitter, {}),
    (tf.Normalize, {"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2)}),
    (tf.PadToMultiple, {"multiple": 8}),
    (tf.RandomHorizontalFlip, {}),
    (tf.RandomResizedCrop, {"size": (4, 4)}),
    (tf.RandomRotation, {"degrees": 10.0}),
    (tf.Resize, {"size": (4, 4)}),
    (tf.Compose, {"transforms": []}),
    (RunOptions, {}),
    (Segmenter, {"model": UNet(num_classes=1, init_features=4, depth=1)}),
    (UNet, {"num_classes": 1}),
    (UNetConfig, {"num_classes": 1}),
]
ONE_BAD_ARGUMENT = [
    pytest.param(ctor, required, parameter.name, id=f"{ctor.__name__}.{parameter.name}")
    for ctor, required in CONSTRUCTORS
    for parameter in inspect.signature(ctor).parameters.values()
    if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
]


def test_the_sweep_covers_every_constructor_argument() -> None:
    assert len(ONE_BAD_ARGUMENT) >= 120  # 129 when written; a shrinking table is a bug


@pytest.mark.parametrize(("ctor", "required", "argument"), ONE_BAD_ARGUMENT)
def test_a_wrong_type_gives_a_catseg_error_naming_the_argument(
    ctor: Callable[..., object], required: dict[str, Any], argument: str
) -> None:
    ctor(**required)  # the valid call works, so the error below is the bad argument's
    with pytest.raises(CatsegError, match=argument):
        ctor(**{**required, argument: Alien()})
