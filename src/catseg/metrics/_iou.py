"""Mean IoU: the stateful :class:`MeanIoU`, the functional :func:`mean_iou` and the result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from catseg.errors import ConfigError
from catseg.metrics._confusion import (
    check_ignore_index,
    check_num_classes,
    confusion_from_labels,
    predicted_labels,
)

__all__ = ["AbsentMode", "IoUResult", "MeanIoU", "mean_iou"]

AbsentMode = Literal["nan", "zero", "one"]
"""What a class absent from both prediction and target scores: no IoU, 0 or 1."""

_ABSENT = ("nan", "zero", "one")


@dataclass(frozen=True, eq=False)
class IoUResult:
    """What :meth:`MeanIoU.compute` returns.

    Attributes:
        miou: Mean IoU over the classes used (foreground only unless
            ``include_background=True``); NaN when no used class has an IoU.
        iou: Per-class IoU, float64, background included (``NaN`` for a class with no
            IoU under ``absent="nan"``).
        dice: Per-class Dice/F1 ``2|P∩G| / (|P| + |G|)`` from the same counts, float64.
        confusion: The dataset-level confusion matrix ``[target, pred]``, int64.
        mdice: Mean Dice/F1 over the same classes as ``miou``.

    Shape:
        - iou, dice: ``(num_classes,)``.
        - confusion: ``(num_classes, num_classes)``.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> result = mean_iou(torch.tensor([[[0, 1], [1, 1]]]),
        ...                   torch.tensor([[[0, 1], [0, 1]]]), num_classes=2)
        >>> result.miou, result.iou.tolist(), result.dice.tolist()
        (0.6666666666666666, [0.5, 0.6666666666666666], [0.6666666666666666, 0.8])
    """

    miou: float
    iou: Tensor
    dice: Tensor
    confusion: Tensor
    mdice: float


def _fill_absent(values: Tensor, absent_mask: Tensor, absent: str) -> Tensor:
    fill = {"nan": math.nan, "zero": 0.0, "one": 1.0}[absent]
    return values.masked_fill(absent_mask, fill)


def _scores(confusion: Tensor, absent: str) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class ``(iou, dice, absent_mask)`` from (..., C, C) confusion counts, float64."""
    counts = confusion.to(torch.float64)
    tp = torch.diagonal(counts, dim1=-2, dim2=-1)
    gt = counts.sum(-1)
    pr = counts.sum(-2)
    union = gt + pr - tp
    absent_mask = union == 0
    iou = _fill_absent(tp / union, absent_mask, absent)
    dice = _fill_absent(2.0 * tp / (gt + pr), absent_mask, absent)
    return iou, dice, absent_mask


