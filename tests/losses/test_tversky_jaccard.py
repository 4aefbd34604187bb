"""TverskyLoss and JaccardLoss: hand-computed values and their relations to Dice."""

from __future__ import annotations

import pytest
import torch

from catseg.losses import DiceLoss, JaccardLoss, TverskyLoss, jaccard_loss, tversky_loss


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


# probabilities [0.9, 0.2, 0.6, 0.1] against [1, 0, 1, 0]: TP = 1.5, ΣP = 1.8, ΣG = 2
LOGITS = _logit(torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]], dtype=torch.float64))
TARGET = torch.tensor([[[1, 0], [1, 0]]])


def test_tversky_hand_computed() -> None:
    tp, fp, fn = 1.5, 1.8 - 1.5, 2 - 1.5
    index = (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)
    got = tversky_loss(LOGITS, TARGET, alpha=0.3, beta=0.7)
    assert got.item() == pytest.approx(1 - index, abs=1e-12)
    focal = tversky_loss(LOGITS, TARGET, alpha=0.3, beta=0.7, gamma=2.0)
    assert focal.item() == pytest.approx((1 - index) ** 2, abs=1e-12)


def test_tversky_half_half_equals_dice_with_doubled_smooth() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 5, generator=gen)
    target = torch.randint(0, 4, (3, 5, 5), generator=gen)
    target[0, 0] = 255
    for scope in ("batch", "image"):
        for smooth in (0.0, 0.5, 1.0):
            tversky = TverskyLoss(mode="multiclass", smooth=smooth, reduction_scope=scope)
            dice = DiceLoss(mode="multiclass", smooth=2 * smooth, reduction_scope=scope)
            torch.testing.assert_close(tversky(logits, target), dice(logits, target))


def test_tversky_one_one_equals_jaccard() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    target = torch.randint(0, 2, (2, 3, 4, 4), generator=gen)
    got = tversky_loss(logits, target, mode="multilabel", alpha=1.0, beta=1.0)
    torch.testing.assert_close(got, jaccard_loss(logits, target, mode="multilabel"))


def test_beta_above_alpha_punishes_missed_foreground_more() -> None:
    logits = torch.full((1, 1, 2, 2), -2.0)  # predicts background everywhere
    target = torch.tensor([[[1, 1], [0, 0]]])
    recall = tversky_loss(logits, target, alpha=0.2, beta=0.8).item()
    precision = tversky_loss(logits, target, alpha=0.8, beta=0.2).item()
    assert recall > precision


def test_jaccard_hand_computed_and_relation_to_dice() -> None:
    got = jaccard_loss(LOGITS, TARGET, smooth=0.0)
    assert got.item() == pytest.approx(1 - 1.5 / (1.8 + 2 - 1.5), abs=1e-12)
    got = jaccard_loss(LOGITS, TARGET)
    assert got.item() == pytest.approx(1 - 2.5 / (1.8 + 2 - 1.5 + 1), abs=1e-12)
    # J = D / (2 - D) for one class and smooth 0
    dice = 1 - DiceLoss(smooth=0.0)(LOGITS, TARGET).item()
    assert 1 - got.item() != pytest.approx(dice / (2 - dice))  # smooth 1: not exact
    exact = 1 - jaccard_loss(LOGITS, TARGET, smooth=0.0).item()
    assert exact == pytest.approx(dice / (2 - dice), abs=1e-12)


def test_jaccard_multiclass_weights_and_background() -> None:
    probs = torch.tensor(
        [[[[0.7, 0.1], [0.2, 0.5]], [[0.2, 0.8], [0.3, 0.25]], [[0.1, 0.1], [0.5, 0.25]]]],
        dtype=torch.float64,
    )
    logits = torch.log(probs)  # softmax(log p) = p
    target = torch.tensor([[[0, 1], [2, 255]]])
    j = [0.7 / (1.0 + 1 - 0.7), 0.8 / (1.3 + 1 - 0.8), 0.5 / (0.7 + 1 - 0.5)]
    loss = JaccardLoss(mode="multiclass", smooth=0.0, include_background=False)
    assert loss(logits, target).item() == pytest.approx(1 - (j[1] + j[2]) / 2, abs=1e-12)
    loss = JaccardLoss(mode="multiclass", smooth=0.0, class_weights=[0.0, 1.0, 3.0])
    assert loss(logits, target).item() == pytest.approx(1 - (j[1] + 3 * j[2]) / 4, abs=1e-12)
