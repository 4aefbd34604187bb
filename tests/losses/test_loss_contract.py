"""The contract every loss in catseg.losses keeps, checked for each loss and mode.

gradcheck on small doubles, NaN propagates, ignored pixels contribute nothing (changed
logits and targets there change nothing), multilabel with K = 1 equals binary, bf16 and
autocast are computed in fp32, inputs are not modified, bad options name the value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from catseg.errors import ConfigError, ShapeError
from catseg.losses import (
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LovaszLoss,
    TverskyLoss,
    dice_ce_loss,
    focal_loss,
    jaccard_loss,
    lovasz_loss,
    soft_dice,
    tversky_loss,
)

LossFn = Callable[..., Tensor]


def _dice(input: Tensor, target: Tensor, **kw: Any) -> Tensor:
    return 1.0 - soft_dice(input, target, **kw)


# name -> (function, module class, extra options used in the generic checks)
LOSSES: dict[str, tuple[LossFn, type[torch.nn.Module], dict[str, Any]]] = {
    "dice": (_dice, DiceLoss, {"squared": True}),
    "dice_ce": (dice_ce_loss, DiceCELoss, {"ce_weight": 0.7, "dice_weight": 1.3}),
    "focal": (focal_loss, FocalLoss, {"gamma": 2.0}),
    "tversky": (tversky_loss, TverskyLoss, {"alpha": 0.3, "beta": 0.7, "gamma": 1.5}),
    "jaccard": (jaccard_loss, JaccardLoss, {"smooth": 0.5}),
    "lovasz": (lovasz_loss, LovaszLoss, {}),
    "lovasz_per_image": (lovasz_loss, LovaszLoss, {"per_image": True}),
}
MODES = ("binary", "multiclass", "multilabel")
CASES = [(name, mode) for name in LOSSES for mode in MODES]


def _data(
    mode: str, *, n: int = 2, c: int = 3, h: int = 3, w: int = 4, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Float64 logits and a target with a few ignored (255) pixels."""
    gen = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else c
    logits = torch.randn(n, channels, h, w, generator=gen, dtype=torch.float64)
    if mode == "multiclass":
        target = torch.randint(0, c, (n, h, w), generator=gen)
        drop = torch.rand(n, h, w, generator=gen) < 0.25
    elif mode == "binary":
        target = torch.randint(0, 2, (n, h, w), generator=gen)
        drop = torch.rand(n, h, w, generator=gen) < 0.25
    else:
        target = torch.randint(0, 2, (n, c, h, w), generator=gen)
        drop = torch.rand(n, c, h, w, generator=gen) < 0.25
    return logits, target.masked_fill(drop, 255)


def _call(name: str, mode: str, logits: Tensor, target: Tensor) -> Tensor:
    fn, _, extra = LOSSES[name]
    return fn(logits, target, mode=mode, **extra)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_gradcheck_float64(name: str, mode: str) -> None:
    logits, target = _data(mode)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: _call(name, mode, x, target), (logits,), eps=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_ignored_entries_contribute_nothing(name: str, mode: str) -> None:
    logits, target = _data(mode, seed=5)
    before = _call(name, mode, logits, target)
    ignored = target == 255
    if mode != "multilabel":
        ignored = ignored.unsqueeze(1).expand_as(logits)
    changed = torch.where(ignored, logits * -7.0 + 3.0, logits)
    torch.testing.assert_close(_call(name, mode, changed, target), before)
    # the same pixels ignored under another ignore_index value
    other = target.masked_fill(target == 255, 9)
    fn, _, extra = LOSSES[name]
    again = fn(changed, other, mode=mode, ignore_index=9, **extra)
    torch.testing.assert_close(again, before)
    # and ignoring more pixels does change the value
    more = target.clone()
    more.view(-1)[:3] = 255
    assert not torch.allclose(_call(name, mode, logits, more), before)


@pytest.mark.parametrize(("name", "mode"), CASES)
@pytest.mark.parametrize("where", ["counted", "ignored"])
def test_nan_propagates(name: str, mode: str, where: str) -> None:
    logits, target = _data(mode, seed=7)
    flat_target = target if mode == "multilabel" else target.unsqueeze(1).expand_as(logits)
    wanted = flat_target != 255 if where == "counted" else flat_target == 255
    index = int(torch.nonzero(wanted.reshape(-1))[0])
    logits.view(-1)[index] = float("nan")
    assert torch.isnan(_call(name, mode, logits, target))