def _mean(values: Tensor) -> float:
    if values.numel() == 0 or bool(torch.isnan(values).all()):
        return math.nan
    return float(torch.nanmean(values))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class MeanIoU:
    """Stateful mean IoU accumulated over a dataset (VOC / mmseg definition by default).

    Every :meth:`update` adds a batch to a dataset-level confusion matrix (one
    ``torch.bincount``); :meth:`compute` turns it into per-class IoU
    ``|P∩G| / |P∪G|`` and Dice/F1 and their means. By default a class absent from
    both prediction and ground truth has no IoU and does not enter the mean, pixels
    labelled 255 are ignored and the background (class 0) is left out of the mean.

    ``absent="zero"``/``"one"`` give such classes 0 or 1 instead (``"one"`` is smp's
    convention). ``per_image=True`` computes IoU per image and class and averages the
    (image, class) pairs that have one, like torchmetrics' ``segmentation.MeanIoU``;
    the per-class ``iou`` is then the mean over images in which the class has an IoU.

    State lives on the device of the first :meth:`update`. When ``torch.distributed``
    is initialised (and ``sync=True``), :meth:`compute` sums the state over all ranks;
    every rank must then call it.

    Args:
        num_classes: Number of classes, background included (``2`` for a model with
            one logit channel).
        ignore_index: Target value whose pixels are skipped; ``None`` counts all.
        include_background: Include class 0 in ``miou``/``mdice``.
        threshold: Probability threshold for one-channel scores.
        from_logits: One-channel scores are logits (sigmoid applied before the
            threshold); ``False``: they are probabilities.
        absent: Score of a class absent from prediction and target: ``"nan"`` (no
            score, left out of the mean), ``"zero"`` or ``"one"``.
        per_image: Average per-image IoUs instead of using one dataset-level matrix.
        sync: Sum the state across ranks in :meth:`compute` when distributed.

    Raises:
        ConfigError: If an argument is outside its allowed values (naming it).

    Examples:
        >>> import torch
        >>> from catseg.metrics import MeanIoU
        >>> metric = MeanIoU(num_classes=3)
        >>> metric.update(torch.tensor([[[1, 1], [2, 0]]]), torch.tensor([[[1, 0], [2, 255]]]))
        >>> metric.update(torch.tensor([[[2, 2]]]), torch.tensor([[[2, 1]]]))
        >>> result = metric.compute()
        >>> [round(v, 4) for v in result.iou.tolist()], round(result.miou, 4)
        ([0.0, 0.3333, 0.6667], 0.5)
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = 255,
        include_background: bool = False,
        threshold: float = 0.5,
        from_logits: bool = True,
        absent: AbsentMode = "nan",
        per_image: bool = False,
        sync: bool = True,
    ) -> None:
        check_num_classes(num_classes)
        check_ignore_index(ignore_index)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"threshold must be a float in [0, 1], got {threshold!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be a float in [0, 1], got {threshold!r}")
        if absent not in _ABSENT:
            raise ConfigError(f"absent must be one of {_ABSENT}, got {absent!r}")
        for name, flag in (
            ("include_background", include_background),
            ("from_logits", from_logits),
            ("per_image", per_image),
            ("sync", sync),
        ):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be a bool, got {flag!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.threshold = float(threshold)
        self.from_logits = from_logits
        self.absent: AbsentMode = absent
        self.per_image = per_image
        self.sync = sync
        # [confusion] or, per image, [confusion, iou_sum, dice_sum, count]
        self._tensors: list[Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"MeanIoU(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"include_background={self.include_background}, absent={self.absent!r}, "
            f"per_image={self.per_image})"
        )

    def reset(self) -> None:
        """Forget every update.

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(2)
            >>> metric.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2).long())
            >>> metric.reset()
            >>> int(metric.compute().confusion.sum())
            0
        """
        self._tensors = None

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions.

        Args:
            preds: Integer label map, or scores: arg-max over C ≥ 2 channels, sigmoid
                (if ``from_logits``) and ``> threshold`` for one channel.
            target: Integer label map (``ignore_index`` pixels are skipped).

        Raises:
            ShapeError: If ``preds`` and ``target`` do not fit together or the channel
                count is neither 1 nor ``num_classes``.
            DTypeError: If ``target`` is not an integer tensor, or ``preds`` is neither
                an integer label map nor float scores.
            DataError: If a label is outside ``[0, num_classes)`` and not ``ignore_index``,
                or one-channel ``from_logits=False`` scores lie outside ``[0, 1]``.
            NonFiniteError: If the scores contain NaN.

        Shape:
            - preds: ``(N, H, W)`` labels, ``(N, num_classes, H, W)`` or ``(N, 1, H, W)``
              scores.
            - target: ``(N, H, W)`` (``(N, 1, H, W)`` is squeezed).

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(2)                      # binary model: 1 logit channel
            >>> logits = torch.tensor([[[[3.0, -2.0], [1.0, -1.0]]]])
            >>> metric.update(logits, torch.tensor([[[1, 0], [0, 0]]]))
            >>> metric.compute().miou                    # foreground IoU = 1 / 2
            0.5
        """
        labels, target = predicted_labels(
            preds, target, self.num_classes, threshold=self.threshold, from_logits=self.from_logits
        )
        target = target.to(labels.device)
        if not self.per_image:
            batch = confusion_from_labels(labels, target, self.num_classes, self.ignore_index)
            self._accumulate([batch])
            return
        per_image = confusion_from_labels(
            labels, target, self.num_classes, self.ignore_index, per_image=True
        )
        iou, dice, _ = _scores(per_image, self.absent)
        scored = ~torch.isnan(iou)
        self._accumulate(
            [
                per_image.sum(0),
                torch.where(scored, iou, 0.0).sum(0),
                torch.where(scored, dice, 0.0).sum(0),
                scored.sum(0),
            ]
        )

    def _accumulate(self, values: list[Tensor]) -> None:
        if self._tensors is None:
            self._tensors = values
            return
        for current, value in zip(self._tensors, values, strict=True):
            current += value.to(current.device)

    def _state(self) -> list[Tensor]:
        if self._tensors is not None:
            return self._tensors
        c = self.num_classes
        device = torch.device("cpu")
        if _distributed() and dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        state = [torch.zeros(c, c, dtype=torch.int64, device=device)]
        if self.per_image:
            zero = torch.zeros(c, dtype=torch.float64, device=device)
            state += [zero, zero.clone(), torch.zeros(c, dtype=torch.int64, device=device)]
        return state

    @torch.no_grad()
    def compute(self) -> IoUResult:
        """Turn the accumulated state into IoU, Dice/F1 and their means.

        Returns:
            An :class:`IoUResult` (tensors on the CPU). Before any update every class
            is absent, so ``miou`` is NaN under ``absent="nan"``.

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(3, absent="one")        # class 2 never appears
            >>> metric.update(torch.tensor([[[0, 1]]]), torch.tensor([[[1, 1]]]))
            >>> metric.compute().miou                    # mean of 0.5 (class 1) and 1.0
            0.75
        """
        state = [t.clone() for t in self._state()]
        if self.sync and _distributed():
            for tensor in state:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        state = [t.cpu() for t in state]
        confusion = state[0]
        first = 0 if self.include_background else 1
        if not self.per_image:
            iou, dice, _ = _scores(confusion, self.absent)
            return IoUResult(
                miou=_mean(iou[first:]),
                iou=iou,
                dice=dice,
                confusion=confusion,
                mdice=_mean(dice[first:]),
            )
        iou_sum, dice_sum, count = state[1], state[2], state[3].to(torch.float64)
        iou = iou_sum / count
        dice = dice_sum / count
        total = count[first:].sum()
        nan = torch.tensor(math.nan, dtype=torch.float64)
        miou = iou_sum[first:].sum() / total if total > 0 else nan
        mdice = dice_sum[first:].sum() / total if total > 0 else nan
        return IoUResult(
            miou=float(miou), iou=iou, dice=dice, confusion=confusion, mdice=float(mdice)
        )


