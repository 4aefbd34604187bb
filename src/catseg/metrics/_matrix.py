"""The public :func:`confusion_matrix` and the one dispatch between the metric modes.

Internal to :mod:`catseg.metrics`.
"""

from __future__ import annotations

from torch import Tensor

from catseg.metrics._confusion import (
    MetricMode,
    check_options,
    confusion_from_labels,
    predicted_labels,
)
from catseg.metrics._multilabel import multilabel_confusion, multilabel_inputs


def batch_confusion(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None,
    *,
    threshold: float,
    from_logits: bool,
    mode: MetricMode,
    per_image: bool = False,
) -> Tensor:
    """Validate a batch and count it: (C, C) / (K, 2, 2), or per image with a leading N.

    The options must already be checked (:func:`check_options`).
    """
    if mode == "multilabel":
        hits, target = multilabel_inputs(
            preds, target, num_classes, threshold=threshold, from_logits=from_logits
        )
        return multilabel_confusion(hits, target.to(hits.device), ignore_index, per_image=per_image)
    labels, target = predicted_labels(
        preds, target, num_classes, threshold=threshold, from_logits=from_logits
    )
    return confusion_from_labels(
        labels, target.to(labels.device), num_classes, ignore_index, per_image=per_image
    )


def confusion_matrix(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None = 255,
    *,
    threshold: float = 0.5,
    from_logits: bool = True,
    mode: MetricMode = "multiclass",
) -> Tensor:
    """Confusion matrix of a batch: ``M[t, p]`` counts pixels of class ``t`` predicted ``p``.

    In ``mode="multilabel"`` each of the K labels is a yes/no question with its own
    2 × 2 matrix ``M[k, t, p]`` (``t``, ``p`` in {0, 1}), as torchmetrics'
    ``multilabel_confusion_matrix``.

    Args:
        preds: Integer label map, or scores: arg-max over C ≥ 2 channels; for one
            channel, sigmoid (if ``from_logits``) then ``> threshold``. Multilabel:
            ``(N, K, H, W)`` scores (sigmoid and threshold per label) or a {0, 1} map.
        target: Integer label map; pixels equal to ``ignore_index`` are not counted.
            Multilabel: a multi-hot ``(N, K, H, W)`` integer or bool map of 0 and 1,
            ``ignore_index`` skipping that pixel for that label only.
        num_classes: Number of classes, background included (2 for a binary model);
            multilabel: the number of labels K ≥ 1.
        ignore_index: Target value to skip (VOC "void" = 255); ``None`` counts all.
        threshold: Probability threshold for sigmoid scores, in (0, 1).
        from_logits: Sigmoid scores are logits (sigmoid applied) rather than
            probabilities.
        mode: ``"multiclass"`` (the default, binary included) or ``"multilabel"``.

    Returns:
        An int64 tensor on the device of ``preds``; rows are targets, columns predictions.

    Raises:
        ConfigError: If an option is outside its allowed values (``num_classes`` < 2,
            a NaN threshold or one outside (0, 1), ...), naming it.
        ShapeError: If the shapes of ``preds`` and ``target`` do not fit together, or
            the channel count is neither 1 nor ``num_classes``.
        DTypeError: If ``target`` is not an integer tensor, or ``preds`` is neither an
            integer label map nor float scores.
        DataError: If a target label is outside ``[0, num_classes)`` (multilabel: not 0
            or 1) and is not ``ignore_index`` (whatever the prediction), a predicted
            label is outside that range, or ``from_logits=False`` scores lie outside
            ``[0, 1]``.
        NonFiniteError: If the scores contain NaN.

    Shape:
        - preds: ``(N, H, W)`` labels or ``(N, C, H, W)`` / ``(N, 1, H, W)`` scores;
          multilabel ``(N, K, H, W)``.
        - target: ``(N, H, W)`` (``(N, 1, H, W)`` is squeezed); multilabel ``(N, K, H, W)``.
        - output: ``(num_classes, num_classes)``; multilabel ``(K, 2, 2)``.

    Examples:
        >>> import torch
        >>> from catseg.metrics import confusion_matrix
        >>> pred = torch.tensor([[[0, 1], [1, 1]]])
        >>> target = torch.tensor([[[0, 1], [0, 255]]])
        >>> confusion_matrix(pred, target, num_classes=2)
        tensor([[1, 1],
                [0, 1]])
        >>> logits = torch.tensor([[[[2.0, -1.0]], [[3.0, 1.0]]]])   # K = 2 labels
        >>> multi_hot = torch.tensor([[[[1, 1]], [[1, 255]]]])
        >>> confusion_matrix(logits, multi_hot, 2, mode="multilabel").tolist()
        [[[0, 0], [1, 1]], [[0, 0], [0, 1]]]
    """
    num_classes, ignore_index, threshold, from_logits, mode = check_options(
        num_classes, ignore_index, threshold, from_logits, mode
    )
    return batch_confusion(
        preds,
        target,
        num_classes,
        ignore_index,
        threshold=threshold,
        from_logits=from_logits,
        mode=mode,
    )
