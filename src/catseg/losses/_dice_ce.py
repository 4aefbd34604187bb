"""Cross-entropy plus Dice: :func:`dice_ce_loss`, :class:`DiceCELoss` and :class:`BCEDiceLoss`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from catseg.losses._base import OverlapLoss
from catseg.losses._checks import (
    LossMode,
    ReductionScope,
    check_term_weights,
    class_labels,
    float_input,
    sigmoid_target,
    weighted_mean,
)


def dice_ce_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    smooth: float = 1.0,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Cross-entropy plus Dice loss from logits: ``ce_weight·CE + dice_weight·(1 - Dice)``.

    ``CE`` is the softmax cross-entropy (multiclass) or the binary cross-entropy with
    logits (binary, multilabel: one term per pixel and label), averaged over the entries
    whose target is not ``ignore_index``; with ``class_weights`` the weighted mean
    ``Σ w·ce / Σ w`` (torch's ``cross_entropy(weight=...)``). ``Dice`` is
    :func:`~catseg.losses.soft_dice` of the same probabilities. The cross-entropy gives
    every pixel a gradient from the first step; the Dice term keeps small foregrounds
    from being swamped by background.

    Args:
        input: Logits ``(N, C, H, W)``.
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        ce_weight: Weight of the cross-entropy term (finite, >= 0).
        dice_weight: Weight of the Dice term (finite, >= 0; not both 0).
        smooth: Dice smoothing term.
        ignore_index: Target value left out of both terms; ``None`` keeps every pixel.
        class_weights: One weight per input channel, for both terms.
        include_background: Multiclass only: keep channel 0 in the Dice class average.
        reduction_scope: Dice sums over the ``"batch"`` or per ``"image"``.

    Returns:
        The scalar loss, >= 0; shapes, dtypes and errors as for every loss.

    Examples:
        >>> import torch
        >>> from catseg.losses import dice_ce_loss
        >>> logits = torch.zeros(1, 2, 1, 2)                  # softmax p = 0.5
        >>> dice_ce_loss(logits, torch.tensor([[[0, 1]]]), mode="multiclass", smooth=0.0)
        tensor(1.1931)
    """
    return DiceCELoss(
        mode=mode,
        ce_weight=ce_weight,
        dice_weight=dice_weight,
        smooth=smooth,
        ignore_index=ignore_index,
        class_weights=class_weights,
        include_background=include_background,
        reduction_scope=reduction_scope,
    ).forward(input, target)


class DiceCELoss(OverlapLoss):
    """Module form of :func:`dice_ce_loss` (options checked once, here; read-only).

    In multilabel mode each label channel gets its own binary cross-entropy and Dice term:

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceCELoss
        >>> loss_fn = DiceCELoss(mode="multilabel", dice_weight=0.5)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss_fn(logits, torch.randint(0, 2, (2, 3, 8, 8))).backward()
        >>> logits.grad is not None
        True
    """

    _shown = (*OverlapLoss._shown, "ce_weight", "dice_weight")

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        super().__init__(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )
        self.ce_weight, self.dice_weight = check_term_weights(
            ("ce_weight", ce_weight), ("dice_weight", dice_weight)
        )

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        with float_input(input, target, self.mode) as x:
            weights = self._weights(x.shape[1])
            w = None if weights is None else weights.to(device=x.device, dtype=x.dtype)
            if self.mode == "multiclass":
                g, valid = class_labels(target, x.shape, self.ignore_index)
                log_p = torch.log_softmax(x, dim=1)
                ce = -log_p.gather(1, g.unsqueeze(1)).squeeze(1)
                ce_weights = valid.to(x.dtype) * (1.0 if w is None else w[g])
                probs = log_p.exp()
            else:
                g, valid = sigmoid_target(target, x.shape, self.mode, self.ignore_index)
                ce = F.binary_cross_entropy_with_logits(x, g.to(x.dtype), reduction="none")
                ce_weights = valid.to(x.dtype) * (1.0 if w is None else w.view(1, -1, 1, 1))
                probs = torch.sigmoid(x)
            dice = self._class_mean(self._score(*self._sums(probs, g, valid)), weights)
            return self.ce_weight * weighted_mean(ce, ce_weights) + self.dice_weight * (1 - dice)


class BCEDiceLoss(DiceCELoss):
    """Binary cross-entropy plus soft Dice loss for one-logit (binary) models.

    The binary case of :class:`DiceCELoss` under the tutorial's name:
    ``BCEDiceLoss(bce_weight=a, dice_weight=b)`` is ``DiceCELoss(mode="binary",
    ce_weight=a, dice_weight=b)``, with the same numbers and repr.

    Args:
        bce_weight: Weight of the cross-entropy term.
        dice_weight: Weight of the Dice term.
        smooth: Dice smoothing term (see :func:`~catseg.losses.soft_dice`).
        ignore_index: Target value left out of both terms; ``None`` keeps every pixel.

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
        # the tutorial's loss: binary, batch sums, no class weights
        OverlapLoss.__init__(self, "binary", smooth, ignore_index, None, True, "batch")
        self.ce_weight, self.dice_weight = check_term_weights(
            ("bce_weight", bce_weight), ("dice_weight", dice_weight)
        )

    @property
    def bce_weight(self) -> float:
        """Weight of the cross-entropy term (``ce_weight``; read-only)."""
        return self.ce_weight