def mean_iou(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = 255,
    include_background: bool = False,
    threshold: float = 0.5,
    from_logits: bool = True,
    absent: AbsentMode = "nan",
    per_image: bool = False,
) -> IoUResult:
    """Mean IoU of one set of predictions (the functional form of :class:`MeanIoU`).

    Same definition and options as :class:`MeanIoU`; never synchronises across ranks.

    Args:
        preds: Integer label map or scores (see :meth:`MeanIoU.update`).
        target: Integer label map.
        num_classes: Number of classes, background included.
        ignore_index: Target value whose pixels are skipped; ``None`` counts all.
        include_background: Include class 0 in the means.
        threshold: Probability threshold for one-channel scores.
        from_logits: One-channel scores are logits rather than probabilities.
        absent: ``"nan"``, ``"zero"`` or ``"one"`` for classes absent from both.
        per_image: Average per-image IoUs instead of one dataset-level matrix.

    Returns:
        An :class:`IoUResult`.

    Raises:
        ConfigError: If an option is outside its allowed values.
        ShapeError: If ``preds`` and ``target`` do not fit together.
        DTypeError: If a tensor has an unsupported dtype.
        DataError: If a label is outside ``[0, num_classes)`` and not ``ignore_index``,
            or one-channel ``from_logits=False`` scores lie outside ``[0, 1]``.
        NonFiniteError: If the scores contain NaN.

    Shape:
        - preds: ``(N, H, W)`` labels or ``(N, C, H, W)`` scores.
        - target: ``(N, H, W)``.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> pred = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
        >>> target = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 0]]])
        >>> mean_iou(pred, target, 2).miou                       # dataset level: 1 / 2
        0.5
        >>> mean_iou(pred, target, 2, per_image=True, absent="one").miou  # (0.5 + 1) / 2
        0.75
    """
    metric = MeanIoU(
        num_classes,
        ignore_index=ignore_index,
        include_background=include_background,
        threshold=threshold,
        from_logits=from_logits,
        absent=absent,
        per_image=per_image,
        sync=False,
    )
    metric.update(preds, target)
    return metric.compute()
