"""Per-class scores from confusion counts, and the :class:`IoUResult` that carries them.

Internal to :mod:`catseg.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ClassScores", "IoUResult", "class_scores", "nan_mean"]

_FILL = {"nan": math.nan, "zero": 0.0, "one": 1.0}


@dataclass(frozen=True, eq=False)
class IoUResult:
    """What :meth:`MeanIoU.compute` returns.

    Every per-class score comes from the same confusion counts: with ``TP`` the pixels
    of the class predicted as it, ``|G|`` its target pixels and ``|P|`` its predicted
    pixels, IoU is ``TP / (|P| + |G| - TP)``, Dice/F1 ``2 TP / (|P| + |G|)``, precision
    ``TP / |P|`` and recall ``TP / |G|``.

    Zero division: a class absent from both prediction and target (no union) has no
    score at all: every score is NaN, 0 or 1 as ``absent`` says, and a NaN one stays out
    of the means. A class with a union always has every score: precision is 0 when the
    class was never predicted and recall is 0 when it is not in the target (the
    ``zero_division=0`` of torchmetrics and scikit-learn).

    In multilabel mode, class ``k`` is label ``k`` (each label a yes/no question) and
    every label enters the means.

    Attributes:
        miou: Mean IoU over the classes used (foreground only unless
            ``include_background=True``; every label in multilabel mode); NaN when no
            used class has an IoU.
        iou: Per-class IoU, float64, background included (``NaN`` for a class with no
            IoU under ``absent="nan"``).
        dice: Per-class Dice/F1 ``2|P∩G| / (|P| + |G|)`` from the same counts, float64.
        confusion: The dataset-level confusion matrix ``[target, pred]``, int64;
            multilabel: one 2 × 2 matrix ``[label, target, pred]`` per label.
        mdice: Mean Dice/F1 over the same classes as ``miou``.
        precision: Per-class precision ``|P∩G| / |P|``, float64.
        recall: Per-class recall (sensitivity) ``|P∩G| / |G|``, float64.

    With ``per_image=True`` the four per-class scores are means over the images in
    which the class has a score, ``miou``/``mdice`` the mean over all (image, class)
    pairs that have one, and ``confusion`` the dataset-level sum.

    Shape:
        - iou, dice, precision, recall: ``(num_classes,)``.
        - confusion: ``(num_classes, num_classes)``; multilabel ``(num_classes, 2, 2)``.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> result = mean_iou(torch.tensor([[[0, 1], [1, 1]]]),
        ...                   torch.tensor([[[0, 1], [0, 1]]]), num_classes=2)
        >>> result.miou, result.iou.tolist(), result.dice.tolist()
        (0.6666666666666666, [0.5, 0.6666666666666666], [0.6666666666666666, 0.8])
        >>> result.precision.tolist(), result.recall.tolist()
        ([1.0, 0.6666666666666666], [0.5, 1.0])
    """

    miou: float
    iou: Tensor
    dice: Tensor
    confusion: Tensor
    mdice: float
    precision: Tensor
    recall: Tensor


@dataclass(frozen=True)
class ClassScores:
    """Per-class IoU, Dice/F1, precision and recall (float64, same leading shape)."""

    iou: Tensor
    dice: Tensor
    precision: Tensor
    recall: Tensor

    def scored(self) -> Tensor:
        """Where a class has a score (a union, or any class when ``absent`` fills)."""
        return ~torch.isnan(self.iou)


def _class_counts(confusion: Tensor, multilabel: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, |G|, |P|)`` per class from (..., C, C) or multilabel (..., K, 2, 2) counts."""
    counts = confusion.to(torch.float64)
    if multilabel:
        tp = counts[..., 1, 1]
        return tp, counts[..., 1, :].sum(-1), counts[..., :, 1].sum(-1)
    tp = torch.diagonal(counts, dim1=-2, dim2=-1)
    return tp, counts.sum(-1), counts.sum(-2)


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with 0 where the denominator is 0."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1.0), 0.0)


def class_scores(confusion: Tensor, absent: str, *, multilabel: bool) -> ClassScores:
    """Per-class scores of confusion counts; classes with no union get ``absent``'s value."""
    tp, gt, pr = _class_counts(confusion, multilabel)
    union = gt + pr - tp
    no_union = union == 0
    fill = _FILL[absent]
    return ClassScores(
        iou=_ratio(tp, union).masked_fill(no_union, fill),
        dice=_ratio(2.0 * tp, gt + pr).masked_fill(no_union, fill),
        precision=_ratio(tp, pr).masked_fill(no_union, fill),
        recall=_ratio(tp, gt).masked_fill(no_union, fill),
    )


def nan_mean(values: Tensor) -> float:
    """Mean of the non-NaN values; NaN when there is none."""
    if values.numel() == 0 or bool(torch.isnan(values).all()):
        return math.nan
    return float(torch.nanmean(values))
