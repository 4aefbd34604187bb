"""soft_dice / SoftDice / DiceLoss in multilabel mode: K sigmoid channels, multi-hot targets."""

from __future__ import annotations

import pytest
import torch

from catseg.errors import ConfigError, DataError, DTypeError, ReadOnlyOptionError, ShapeError
from catseg.losses import DiceLoss, soft_dice

# two labels on a 1 x 3 image, probabilities given directly
P = torch.tensor([[[[0.9, 0.2, 0.6]], [[0.3, 0.8, 0.5]]]])
T = torch.tensor([[[[1, 0, 1]], [[0, 1, 255]]]])  # label 1 ignored at the last pixel


def _d(tp: float, sp: float, sg: float, s: float = 1.0) -> float:
    return (2 * tp + s) / (sp + sg + s)


def test_hand_computed_with_ignore_per_label() -> None:
    d0 = _d(0.9 + 0.6, 0.9 + 0.2 + 0.6, 2)
    d1 = _d(0.8, 0.3 + 0.8, 1)  # the ignored (pixel, label) pair leaves both sums
    got = soft_dice(P, T, mode="multilabel", from_logits=False)
    assert got.item() == pytest.approx((d0 + d1) / 2, abs=1e-6)
    weighted = soft_dice(P, T, mode="multilabel", from_logits=False, class_weights=[1.0, 3.0])
    assert weighted.item() == pytest.approx((d0 + 3 * d1) / 4, abs=1e-6)
    squared = soft_dice(P, T, mode="multilabel", from_logits=False, squared=True, smooth=0.0)
    s0 = 2 * 1.5 / (0.81 + 0.04 + 0.36 + 2)
    s1 = 2 * 0.8 / (0.09 + 0.64 + 1)
    assert squared.item() == pytest.approx((s0 + s1) / 2, abs=1e-6)


def test_overlapping_labels_are_independent() -> None:
    # Both labels on the same pixel: a multiclass target cannot say that.
    probs = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]]])
    target = torch.tensor([[[[1, 0]], [[1, 0]]]])
    assert soft_dice(probs, target, mode="multilabel", from_logits=False).item() == 1.0
    assert DiceLoss(mode="multilabel", from_logits=False)(probs, target).item() == 0.0


def test_equals_binary_dice_per_channel_and_k1_equals_binary() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, generator=gen)
    target = torch.randint(0, 2, (3, 4, 5, 6), generator=gen)
    target[torch.rand(3, 4, 5, 6, generator=gen) < 0.2] = 255
    for scope in ("batch", "image"):
        per_channel = [
            soft_dice(logits[:, k : k + 1], target[:, k], reduction_scope=scope) for k in range(4)
        ]
        got = soft_dice(logits, target, mode="multilabel", reduction_scope=scope)
        torch.testing.assert_close(got, torch.stack(per_channel).mean())
        one = soft_dice(logits[:, :1], target[:, :1], mode="multilabel", reduction_scope=scope)
        torch.testing.assert_close(one, per_channel[0])


def test_integer_float_and_bool_targets_agree() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    target = torch.randint(0, 2, (2, 3, 4, 4), generator=gen)
    expected = soft_dice(logits, target, mode="multilabel")
    for other in (target.float(), target.bool(), target.to(torch.uint8), target.double()):
        torch.testing.assert_close(soft_dice(logits, other, mode="multilabel"), expected)
    with_void = target.float().masked_fill(target == 0, 255.0)
    ignored = soft_dice(logits, target.masked_fill(target == 0, 255), mode="multilabel")
    torch.testing.assert_close(soft_dice(logits, with_void, mode="multilabel"), ignored)


def test_include_background_does_not_drop_a_label() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 2, (2, 3, 4, 4))
    a = soft_dice(logits, target, mode="multilabel", include_background=False)
    torch.testing.assert_close(a, soft_dice(logits, target, mode="multilabel"))


def test_module_and_read_only_options() -> None:
    loss = DiceLoss(mode="multilabel", smooth=0.5)
    assert loss.mode == "multilabel"
    assert loss.smooth == 0.5
    with pytest.raises(ReadOnlyOptionError, match="read-only"):
        loss.smooth = 2.0
    assert loss.smooth == 0.5


def test_multilabel_errors_name_the_problem() -> None:
    logits = torch.randn(2, 3, 4, 4)
    loss = DiceLoss(mode="multilabel")
    with pytest.raises(ShapeError, match=r"target has shape \(2, 4, 4\), expected \(2, 3, 4, 4\)"):
        loss(logits, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(
        DataError, match=r"target contains label 2; multilabel mode expects labels in \[0, 1\]"
    ):
        loss(logits, torch.full((2, 3, 4, 4), 2))
    with pytest.raises(DataError, match=r"float target must hold only 0 and 1"):
        loss(logits, torch.full((2, 3, 4, 4), 0.5))
    with pytest.raises(DTypeError, match=r"target must be an integer label map, got dtype"):
        loss(logits, torch.zeros(2, 3, 4, 4, dtype=torch.complex64))
    with pytest.raises(
        ConfigError, match=r"class_weights has 2 entries, expected one per input channel \(3\)"
    ):
        DiceLoss(mode="multilabel", class_weights=[1.0, 1.0])(logits, torch.zeros(2, 3, 4, 4))
