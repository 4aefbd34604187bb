"""Tversky and focal Tversky loss: :func:`tversky_loss` and :class:`TverskyLoss`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from catseg._validation import check_finite_float
from catseg.losses._base import LossModule
from catseg.losses._options import LossMode, OverlapOptions, ReductionScope, check_term_weights
from catseg.losses._overlap import Score, overlap_value

__all__ = ["TverskyLoss", "TverskyOptions", "tversky_loss"]


@dataclass(frozen=True, eq=False)
class TverskyOptions:
    """The checked options of :class:`TverskyLoss`."""

    overlap: OverlapOptions
    alpha: float
    beta: float
    gamma: float

    @classmethod
    def checked(
        cls, overlap: OverlapOptions, alpha: object, beta: object, gamma: object
    ) -> TverskyOptions:
        """Check ``alpha``, ``beta`` (>= 0, not both 0) and ``gamma`` (> 0)."""
        a, b = check_term_weights(("alpha", alpha), ("beta", beta))
        g = check_finite_float("gamma", gamma, low=0.0, low_open=True)
        return cls(overlap, a, b, g)

    def describe(self) -> str:
        """The options as ``name=value`` pairs for ``extra_repr``."""
        return (
            f"{self.overlap.describe()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}"
        )


def _tversky_score(opts: TverskyOptions) -> Score:
    smooth, eps = opts.overlap.smooth, opts.overlap.eps

    def score(tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        false_pos = sum_p - tp
        false_neg = sum_g - tp
        index = (tp + smooth) / (
            tp + opts.alpha * false_pos + opts.beta * false_neg + smooth
        ).clamp_min(eps)
        loss = (1.0 - index).clamp_min(0.0)
        return loss if opts.gamma == 1.0 else loss**opts.gamma

    return score


def _tversky(input: Tensor, target: Tensor, opts: TverskyOptions) -> Tensor:
    return overlap_value(input, target, opts.overlap, _tversky_score(opts))


def tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    smooth: float = 1.0,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Tversky loss ``(1 - TI)^gamma`` from logits, averaged over classes.

    Per class the Tversky index is ``TI = (TP + s) / (TP + α·FP + β·FN + s)`` with
    ``TP = Σp·g``, ``FP = Σp·(1 - g)``, ``FN = Σ(1 - p)·g`` over the pixels that are not
    ignored (Salehi et al. 2017). ``β > α`` punishes missed foreground more than false
    alarms (small structures, high recall). ``gamma ≠ 1`` gives the focal Tversky loss
    ``(1 - TI)^γ`` (Abraham & Khan 2019 write the exponent as ``1/γ``: their γ = 4/3 is
    ``gamma=0.75`` here); with ``"image"`` scope the power is taken per image.

    **Relation to Dice.** With ``α = β = 0.5``,
    ``TI = (2·TP + 2s) / (ΣP + ΣG + 2s)``: the Tversky loss with ``smooth = s`` equals
    :class:`~catseg.losses.DiceLoss` with ``smooth = 2s`` (equal for ``smooth = 0``), the
    smp/MONAI smoothing convention. ``α = β = 1`` gives the Jaccard loss.

    Args:
        input: Logits, one channel (binary), C ≥ 2 (multiclass) or K ≥ 1 (multilabel).
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        alpha: Weight of false positives (finite, >= 0).
        beta: Weight of false negatives (finite, >= 0; not both 0).
        gamma: Focal exponent (finite, > 0); 1 is the plain Tversky loss.
        smooth: Added to numerator and denominator.
        ignore_index: Target value left out entirely; ``None`` keeps every pixel.
        class_weights: One weight per input channel for the class average.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` or ``"image"``.

    Returns:
        The scalar loss, in ``[0, 1]`` (``(1 - TI)^gamma``; 0 for a perfect prediction); shapes,
        dtypes and errors as for every loss (see :mod:`catseg.losses`).

    Examples:
        >>> import torch
        >>> from catseg.losses import tversky_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5, target [1, 0]
        >>> tversky_loss(logits, torch.tensor([[[1, 0]]]), alpha=0.3, beta=0.7, smooth=0.0)
        tensor(0.5000)
    """
    overlap = OverlapOptions.checked(
        mode, smooth, ignore_index, class_weights, include_background, reduction_scope
    )
    return _tversky(input, target, TverskyOptions.checked(overlap, alpha, beta, gamma))


class TverskyLoss(LossModule[TverskyOptions]):
    """Module form of :func:`tversky_loss` (options documented there, checked once, here).

    The checked options are kept in ``options``. With ``alpha = beta = 0.5`` and
    ``gamma = 1`` the Tversky index is the Dice coefficient (with ``smooth`` halved):

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceLoss, TverskyLoss
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> tversky = TverskyLoss(mode="multiclass", smooth=0.5)(logits, target)
        >>> dice = DiceLoss(mode="multiclass", smooth=1.0)(logits, target)
        >>> torch.allclose(tversky, dice)                     # alpha = beta = 0.5
        True
    """

    _compute = staticmethod(_tversky)

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        smooth: float = 1.0,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        overlap = OverlapOptions.checked(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )
        super().__init__(TverskyOptions.checked(overlap, alpha, beta, gamma))
