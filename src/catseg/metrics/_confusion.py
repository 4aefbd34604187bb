"""Turning predictions into label maps and label maps into confusion matrices.

Internal to :mod:`catseg.metrics`; the public entry point is
:func:`catseg.metrics.confusion_matrix`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError

__all__ = ["confusion_matrix"]


def check_num_classes(num_classes: int) -> None:
    """Raise ConfigError unless ``num_classes`` is an int >= 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(
            f"num_classes must be an int >= 2 counting the background, got {num_classes!r} "
            "(a binary one-logit model is evaluated with num_classes=2)"
        )


def check_ignore_index(ignore_index: int | None) -> None:
    """Raise ConfigError unless ``ignore_index`` is an int or None."""
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise ConfigError(f"ignore_index must be an int or None, got {ignore_index!r}")


def _is_label_dtype(tensor: Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def _target_labels(target: Tensor) -> Tensor:
    """Validate the target's type and return it as (N, H, W) (no copy)."""
    if not isinstance(target, Tensor):
        raise DTypeError(f"target must be a tensor, got {type(target).__name__}")
    if not _is_label_dtype(target):
        raise DTypeError(
            f"target must be an integer label map (N, H, W), got dtype {target.dtype} "
            "(convert a {0, 1} float mask with mask.long())"
        )
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.ndim != 3:
        raise ShapeError(
            f"target must have shape (N, H, W) (or (N, 1, H, W)), got {tuple(target.shape)}"
        )
    return target


def predicted_labels(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    threshold: float,
    from_logits: bool,
) -> tuple[Tensor, Tensor]:
    """Validate ``preds``/``target`` and return ``(pred_labels, target)``, both (N, H, W).

    ``preds`` is a label map (integer) or scores (floating, (N, C, H, W)): argmax over
    C ≥ 2 channels, or sigmoid (when ``from_logits``) and ``> threshold`` for one channel.
    """
    target = _target_labels(target)
    if not isinstance(preds, Tensor):
        raise DTypeError(f"preds must be a tensor, got {type(preds).__name__}")
    n, h, w = target.shape
    if _is_label_dtype(preds):
        labels = preds[:, 0] if preds.ndim == 4 and preds.shape[1] == 1 else preds
        if tuple(labels.shape) != (n, h, w):
            raise ShapeError(
                f"preds label map has shape {tuple(preds.shape)}, expected {(n, h, w)} "
                "to match target"
            )
        if labels.numel():
            low, high = torch.aminmax(labels)
            if int(low) < 0 or int(high) >= num_classes:
                bad = int(low) if int(low) < 0 else int(high)
                raise DataError(
                    f"preds contains label {bad}, expected labels in [0, {num_classes - 1}] "
                    f"for num_classes={num_classes}"
                )
        return labels, target
    if not preds.is_floating_point():
        raise DTypeError(f"preds must be an integer label map or float scores, got {preds.dtype}")
    if preds.ndim != 4:
        raise ShapeError(
            f"float preds are scores and must have shape (N, C, H, W), got {tuple(preds.shape)} "
            "(pass an integer label map for (N, H, W))"
        )
    channels = preds.shape[1]
    if (preds.shape[0], preds.shape[2], preds.shape[3]) != (n, h, w):
        raise ShapeError(
            f"preds has shape {tuple(preds.shape)}, expected (N, C, H, W) = "
            f"({n}, C, {h}, {w}) to match target shape {tuple(target.shape)}"
        )
    if channels == 1:
        if num_classes != 2:
            raise ShapeError(
                f"preds has 1 channel (binary scores) but num_classes={num_classes}; "
                "a one-logit model is evaluated with num_classes=2"
            )
        scores = preds[:, 0]
        if bool(torch.isnan(scores).any()):
            raise NonFiniteError(
                f"preds of shape {tuple(preds.shape)} contain NaN scores "
                f"({int(torch.isnan(scores).sum())} values)"
            )
        if not from_logits and scores.numel():
            smallest, largest = (float(v) for v in torch.aminmax(scores))
            if smallest < 0.0 or largest > 1.0:
                raise DataError(
                    f"from_logits=False expects probabilities in [0, 1], got scores in "
                    f"[{smallest:.4g}, {largest:.4g}] (shape {tuple(preds.shape)}); pass "
                    "logits with from_logits=True (the default)"
                )
        probs = torch.sigmoid(scores) if from_logits else scores
        return (probs > threshold).to(torch.uint8), target
    if channels != num_classes:
        raise ShapeError(
            f"preds has {channels} channels (shape {tuple(preds.shape)}), expected "
            f"num_classes={num_classes} (or 1 for binary scores)"
        )
    # One pass gives both the arg-max and the max; NaN propagates into the max.
    values, labels = preds.max(dim=1)
    if bool(torch.isnan(values).any()):
        raise NonFiniteError(
            f"preds of shape {tuple(preds.shape)} contain NaN scores "
            f"(at {int(torch.isnan(values).sum())} pixels)"
        )
    return labels, target


def _raise_bad_target(target: Tensor, num_classes: int, ignore_index: int | None) -> None:
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    values = torch.unique(target[bad])[:5].tolist()
    raise DataError(
        f"target contains label(s) {values} outside [0, {num_classes - 1}] that are not "
        f"ignore_index={ignore_index} (num_classes={num_classes})"
    )


def confusion_from_labels(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None,
    *,
    per_image: bool = False,
) -> Tensor:
    """Confusion counts ``[target, pred]`` from validated label maps.

    One ``bincount`` over the fused index ``num_classes * target + pred``; ignored pixels
    go to an extra bin that is dropped. Returns (C, C) int64, or (N, C, C) per image.
    """
    c = num_classes
    bins = c * c + 1
    idx = target.to(torch.int64) * c  # a new tensor: the input is never modified
    idx += pred
    if ignore_index is not None:
        idx.masked_fill_(target == ignore_index, c * c)
    if per_image:
        n = idx.shape[0]
        if idx.numel():
            low, high = torch.aminmax(idx)
            if int(low) < 0 or int(high) > c * c:
                _raise_bad_target(target, c, ignore_index)
        idx += torch.arange(n, device=idx.device).view(n, 1, 1) * bins
        counts = torch.bincount(idx.flatten(), minlength=n * bins)
        return counts.view(n, bins)[:, : c * c].reshape(n, c, c)
    try:
        counts = torch.bincount(idx.flatten(), minlength=bins)
    except RuntimeError:  # a negative label: bincount refuses negative values
        _raise_bad_target(target, c, ignore_index)
        raise
    if counts.numel() > bins:
        _raise_bad_target(target, c, ignore_index)
    return counts[: c * c].view(c, c)


def confusion_matrix(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None = 255,
    *,
    threshold: float = 0.5,
    from_logits: bool = True,
) -> Tensor:
    """Confusion matrix of a batch: ``M[t, p]`` counts pixels of class ``t`` predicted ``p``.

    Args:
        preds: Integer label map, or scores: arg-max over C ≥ 2 channels; for one
            channel, sigmoid (if ``from_logits``) then ``> threshold``.
        target: Integer label map; pixels equal to ``ignore_index`` are not counted.
        num_classes: Number of classes, background included (2 for a binary model).
        ignore_index: Target value to skip (VOC "void" = 255); ``None`` counts all.
        threshold: Probability threshold for one-channel scores.
        from_logits: One-channel scores are logits (sigmoid applied) rather than
            probabilities.

    Returns:
        An int64 tensor on the device of ``preds``; rows are targets, columns predictions.

    Raises:
        ConfigError: If ``num_classes`` < 2.
        ShapeError: If the shapes of ``preds`` and ``target`` do not fit together, or
            the channel count is neither 1 nor ``num_classes``.
        DTypeError: If ``target`` is not an integer tensor, or ``preds`` is neither an
            integer label map nor float scores.
        DataError: If a label is outside ``[0, num_classes)`` and is not ``ignore_index``,
            or one-channel ``from_logits=False`` scores lie outside ``[0, 1]``.
        NonFiniteError: If the scores contain NaN.

    Shape:
        - preds: ``(N, H, W)`` labels or ``(N, C, H, W)`` / ``(N, 1, H, W)`` scores.
        - target: ``(N, H, W)`` (``(N, 1, H, W)`` is squeezed).
        - output: ``(num_classes, num_classes)``.

    Examples:
        >>> import torch
        >>> from catseg.metrics import confusion_matrix
        >>> pred = torch.tensor([[[0, 1], [1, 1]]])
        >>> target = torch.tensor([[[0, 1], [0, 255]]])
        >>> confusion_matrix(pred, target, num_classes=2)
        tensor([[1, 1],
                [0, 1]])
    """
    check_num_classes(num_classes)
    check_ignore_index(ignore_index)
    labels, target = predicted_labels(
        preds, target, num_classes, threshold=threshold, from_logits=from_logits
    )
    return confusion_from_labels(labels, target.to(labels.device), num_classes, ignore_index)
