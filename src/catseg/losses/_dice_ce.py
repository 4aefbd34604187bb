"""Cross-entropy plus Dice: :func:`dice_ce_loss`, :class:`DiceCELoss` and :class:`BCEDiceLoss`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from catseg.losses._base import LossModule
from catseg.losses._dice import dice_score
from catseg.losses._inputs import (
    class_labels,
    float_input,
    sigmoid_target,
    weighted_mean,
)
from catseg.losses._options import LossMode, OverlapOptions, ReductionScope, check_term_weights
from catseg.losses._overlap import class_mean, class_sums, sigmoid_sums, weights_for

__all__ = ["BCEDiceLoss", "DiceCELoss", "DiceCEOptions", "dice_ce_loss"]


@dataclass(frozen=True, eq=False)
class DiceCEOptions:
    """The checked options of :class:`DiceCELoss`."""

    overlap: OverlapOptions
    ce_weight: float
    dice_weight: float

    @classmethod
    def checked(
        cls, weights: tuple[tuple[str, object], tuple[str, object]], overlap: OverlapOptions
    ) -> DiceCEOptions:
        """Check the two term weights (``(name, value)`` pairs) beside checked overlap options."""
        ce_weight, dice_weight = check_term_weights(*weights)
        return cls(overlap, ce_weight, dice_weight)

    def describe(self) -> str:
        """The options as ``name=value`` pairs for ``extra_repr``."""
        o = self.overlap
        return f"{o.describe()}, ce_weight={self.ce_weight}, dice_weight={self.dice_weight}"


def _multiclass_terms(
    x: Tensor, target: Tensor, ignore_index: int | None, weights: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cross-entropy (weighted mean over valid pixels) and ``(p, labels, valid)`` for Dice."""
    labels, valid = class_labels(target, x.shape, ignore_index)
    log_p = torch.log_softmax(x, dim=1)
    nll = -log_p.gather(1, labels.unsqueeze(1)).squeeze(1)
    pixel_weights = valid.to(x.dtype)
    if weights is not None:
        pixel_weights = pixel_weights * weights.to(device=x.device, dtype=x.dtype)[labels]
    return weighted_mean(nll, pixel_weights), log_p.exp(), labels, valid


def _sigmoid_terms(
    x: Tensor, target: Tensor, mode: LossMode, ignore_index: int | None, weights: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Binary cross-entropy (mean over valid entries) and the Dice inputs ``(p, g, valid)``."""
    g, valid = sigmoid_target(target, x.shape, mode, ignore_index)
    g = g.to(device=x.device, dtype=x.dtype)
    entry_weights = valid.to(x.dtype)
    if weights is not None:
        entry_weights = entry_weights * weights.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    return weighted_mean(bce, entry_weights), torch.sigmoid(x), g, valid


def _dice_ce(input: Tensor, target: Tensor, opts: DiceCEOptions) -> Tensor:
    o = opts.overlap
    with float_input(input, target, o.mode) as x:
        weights = weights_for(o, x.shape[1])
        if o.mode == "multiclass":
            ce, probs, labels, valid = _multiclass_terms(x, target, o.ignore_index, weights)
            sums = class_sums(probs, labels, valid, o.reduction_scope)
        else:
            ce, probs, g, valid = _sigmoid_terms(x, target, o.mode, o.ignore_index, weights)
            sums = sigmoid_sums(probs, g, valid, o.reduction_scope)
        dice = class_mean(dice_score(o.smooth, o.eps)(*sums), weights, o.first_class)
        return opts.ce_weight * ce + opts.dice_weight * (1.0 - dice)


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
    whose target is not ``ignore_index``; with ``class_weights`` it is the weighted mean
    ``Σ w·ce / Σ w`` (torch's ``cross_entropy(weight=...)`` convention). ``Dice`` is
    :func:`~catseg.losses.soft_dice` from the same probabilities (``include_background``
    and ``class_weights`` apply to its class average). The cross-entropy gives every pixel
    a gradient from the first step; the Dice term keeps small foregrounds from being
    swamped by background. Computed in float32 (float64 for float64 input), also under
    autocast. A NaN logit anywhere (also at an ignored pixel) makes the loss NaN.

    Args:
        input: Logits, one channel (binary), C ≥ 2 (multiclass) or K ≥ 1 (multilabel).
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
        The scalar loss, >= 0 (``ce_weight·CE`` plus ``dice_weight`` times a value in ``[0, 1]``);
        shapes, dtypes and errors as for every loss (see :mod:`catseg.losses`).

    Examples:
        >>> import torch
        >>> from catseg.losses import dice_ce_loss
        >>> logits = torch.zeros(1, 2, 1, 2)                  # softmax p = 0.5
        >>> dice_ce_loss(logits, torch.tensor([[[0, 1]]]), mode="multiclass", smooth=0.0)
        tensor(1.1931)
    """
    weights = (("ce_weight", ce_weight), ("dice_weight", dice_weight))
    overlap = OverlapOptions.checked(
        mode, smooth, ignore_index, class_weights, include_background, reduction_scope
    )
    return _dice_ce(input, target, DiceCEOptions.checked(weights, overlap))


class DiceCELoss(LossModule[DiceCEOptions]):
    """Module form of :func:`dice_ce_loss` (options documented there, checked once, here).

    The checked options are kept in ``options``. In multilabel mode each label channel
    gets its own binary cross-entropy and Dice term:

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceCELoss
        >>> loss_fn = DiceCELoss(mode="multilabel", dice_weight=0.5)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss_fn(logits, torch.randint(0, 2, (2, 3, 8, 8))).backward()
        >>> logits.grad is not None
        True
    """

    _compute = staticmethod(_dice_ce)

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
        weights = (("ce_weight", ce_weight), ("dice_weight", dice_weight))
        overlap = OverlapOptions.checked(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )
        super().__init__(DiceCEOptions.checked(weights, overlap))


class BCEDiceLoss(DiceCELoss):
    """Binary cross-entropy plus soft Dice loss for one-logit (binary) models.

    The binary case of :class:`DiceCELoss` under its historical name and argument names:
    ``BCEDiceLoss(bce_weight=a, dice_weight=b)`` is ``DiceCELoss(mode="binary",
    ce_weight=a, dice_weight=b)``, with the same numbers.
    ``loss = bce_weight · BCE + dice_weight · (1 - Dice)``, where ``BCE`` is the mean
    binary cross-entropy with logits over the pixels whose target is not
    ``ignore_index`` and ``Dice`` is :func:`~catseg.losses.soft_dice` in binary mode
    from logits, summed over the batch. Both are computed in float32 (float64 for
    float64 input), also under bf16/fp16 autocast.

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
        weights = (("bce_weight", bce_weight), ("dice_weight", dice_weight))
        # the historical loss: binary, no class weights, background kept, batch sums
        overlap = OverlapOptions.checked("binary", smooth, ignore_index, None, True, "batch")
        LossModule.__init__(self, DiceCEOptions.checked(weights, overlap))

    @property
    def bce_weight(self) -> float:
        """Weight of the cross-entropy term (read-only)."""
        return self.options.ce_weight

    @property
    def dice_weight(self) -> float:
        """Weight of the Dice term (read-only)."""
        return self.options.dice_weight

    @property
    def smooth(self) -> float:
        """Dice smoothing term (read-only)."""
        return self.options.overlap.smooth

    @property
    def ignore_index(self) -> int | None:
        """Target value left out of both terms (read-only)."""
        return self.options.overlap.ignore_index
