"""DiceCELoss / dice_ce_loss: hand-computed values, torch's cross-entropy, BCEDiceLoss equality."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from catseg.losses import BCEDiceLoss, DiceCELoss, dice_ce_loss, soft_dice


def test_hand_computed_multiclass_and_multilabel() -> None:
    # p = 1/2 everywhere: CE = ln 2; each class Dice = 2·0.5 / (1 + 1) = 1/2 (smooth 0)
    logits = torch.zeros(1, 2, 1, 2)
    got = dice_ce_loss(logits, torch.tensor([[[0, 1]]]), mode="multiclass", smooth=0.0)
    assert got.item() == pytest.approx(math.log(2) + 0.5, abs=1e-6)
    # multilabel, label 1 ignored at pixel 1: BCE mean over the 3 counted entries = ln 2;
    # Dice label 0: 2·0.5 / (1 + 1) = 0.5, label 1: 2·0.5 / (0.5 + 1) = 2/3
    target = torch.tensor([[[[1, 0]], [[1, 255]]]])
    got = dice_ce_loss(logits, target, mode="multilabel", smooth=0.0, ce_weight=2.0)
    assert got.item() == pytest.approx(2 * math.log(2) + 1 - (0.5 + 2 / 3) / 2, abs=1e-6)


def test_multiclass_equals_torch_cross_entropy_plus_dice() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 6, 5, generator=gen)
    target = torch.randint(0, 4, (3, 6, 5), generator=gen)
    target[torch.rand(3, 6, 5, generator=gen) < 0.2] = 255
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5])
    ce = F.cross_entropy(logits, target, weight=weights, ignore_index=255)
    dice = soft_dice(
        logits, target, mode="multiclass", class_weights=weights, include_background=False
    )
    got = DiceCELoss(
        mode="multiclass",
        class_weights=weights,
        include_background=False,
        ce_weight=0.3,
        dice_weight=0.7,
    )(logits, target)
    torch.testing.assert_close(got, 0.3 * ce + 0.7 * (1 - dice))


def test_multilabel_equals_torch_bce_plus_dice() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    target = torch.randint(0, 2, (2, 3, 4, 5), generator=gen)
    target[torch.rand(2, 3, 4, 5, generator=gen) < 0.2] = 255
    valid = target != 255
    bce = F.binary_cross_entropy_with_logits(logits[valid], target[valid].float())
    dice = soft_dice(logits, target, mode="multilabel", reduction_scope="image")
    got = dice_ce_loss(logits, target, mode="multilabel", reduction_scope="image")
    torch.testing.assert_close(got, bce + 1 - dice)


def _old_bce_dice(logits: torch.Tensor, target: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """BCEDiceLoss as catseg 0.x computed it (the formula of its source, re-stated)."""
    labels = target[:, 0] if target.ndim == 4 else target
    valid = (labels != 255).float()
    bce = F.binary_cross_entropy_with_logits(
        logits[:, 0], (labels == 1).float(), weight=valid, reduction="sum"
    ) / valid.sum().clamp_min(1.0)
    return a * bce + b * (1 - soft_dice(logits, target))


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_bce_dice_is_the_binary_dice_ce_with_the_same_numbers(a: float, b: float) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 1, 7, 9, generator=gen)
    target = torch.randint(0, 2, (4, 7, 9), generator=gen)
    target[torch.rand(4, 7, 9, generator=gen) < 0.15] = 255
    old = _old_bce_dice(logits, target, a, b)
    new = BCEDiceLoss(bce_weight=a, dice_weight=b)(logits, target)
    torch.testing.assert_close(new, old, atol=1e-6, rtol=0)
    same = DiceCELoss(mode="binary", ce_weight=a, dice_weight=b)(logits, target)
    torch.testing.assert_close(same, new, atol=0, rtol=0)
    assert isinstance(BCEDiceLoss(), DiceCELoss)
    assert BCEDiceLoss(bce_weight=a).bce_weight == a
    # every pixel ignored: both terms are 0 (cross-entropy) and 1 - 1 (empty Dice)
    void = torch.full_like(target, 255)
    assert BCEDiceLoss()(logits, void).item() == pytest.approx(0.0, abs=1e-6)
