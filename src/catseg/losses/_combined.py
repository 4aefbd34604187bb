"""BCEDiceLoss: binary cross-entropy plus soft Dice on one logit channel."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from catseg.errors import ConfigError
from catseg.losses._dice import check_options, soft_dice

__all__ = ["BCEDiceLoss"]


def _check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class BCEDiceLoss(nn.Module):
    """Binary cross-entropy plus soft Dice loss for one-logit (binary) models.

    ``loss = bce_weight · BCE + dice_weight · (1 - Dice)``, where ``BCE`` is the mean
    binary cross-entropy with logits over the pixels whose target is not
    ``ignore_index`` and ``Dice`` is :func:`~catseg.losses.soft_dice` in binary mode
    from logits, summed over the batch. The cross-entropy gives every pixel a gradient
    from the first step; the Dice term keeps small foregrounds from being swamped by
    background. Both are computed in float32, also under bf16/fp16 autocast.

    Args:
        bce_weight: Weight of the cross-entropy term.
        dice_weight: Weight of the Dice term.
        smooth: Dice smoothing term (see :func:`~catseg.losses.soft_dice`).
        ignore_index: Target value left out of both terms; ``None`` keeps every pixel.

    Raises:
        ConfigError: If a weight is negative or not finite, both weights are 0, or
            ``smooth``/``ignore_index`` is invalid.

    Shape:
        - input: ``(N, 1, H, W)`` logits.
        - target: ``(N, H, W)`` or ``(N, 1, H, W)`` with 1 = foreground, 0 = background
          (and ``ignore_index``).
        - output: ``()``.

    Examples:
        >>> import torch
        >>> from catseg.losses import BCEDiceLoss
        >>> logits = torch.zeros(1, 1, 1, 2)               # p = 0.5 everywhere
        >>> BCEDiceLoss()(logits, torch.tensor([[[1, 0]]]))  # ln 2 + 1 - (2·0.5+1)/(1+1+1)
        tensor(1.0265)
        >>> BCEDiceLoss()(logits, torch.tensor([[[1, 255]]]))  # ln 2 + 1 - 2/2.5
        tensor(0.8931)
    """

    def __init__(
        self,
        *,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__()
        self.bce_weight = _check_weight(bce_weight, "bce_weight")
        self.dice_weight = _check_weight(dice_weight, "dice_weight")
        if self.bce_weight == 0 and self.dice_weight == 0:
            raise ConfigError("bce_weight and dice_weight are both 0; the loss would be 0")
        check_options("binary", smooth, 1e-7, "batch", ignore_index, None)
        self.smooth = float(smooth)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The weighted sum of cross-entropy and Dice loss.

        Args:
            input: Logits ``(N, 1, H, W)``.
            target: Label map ``(N, H, W)`` or ``(N, 1, H, W)``.

        Returns:
            The scalar loss.

        Raises:
            ShapeError: If ``input`` is not ``(N, 1, H, W)``.
            ShapeError: If ``target`` does not match the batch and spatial shape of ``input``.
            DTypeError: If ``input`` is not floating point.
            DataError: If ``target`` holds a value other than 0, 1 and ``ignore_index``.
        """
        dice = soft_dice(
            input,
            target,
            mode="binary",
            from_logits=True,
            smooth=self.smooth,
            ignore_index=self.ignore_index,
        )  # also checks the shapes, dtypes and labels
        labels = target[:, 0] if target.ndim == 4 else target
        logits = input[:, 0].float()
        if self.ignore_index is None:
            valid = torch.ones_like(logits)
        else:
            valid = (labels != self.ignore_index).to(logits.dtype)
        foreground = (labels == 1).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, foreground, weight=valid, reduction="sum")
        bce = bce / valid.sum().clamp_min(1.0)
        return self.bce_weight * bce + self.dice_weight * (1.0 - dice)

    def extra_repr(self) -> str:
        return (
            f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}, "
            f"smooth={self.smooth}, ignore_index={self.ignore_index}"
        )
