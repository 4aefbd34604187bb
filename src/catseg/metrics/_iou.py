"""Mean IoU: the stateful :class:`MeanIoU`, the functional :func:`mean_iou` and their result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from catseg._validation import check_bool, check_choice
from catseg.errors import DataError
from catseg.metrics._confusion import MetricMode, check_options
from catseg.metrics._matrix import batch_confusion

AbsentMode = Literal["nan", "zero", "one"]
"""What a class absent from both prediction and target scores: no IoU, 0 or 1."""

_FILL: dict[str, float] = {"nan": math.nan, "zero": 0.0, "one": 1.0}


@dataclass(frozen=True, eq=False)
class IoUResult:
    """What :meth:`MeanIoU.compute` returns.

    Every per-class score comes from the same confusion counts: with ``TP`` the pixels
    of the class predicted as it, ``|G|`` its target pixels and ``|P|`` its predicted
    pixels, IoU is ``TP / (|P| + |G| - TP)``, Dice/F1 ``2 TP / (|P| + |G|)``, precision
    ``TP / |P|`` and recall ``TP / |G|``. A class absent from both prediction and target
    (no union) has every score NaN, 0 or 1 as ``absent`` says (a NaN stays out of the
    means); a class with a union always has every score (precision 0 when never
    predicted, recall 0 when not in the target: the ``zero_division=0`` of torchmetrics
    and scikit-learn). In multilabel mode class ``k`` is label ``k``.

    Attributes:
        miou: Mean IoU over the classes used (foreground only unless
            ``include_background=True``; every label in multilabel mode); NaN when no
            used class has an IoU.
        iou: Per-class IoU ``(num_classes,)``, float64, background included.
        dice: Per-class Dice/F1, float64.
        confusion: The dataset-level confusion matrix ``[target, pred]``, int64;
            multilabel: one 2 × 2 matrix ``[label, target, pred]`` per label.
        mdice: Mean Dice/F1 over the same classes as ``miou``.
        precision: Per-class precision, float64.
        recall: Per-class recall (sensitivity), float64.

    With ``per_image=True`` the per-class scores are means over the images in which the
    class has a score, ``miou``/``mdice`` the mean over all (image, class) pairs that
    have one, and ``confusion`` the dataset-level sum.

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