@pytest.mark.parametrize("name", list(LOSSES))
def test_multilabel_with_one_channel_equals_binary(name: str) -> None:
    logits, target = _data("binary", n=3, seed=11)
    binary = _call(name, "binary", logits, target)
    multilabel = _call(name, "multilabel", logits, target.unsqueeze(1))
    torch.testing.assert_close(multilabel, binary)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_bf16_and_autocast_compute_in_fp32(name: str, mode: str) -> None:
    logits, target = _data(mode, seed=13)
    low = logits.bfloat16()
    reference = _call(name, mode, low.float(), target)
    got = _call(name, mode, low, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = _call(name, mode, low, target)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, reference)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_inputs_not_modified(name: str, mode: str) -> None:
    logits, target = _data(mode, seed=17)
    copies = logits.clone(), target.clone()
    _call(name, mode, logits, target)
    assert torch.equal(logits, copies[0])
    assert torch.equal(target, copies[1])


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_perfect_prediction_is_the_minimum(name: str, mode: str) -> None:
    _, target = _data(mode, seed=19)
    if mode == "multiclass":
        labels = target.masked_fill(target == 255, 0)
        logits = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double() * 60 - 30
    else:
        good = target.masked_fill(target == 255, 0).double()
        logits = (good * 60 - 30).reshape(target.shape[0], -1, *target.shape[-2:])
    perfect = _call(name, mode, logits, target).item()
    noisy = _call(name, mode, logits * 0.01, target).item()
    assert perfect == pytest.approx(0.0, abs=1e-6)
    assert noisy > perfect


@pytest.mark.parametrize("module", [m for _, m, _ in LOSSES.values()])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"mode": "multi"},
            r"mode must be one of 'binary', 'multiclass', 'multilabel'; got 'multi'",
        ),
        ({"ignore_index": 2.5}, r"ignore_index must be an int or None, got 2\.5"),
        ({"ignore_index": True}, r"ignore_index must be an int or None, got True"),
    ],
)
def test_bad_common_options_name_the_value(
    module: type[torch.nn.Module], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        module(**kwargs)


@pytest.mark.parametrize(
    ("module", "kwargs", "match"),
    [
        (
            FocalLoss,
            {"gamma": -1.0},
            r"gamma must be a finite number in \[0\.0, 1e\+30\], got -1\.0",
        ),
        (FocalLoss, {"gamma": float("nan")}, r"gamma must be a finite number .*got nan"),
        (FocalLoss, {"alpha": 1.5}, r"alpha must be a finite number in \[0\.0, 1\.0\], got 1\.5"),
        (FocalLoss, {"alpha": [0.2, 0.8]}, r"alpha must be a finite number .*got \[0\.2, 0\.8\]"),
        (
            FocalLoss,
            {"mode": "multiclass", "alpha": 0.25},
            r"alpha must be one weight per class in multiclass mode .*got 0\.25",
        ),
        (
            FocalLoss,
            {"mode": "multiclass", "alpha": [1.0, -1.0]},
            r"alpha must be finite numbers in \[0.0, 1e\+30\]",
        ),
        (
            TverskyLoss,
            {"alpha": -0.1},
            r"alpha must be a finite number in \[0\.0, 1e\+30\], got -0\.1",
        ),
        (TverskyLoss, {"beta": float("inf")}, r"beta must be a finite number .*got inf"),
        (TverskyLoss, {"alpha": 0, "beta": 0}, r"alpha and beta are both 0"),
        (
            TverskyLoss,
            {"gamma": 0.0},
            r"gamma must be a finite number in \(0\.0, 1e\+30\], got 0\.0",
        ),
        (
            TverskyLoss,
            {"smooth": -1},
            r"smooth must be a finite number in \[0\.0, 1e\+30\], got -1",
        ),
        (JaccardLoss, {"reduction_scope": "pixel"}, r"reduction_scope must be one of .*'pixel'"),
        (JaccardLoss, {"class_weights": "ab"}, r"class_weights must be a 1-D sequence"),
        (JaccardLoss, {"include_background": 0}, r"include_background must be True or False"),
        (DiceCELoss, {"ce_weight": -1}, r"ce_weight must be a finite number in \[0\.0, 1e\+30\]"),
        (DiceCELoss, {"dice_weight": "1"}, r"dice_weight must be a finite number .*got '1'"),
        (DiceCELoss, {"ce_weight": 0, "dice_weight": 0.0}, r"ce_weight and dice_weight are both 0"),
        (LovaszLoss, {"per_image": "yes"}, r"per_image must be True or False, got 'yes'"),
    ],
)
def test_bad_options_name_the_value(
    module: type[torch.nn.Module], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        module(**kwargs)


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_shapes_raise_shape_errors(name: str) -> None:
    logits, target = _data("multiclass")
    with pytest.raises(ShapeError, match=r"binary mode expects input with 1 channel"):
        _call(name, "binary", logits, target)
    with pytest.raises(
        ShapeError, match=r"target has shape \(2, 3, 3, 4\), expected \(2, 3, 3, 3\)"
    ):
        _call(name, "multilabel", logits[:, :, :, :3].contiguous(), _data("multilabel")[1])
    with pytest.raises(ShapeError, match=r"target has shape \(2, 3, 4\), expected \(2, 3, 3, 4\)"):
        _call(name, "multilabel", logits, target)
