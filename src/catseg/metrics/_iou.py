"""Mean IoU: the stateful :class:`MeanIoU` and the functional :func:`mean_iou`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from catseg._validation import check_bool, check_choice
from catseg.errors import DataError
from catseg.metrics._confusion import MetricMode, check_options
from catseg.metrics._matrix import batch_confusion
from catseg.metrics._scores import IoUResult, class_scores, nan_mean

__all__ = ["AbsentMode", "IoUResult", "MeanIoU", "mean_iou"]

AbsentMode = Literal["nan", "zero", "one"]
"""What a class absent from both prediction and target scores: no IoU, 0 or 1."""

_ABSENT: tuple[AbsentMode, ...] = ("nan", "zero", "one")

_Map = Callable[[Tensor], Tensor]


@dataclass
class _PerImageSums:
    """``per_image=True`` state: per class, sums over images of each per-image score.

    ``scored[c]`` counts the images in which class ``c`` has a score; the per-class
    result is ``sum / scored``.
    """

    iou: Tensor
    dice: Tensor
    precision: Tensor
    recall: Tensor
    scored: Tensor

    @classmethod
    def of_batch(cls, per_image: Tensor, absent: str, *, multilabel: bool) -> _PerImageSums:
        """Sums over the images of a batch of per-image confusion counts."""
        scores = class_scores(per_image, absent, multilabel=multilabel)
        scored = scores.scored()

        def total(values: Tensor) -> Tensor:
            return torch.where(scored, values, 0.0).sum(0)

        return cls(
            iou=total(scores.iou),
            dice=total(scores.dice),
            precision=total(scores.precision),
            recall=total(scores.recall),
            scored=scored.sum(0),
        )

    def map(self, fn: _Map) -> _PerImageSums:
        return _PerImageSums(
            fn(self.iou), fn(self.dice), fn(self.precision), fn(self.recall), fn(self.scored)
        )

    def add(self, other: _PerImageSums) -> None:
        for mine, theirs in (
            (self.iou, other.iou),
            (self.dice, other.dice),
            (self.precision, other.precision),
            (self.recall, other.recall),
            (self.scored, other.scored),
        ):
            mine += theirs.to(mine.device)


@dataclass
class _Totals:
    """Everything :class:`MeanIoU` accumulates; every field is summed across ranks.

    ``pixels`` counts the target pixels passed to ``update`` (ignored ones included):
    zero means the metric has seen no data.
    """

    confusion: Tensor
    pixels: Tensor
    per_image: _PerImageSums | None = None

    @classmethod
    def zeros(cls, shape: tuple[int, ...], per_image: bool, device: torch.device) -> _Totals:
        confusion = torch.zeros(shape, dtype=torch.int64, device=device)
        pixels = torch.zeros((), dtype=torch.int64, device=device)
        if not per_image:
            return cls(confusion, pixels)
        zero = torch.zeros(shape[0], dtype=torch.float64, device=device)
        count = torch.zeros(shape[0], dtype=torch.int64, device=device)
        sums = _PerImageSums(zero, zero.clone(), zero.clone(), zero.clone(), count)
        return cls(confusion, pixels, sums)

    def map(self, fn: _Map) -> _Totals:
        sums = None if self.per_image is None else self.per_image.map(fn)
        return _Totals(fn(self.confusion), fn(self.pixels), sums)

    def add(self, other: _Totals) -> None:
        self.confusion += other.confusion.to(self.confusion.device)
        self.pixels += other.pixels.to(self.pixels.device)
        if self.per_image is not None and other.per_image is not None:
            self.per_image.add(other.per_image)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(tensor: Tensor) -> Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class MeanIoU:
    """Stateful mean IoU accumulated over a dataset (VOC / mmseg definition by default).

    Every :meth:`update` adds a batch to a dataset-level confusion matrix (one
    ``torch.bincount``); :meth:`compute` turns it into per-class IoU
    ``|P∩G| / |P∪G|``, Dice/F1, precision and recall and the means. By default a
    class absent from both prediction and ground truth has no IoU and does not enter
    the mean, pixels labelled 255 are ignored and the background (class 0) is left out
    of the mean.

    ``absent="zero"``/``"one"`` give such classes 0 or 1 instead (``"one"`` is smp's
    convention). ``per_image=True`` computes IoU per image and class and averages the
    (image, class) pairs that have one, like torchmetrics' ``segmentation.MeanIoU``;
    the per-class ``iou`` is then the mean over images in which the class has an IoU.

    ``mode="multilabel"`` scores K independent labels per pixel: ``(N, K, H, W)``
    scores (sigmoid, then ``> threshold`` per label) against multi-hot ``(N, K, H, W)``
    targets of 0 and 1, where ``ignore_index`` skips that pixel for that label. Each
    label gets a binary confusion matrix over the dataset, and ``miou`` is the mean
    over all K labels (torchmetrics' ``MultilabelJaccardIndex(average="macro")``;
    ``include_background`` has no effect: every label is a foreground label). With
    K = 1 it equals the binary metric ``MeanIoU(2)`` on one-channel scores.

    State lives on the device of the first :meth:`update`. When ``torch.distributed``
    is initialised (and ``sync=True``), :meth:`compute` sums the state over all ranks;
    every rank must then call it.

    Args:
        num_classes: Number of classes, background included (``2`` for a model with
            one logit channel); multilabel: the number of labels K ≥ 1.
        ignore_index: Target value whose pixels are skipped; ``None`` counts all.
        include_background: Include class 0 in ``miou``/``mdice`` (multiclass only).
        threshold: Probability threshold for sigmoid scores, in (0, 1).
        from_logits: Sigmoid scores are logits (sigmoid applied before the
            threshold); ``False``: they are probabilities.
        absent: Score of a class absent from prediction and target: ``"nan"`` (no
            score, left out of the mean), ``"zero"`` or ``"one"``.
        per_image: Average per-image scores instead of using one dataset-level matrix.
        sync: Sum the state across ranks in :meth:`compute` when distributed.
        mode: ``"multiclass"`` (one label per pixel; binary is two classes) or
            ``"multilabel"``.

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

        Two labels per pixel ("cat", "indoors"), the second ignored in one pixel:

        >>> multi = MeanIoU(2, mode="multilabel")
        >>> logits = torch.tensor([[[[4.0, -4.0]], [[4.0, 4.0]]]])
        >>> multi.update(logits, torch.tensor([[[[1, 1]], [[1, 255]]]]))
        >>> multi.compute().iou.tolist()                 # cat: 1 / 2, indoors: 1 / 1
        [0.5, 1.0]
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
        mode: MetricMode = "multiclass",
    ) -> None:
        (
            self.num_classes,
            self.ignore_index,
            self.threshold,
            self.from_logits,
            self.mode,
        ) = check_options(num_classes, ignore_index, threshold, from_logits, mode)
        self.include_background = check_bool("include_background", include_background)
        self.absent: AbsentMode = check_choice("absent", absent, _ABSENT)
        self.per_image = check_bool("per_image", per_image)
        self.sync = check_bool("sync", sync)
        self._totals: _Totals | None = None

    def __repr__(self) -> str:
        mode = "" if self.mode == "multiclass" else f", mode={self.mode!r}"
        return (
            f"MeanIoU(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"include_background={self.include_background}, absent={self.absent!r}, "
            f"per_image={self.per_image}{mode})"
        )

    @property
    def _multilabel(self) -> bool:
        return self.mode == "multilabel"

    def reset(self) -> None:
        """Forget every update.

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(2)
            >>> metric.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2).long())
            >>> metric.reset()
            >>> metric.update(torch.zeros(1, 1, 2, dtype=torch.long), torch.ones(1, 1, 2).long())
            >>> metric.compute().confusion.tolist()      # only the second update counts
            [[0, 0], [2, 0]]
        """
        self._totals = None

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions.

        Args:
            preds: Integer label map, or scores: arg-max over C ≥ 2 channels, sigmoid
                (if ``from_logits``) and ``> threshold`` for one channel; multilabel:
                ``(N, K, H, W)`` scores (sigmoid and threshold per label) or a {0, 1} map.
            target: Integer label map (``ignore_index`` pixels are skipped); multilabel:
                multi-hot ``(N, K, H, W)`` map of 0 and 1 (or bool).

        Raises:
            ShapeError: If ``preds`` and ``target`` do not fit together or the channel
                count is neither 1 nor ``num_classes``.
            DTypeError: If ``target`` is not an integer tensor, or ``preds`` is neither
                an integer label map nor float scores.
            DataError: If a target label is outside ``[0, num_classes)`` (multilabel:
                not 0 or 1) and not ``ignore_index``, whatever the prediction (a
                negative label in a signed mask included), a predicted label is outside
                that range, or ``from_logits=False`` scores lie outside ``[0, 1]``.
            NonFiniteError: If the scores contain NaN.

        Shape:
            - preds: ``(N, H, W)`` labels, ``(N, num_classes, H, W)`` or ``(N, 1, H, W)``
              scores; multilabel ``(N, K, H, W)``.
            - target: ``(N, H, W)`` (``(N, 1, H, W)`` is squeezed); multilabel
              ``(N, K, H, W)``.

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(2)                      # binary model: 1 logit channel
            >>> logits = torch.tensor([[[[3.0, -2.0], [1.0, -1.0]]]])
            >>> metric.update(logits, torch.tensor([[[1, 0], [0, 0]]]))
            >>> metric.compute().miou                    # foreground IoU = 1 / 2
            0.5
        """
        counts = batch_confusion(
            preds,
            target,
            self.num_classes,
            self.ignore_index,
            threshold=self.threshold,
            from_logits=self.from_logits,
            mode=self.mode,
            per_image=self.per_image,
        )
        pixels = torch.full((), target.numel(), dtype=torch.int64, device=counts.device)
        if self.per_image:
            sums = _PerImageSums.of_batch(counts, self.absent, multilabel=self._multilabel)
            batch = _Totals(counts.sum(0), pixels, sums)
        else:
            batch = _Totals(counts, pixels)
        if self._totals is None:
            self._totals = batch
        else:
            self._totals.add(batch)

    def _confusion_shape(self) -> tuple[int, ...]:
        k = self.num_classes
        return (k, 2, 2) if self._multilabel else (k, k)

    def _synced_totals(self) -> _Totals:
        """A CPU copy of the state, summed over all ranks when distributed."""
        if self._totals is not None:
            totals = self._totals.map(torch.clone)
        else:
            device = torch.device("cpu")
            if _distributed() and dist.get_backend() == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
            totals = _Totals.zeros(self._confusion_shape(), self.per_image, device)
        if self.sync and _distributed():
            totals = totals.map(_all_reduce)
        return totals.map(lambda t: t.cpu())

    @torch.no_grad()
    def compute(self) -> IoUResult:
        """Turn the accumulated state into IoU, Dice/F1, precision, recall and means.

        Returns:
            An :class:`IoUResult` (tensors on the CPU). When every target pixel was
            ``ignore_index``, every class is absent (``miou`` is NaN under
            ``absent="nan"``).

        Raises:
            DataError: If no target pixel was passed to :meth:`update` since the metric
                was created or :meth:`reset` (on any rank, when distributed): an empty
                data loader gives this, and there is nothing to average.

        Examples:
            >>> import torch
            >>> from catseg.metrics import MeanIoU
            >>> metric = MeanIoU(3, absent="one")        # class 2 never appears
            >>> metric.update(torch.tensor([[[0, 1]]]), torch.tensor([[[1, 1]]]))
            >>> metric.compute().miou                    # mean of 0.5 (class 1) and 1.0
            0.75
        """
        totals = self._synced_totals()
        if int(totals.pixels) == 0:
            where = " on any process" if self.sync and _distributed() else ""
            raise DataError(
                f"{self!r}.compute() has no data: update() received no target pixel{where} "
                "since the metric was created or reset() (an empty data loader or dataset "
                "gives this); there is nothing to average"
            )
        if totals.per_image is None:
            return self._dataset_result(totals.confusion)
        return self._per_image_result(totals.confusion, totals.per_image)

    def _first_class(self) -> int:
        """Index of the first class that enters the means."""
        return 0 if self.include_background or self._multilabel else 1

    def _dataset_result(self, confusion: Tensor) -> IoUResult:
        scores = class_scores(confusion, self.absent, multilabel=self._multilabel)
        first = self._first_class()
        return IoUResult(
            miou=nan_mean(scores.iou[first:]),
            iou=scores.iou,
            dice=scores.dice,
            confusion=confusion,
            mdice=nan_mean(scores.dice[first:]),
            precision=scores.precision,
            recall=scores.recall,
        )

    def _per_image_result(self, confusion: Tensor, sums: _PerImageSums) -> IoUResult:
        first = self._first_class()
        count = sums.scored.to(torch.float64)
        total = count[first:].sum()

        def pooled(values: Tensor) -> float:
            return float(values[first:].sum() / total) if total > 0 else math.nan

        return IoUResult(
            miou=pooled(sums.iou),
            iou=sums.iou / count,
            dice=sums.dice / count,
            confusion=confusion,
            mdice=pooled(sums.dice),
            precision=sums.precision / count,
            recall=sums.recall / count,
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
    mode: MetricMode = "multiclass",
) -> IoUResult:
    """Mean IoU of one set of predictions (the functional form of :class:`MeanIoU`).

    Same definition and options as :class:`MeanIoU`; never synchronises across ranks.

    Args:
        preds: Integer label map or scores (see :meth:`MeanIoU.update`).
        target: Integer label map; multilabel: multi-hot ``(N, K, H, W)`` map.
        num_classes: Number of classes, background included; multilabel: labels K.
        ignore_index: Target value whose pixels are skipped; ``None`` counts all.
        include_background: Include class 0 in the means (multiclass only).
        threshold: Probability threshold for sigmoid scores, in (0, 1).
        from_logits: Sigmoid scores are logits rather than probabilities.
        absent: ``"nan"``, ``"zero"`` or ``"one"`` for classes absent from both.
        per_image: Average per-image scores instead of one dataset-level matrix.
        mode: ``"multiclass"`` or ``"multilabel"`` (K labels, multi-hot targets).

    Returns:
        An :class:`IoUResult`.

    Raises:
        ConfigError: If an option is outside its allowed values.
        ShapeError: If ``preds`` and ``target`` do not fit together.
        DTypeError: If a tensor has an unsupported dtype.
        DataError: If a target label is outside ``[0, num_classes)`` (multilabel: not
            0 or 1) and not ``ignore_index``, a predicted label is out of range,
            ``from_logits=False`` scores lie outside ``[0, 1]``, or the batch holds no
            pixel at all.
        NonFiniteError: If the scores contain NaN.

    Shape:
        - preds: ``(N, H, W)`` labels or ``(N, C, H, W)`` scores; multilabel
          ``(N, K, H, W)``.
        - target: ``(N, H, W)``; multilabel ``(N, K, H, W)``.

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
        mode=mode,
    )
    metric.update(preds, target)
    return metric.compute()
