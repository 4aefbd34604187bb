from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from catseg.errors import ConfigError, DataError, ShapeError
from catseg.losses import BCEDiceLoss, soft_dice


def test_hand_computed_values() -> None:
    # logits 0 -> p = 0.5; target [1, 0]: BCE = ln 2; Dice = (2·0.5 + 1) / (1 + 1 + 1)
    logits = torch.zeros(1, 1, 1, 2)
    loss = BCEDiceLoss()(logits, torch.tensor([[[1, 0]]]))
    assert loss.item() == pytest.approx(math.log(2) + 1 - 2 / 3, abs=1e-6)
    # the ignored pixel leaves both terms: BCE over one pixel, Dice (1 + 1) / (0.5 + 1 + 1)
    loss = BCEDiceLoss()(logits, torch.tensor([[[1, 255]]]))
    assert loss.item() == pytest.approx(math.log(2) + 1 - 2 / 2.5, abs=1e-6)
    weighted = BCEDiceLoss(bce_weight=0.5, dice_weight=2.0)(logits, torch.tensor([[[1, 0]]]))
    assert weighted.item() == pytest.approx(0.5 * math.log(2) + 2 * (1 - 2 / 3), abs=1e-6)


def test_matches_torch_on_random_batches_with_ignore() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 9, 7, generator=gen)
    target = torch.randint(0, 2, (3, 9, 7), generator=gen)
    target[torch.rand(3, 9, 7, generator=gen) < 0.2] = 255
    valid = target != 255
    bce = F.binary_cross_entropy_with_logits(logits[:, 0][valid], (target[valid] == 1).float())
    dice = soft_dice(logits, target)
    expected = bce + (1 - dice)
    torch.testing.assert_close(BCEDiceLoss()(logits, target), expected, atol=1e-6, rtol=0)
    # (N, 1, H, W) targets, uint8 targets and ignore_index=None
    torch.testing.assert_close(BCEDiceLoss()(logits, target[:, None]), expected)
    torch.testing.assert_close(BCEDiceLoss()(logits, target.to(torch.uint8)), expected)
    plain = torch.randint(0, 2, (3, 9, 7), generator=gen)
    no_ignore = F.binary_cross_entropy_with_logits(logits[:, 0], plain.float())
    no_ignore = no_ignore + 1 - soft_dice(logits, plain, ignore_index=None)
    got = BCEDiceLoss(ignore_index=None)(logits, plain)
    torch.testing.assert_close(got, no_ignore, atol=1e-6, rtol=0)


def test_gradients_flow_and_bf16_is_computed_in_fp32() -> None:
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    target = torch.randint(0, 2, (2, 4, 4))
    BCEDiceLoss()(logits, target).backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    assert bool(logits.grad.abs().sum() > 0)
    low = BCEDiceLoss()(logits.detach().bfloat16(), target)
    assert low.dtype == torch.float32
    reference = BCEDiceLoss()(logits.detach().bfloat16().float(), target)
    torch.testing.assert_close(low, reference)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bce_weight": -1.0}, r"bce_weight must be a finite number in \[0.0, 1e\+30\], got -1.0"),
        ({"dice_weight": float("nan")}, r"dice_weight must be a finite number .*, got nan"),
        ({"bce_weight": "1"}, r"bce_weight must be a finite number .*, got '1'"),
        ({"bce_weight": 0, "dice_weight": 0}, "both 0"),
        ({"smooth": -1.0}, "smooth"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BCEDiceLoss(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    loss = BCEDiceLoss()
    with pytest.raises(ShapeError):
        loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(DataError, match="3"):
        loss(torch.zeros(1, 1, 2, 2), torch.tensor([[[0, 3], [1, 0]]]))