def class_scores(confusion: Tensor, absent: str, *, multilabel: bool) -> Tensor:
    """IoU, Dice, precision and recall stacked ``(4, ..., C)`` from (..., C, C) counts.

    Multilabel counts are (..., K, 2, 2); a class with no union gets ``absent``'s value.
    """
    counts = confusion.to(torch.float64)
    if multilabel:
        tp, gt, pr = counts[..., 1, 1], counts[..., 1, :].sum(-1), counts[..., :, 1].sum(-1)
    else:
        tp, gt, pr = torch.diagonal(counts, dim1=-2, dim2=-1), counts.sum(-1), counts.sum(-2)
    union = gt + pr - tp
    scores = [(tp, union), (2.0 * tp, gt + pr), (tp, pr), (tp, gt)]
    ratios = [torch.where(d > 0, n / d.clamp(min=1.0), 0.0) for n, d in scores]
    return torch.stack(ratios).masked_fill(union == 0, _FILL[absent])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class MeanIoU:
    """Stateful mean IoU accumulated over a dataset (VOC / mmseg definition by default).

    Every :meth:`update` adds a batch to a dataset-level confusion matrix;
    :meth:`compute` turns it into per-class IoU ``|P∩G| / |P∪G|``, Dice/F1, precision
    and recall and the means. By default a class absent from both prediction and ground
    truth has no IoU and does not enter the mean, pixels labelled 255 are ignored and
    the background (class 0) is left out of the mean.

    ``absent="zero"``/``"one"`` give such classes 0 or 1 instead (``"one"`` is smp's
    convention). ``per_image=True`` computes IoU per image and class and averages the
    (image, class) pairs that have one, like torchmetrics' ``segmentation.MeanIoU``.

    ``mode="multilabel"`` scores K independent labels per pixel: ``(N, K, H, W)``
    scores (sigmoid, then ``> threshold`` per label) against multi-hot ``(N, K, H, W)``
    targets of 0 and 1, where ``ignore_index`` skips that pixel for that label. Each
    label gets a binary confusion matrix, and ``miou`` is the mean over all K labels
    (torchmetrics' ``MultilabelJaccardIndex(average="macro")``; ``include_background``
    has no effect). With K = 1 it equals the binary metric ``MeanIoU(2)``.

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
        self.num_classes, self.ignore_index, self.threshold, self.from_logits, self.mode = (
            check_options(num_classes, ignore_index, threshold, from_logits, mode)
        )
        self.include_background = check_bool("include_background", include_background)
        self.absent: AbsentMode = check_choice("absent", absent, ("nan", "zero", "one"))
        self.per_image = check_bool("per_image", per_image)
        self.sync = check_bool("sync", sync)
        # [confusion, target pixels seen, per_image: sums over images of (IoU, Dice,
        # precision, recall, 1 where scored) per class (5, C)]; every entry is summed
        # across ranks
        self._state: list[Tensor] | None = None

    def __repr__(self) -> str:
        mode = "" if self.mode == "multiclass" else f", mode={self.mode!r}"
        return (
            f"MeanIoU(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"include_background={self.include_background}, absent={self.absent!r}, "
            f"per_image={self.per_image}{mode})"
        )

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
        self._state = None

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions (inputs and errors as for :func:`confusion_matrix`).

        Args:
            preds: Integer label map ``(N, H, W)``, or scores ``(N, C, H, W)``: arg-max
                over C ≥ 2 channels, sigmoid (if ``from_logits``) and ``> threshold`` for
                one channel; multilabel: ``(N, K, H, W)`` scores or a {0, 1} map.
            target: Integer label map (``ignore_index`` pixels are skipped); multilabel:
                multi-hot ``(N, K, H, W)`` map of 0 and 1 (or bool).

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
        batch = [counts.sum(0) if self.per_image else counts, pixels]
        if self.per_image:
            scores = class_scores(counts, self.absent, multilabel=self.mode == "multilabel")
            scored = ~torch.isnan(scores[0])
            sums = torch.where(scored, scores, 0.0).sum(1)
            batch.append(torch.cat([sums, scored.sum(0, keepdim=True).to(sums.dtype)]))
        if self._state is None:
            self._state = batch
        else:
            for mine, new in zip(self._state, batch, strict=True):
                mine += new.to(mine.device)

    def _synced_state(self) -> list[Tensor]:
        """A CPU copy of the state, summed over all ranks when distributed."""
        if self._state is not None:
            state = [t.clone() for t in self._state]
        else:
            device = torch.device("cpu")
            if _distributed() and dist.get_backend() == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
            k = self.num_classes
            shape = (k, 2, 2) if self.mode == "multilabel" else (k, k)
            state = [torch.zeros(size, dtype=torch.int64, device=device) for size in (shape, ())]
            if self.per_image:
                state.append(torch.zeros(5, k, dtype=torch.float64, device=device))
        if self.sync and _distributed():
            for t in state:
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [t.cpu() for t in state]

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
        confusion, pixels, *per_image = self._synced_state()
        if int(pixels) == 0:
            where = " on any process" if self.sync and _distributed() else ""
            raise DataError(
                f"{self!r}.compute() has no data: update() received no target pixel{where} "
                "since the metric was created or reset() (an empty data loader or dataset "
                "gives this); there is nothing to average"
            )
        first = 0 if self.include_background or self.mode == "multilabel" else 1
        if per_image:
            sums, count = per_image[0][:4], per_image[0][4]
            total = count[first:].sum()
            iou, dice, precision, recall = sums / count
            miou, mdice = (
                float(v[first:].sum() / total) if total > 0 else math.nan for v in sums[:2]
            )
        else:
            scores = class_scores(confusion, self.absent, multilabel=self.mode == "multilabel")
            iou, dice, precision, recall = scores
            miou, mdice = float(iou[first:].nanmean()), float(dice[first:].nanmean())  # NaN if none
        return IoUResult(miou, iou, dice, confusion, mdice, precision, recall)


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

    The definition, options and errors of :class:`MeanIoU` (and ``DataError`` for a batch
    with no pixel at all); never synchronises across ranks.

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
