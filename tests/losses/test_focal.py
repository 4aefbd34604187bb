"""FocalLoss / focal_loss: hand-computed values, torchvision's formula, softmax focal loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from catseg.errors import ConfigError
from catseg.losses import FocalLoss, focal_loss


def _torchvision_formula(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss(reduction="mean"), re-derived from Lin et al. 2017."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean()


def test_hand_computed_binary() -> None:
    # x = 0: p = 1/2, ce = ln 2, (1 - p_t)^2 = 1/4 for both pixels
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[1, 0]]])
    assert focal_loss(logits, target).item() == pytest.approx(math.log(2) / 4, abs=1e-7)
    # alpha 0.25 weighs the positive pixel 0.25 and the negative one 0.75: mean 0.5
    got = focal_loss(logits, target, alpha=0.25)
    assert got.item() == pytest.approx(0.5 * math.log(2) / 4, abs=1e-7)
    # x = ln 3: p = 3/4; positive: -(1/4)^2 ln(3/4); negative: -(3/4)^2 ln(1/4)
    logits = torch.full((1, 1, 1, 2), math.log(3.0))
    expected = (-(1 / 16) * math.log(0.75) - (9 / 16) * math.log(0.25)) / 2
    assert focal_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)
    # an ignored pixel leaves the mean
    got = focal_loss(logits, torch.tensor([[[1, 255]]]))
    assert got.item() == pytest.approx(-(1 / 16) * math.log(0.75), abs=1e-7)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.1, 3.5)])
def test_binary_equals_torchvision_formula(alpha: float, gamma: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 8, 7, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, 2, (3, 1, 8, 7), generator=gen)
    expected = _torchvision_formula(logits, target.double(), alpha, gamma)
    got = focal_loss(logits, target, gamma=gamma, alpha=None if alpha < 0 else alpha)
    torch.testing.assert_close(got, expected)
    # multilabel: the same formula over every (pixel, label)
    multi = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    multi_target = torch.randint(0, 2, (2, 3, 4, 4), generator=gen)
    expected = _torchvision_formula(multi, multi_target.double(), alpha, gamma)
    got = focal_loss(
        multi, multi_target, mode="multilabel", gamma=gamma, alpha=None if alpha < 0 else alpha
    )
    torch.testing.assert_close(got, expected)


def test_binary_equals_real_torchvision() -> None:
    ops = pytest.importorskip("torchvision.ops")
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 6, 6, generator=gen)
    target = torch.randint(0, 2, (2, 1, 6, 6), generator=gen)
    for alpha, gamma in [(0.25, 2.0), (0.5, 1.0), (-1.0, 2.0)]:
        expected = ops.sigmoid_focal_loss(
            logits, target.float(), alpha=alpha, gamma=gamma, reduction="mean"
        )
        got = FocalLoss(gamma=gamma, alpha=None if alpha < 0 else alpha)(logits, target)
        torch.testing.assert_close(got, expected)


def test_multiclass_hand_computed_and_cross_entropy() -> None:
    logits = torch.zeros(1, 2, 1, 2)  # p_y = 1/2: (1/2)^2 · ln 2 per pixel
    target = torch.tensor([[[0, 1]]])
    got = focal_loss(logits, target, mode="multiclass")
    assert got.item() == pytest.approx(math.log(2) / 4, abs=1e-7)
    got = focal_loss(logits, target, mode="multiclass", alpha=[0.25, 0.75])
    assert got.item() == pytest.approx((0.25 + 0.75) / 2 * math.log(2) / 4, abs=1e-7)
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 5, 5, generator=gen)
    target = torch.randint(0, 4, (2, 5, 5), generator=gen)
    target[0, 0] = 255
    ce = F.cross_entropy(logits, target, ignore_index=255)
    got = focal_loss(logits, target, mode="multiclass", gamma=0.0)
    torch.testing.assert_close(got, ce)
    # gamma > 0 only ever lowers every pixel's term
    assert focal_loss(logits, target, mode="multiclass", gamma=2.0).item() < ce.item()


def test_multiclass_alpha_length_is_checked() -> None:
    with pytest.raises(
        ConfigError, match=r"alpha has 2 entries, expected one per input channel \(3\)"
    ):
        FocalLoss(mode="multiclass", alpha=[1.0, 2.0])(
            torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
        )
