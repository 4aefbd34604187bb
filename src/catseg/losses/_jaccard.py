"""Soft Jaccard (IoU) loss: :func:`jaccard_loss` and :class:`JaccardLoss`, one implementation."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from catseg.losses._base import LossModule
from catseg.losses._options import LossMode, OverlapOptions, ReductionScope
from catseg.losses._overlap import Score, overlap_value

__all__ = ["JaccardLoss", "jaccard_loss"]


def _jaccard_score(smooth: float, eps: float) -> Score:
    def score(tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        return (tp + smooth) / (sum_p + sum_g - tp + smooth).clamp_min(eps)

    return score


def _jaccard(input: Tensor, target: Tensor, opts: OverlapOptions) -> Tensor:
    return 1.0 - overlap_value(input, target, opts, _jaccard_score(opts.smooth, opts.eps))


def jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    smooth: float = 1.0,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - J`` from logits, in ``[0, 1]``.

    Per class ``J = (TP + s) / (ΣP + ΣG - TP + s)`` with ``TP = Σp·g``, ``ΣP = Σp``,
    ``ΣG = Σg`` over the pixels that are not ignored; the same sums, scopes, class
    weights and empty-class rule as :func:`~catseg.losses.soft_dice` (an empty class
    with nothing predicted scores 1 with ``smooth > 0``). Dice and Jaccard are monotone
    in each other (``J = D / (2 - D)`` for ``smooth = 0``) but weigh errors differently:
    the Jaccard loss punishes a mediocre overlap more.

    Args:
        input: Logits, one channel (binary), C ≥ 2 (multiclass) or K ≥ 1 (multilabel).
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        smooth: Added to numerator and denominator.
        ignore_index: Target value left out entirely; ``None`` keeps every pixel.
        class_weights: One weight per input channel for the class average.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` (sums over the batch) or ``"image"``.

    Returns:
        The scalar loss ``1 - J``, in ``[0, 1]``; shapes, dtypes and errors as for every loss (see
        :mod:`catseg.losses`).

    Examples:
        >>> import torch
        >>> from catseg.losses import jaccard_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5
        >>> jaccard_loss(logits, torch.tensor([[[1, 0]]]), smooth=0.0)  # 1 - 0.5 / 1.5
        tensor(0.6667)
    """
    opts = OverlapOptions.checked(
        mode, smooth, ignore_index, class_weights, include_background, reduction_scope
    )
    return _jaccard(input, target, opts)


class JaccardLoss(LossModule[OverlapOptions]):
    """Module form of :func:`jaccard_loss` (options documented there, checked once, here).

    The checked options are kept in ``options``; a softmax of 0.5 on each of two pixels
    gives ``J = 0.5 / 1.5``:

    Examples:
        >>> import torch
        >>> from catseg.losses import JaccardLoss
        >>> loss_fn = JaccardLoss(mode="multiclass", smooth=0.0)
        >>> loss_fn(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))  # 1 - 0.5 / 1.5
        tensor(0.6667)
    """

    _compute = staticmethod(_jaccard)

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        smooth: float = 1.0,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        options = OverlapOptions.checked(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )
        super().__init__(options)
