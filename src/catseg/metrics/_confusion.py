"""Turning predictions into label maps and label maps into confusion matrices.

Internal to :mod:`catseg.metrics`: the option checks shared by every entry point and
the multiclass path; the multilabel counterparts live in :mod:`catseg.metrics._multilabel`
and the public :func:`catseg.metrics.confusion_matrix` in :mod:`catseg.metrics._matrix`.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import Tensor

from catseg._validation import (
    check_bool,
    check_choice,
    check_ignore_index,
    check_int,
    check_positive_int,
    check_probability,
)
from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError

MetricMode = Literal["multiclass", "multilabel"]
"""``"multiclass"``: one label per pixel (binary is two classes); ``"multilabel"``: K
independent yes/no labels per pixel, scored from K sigmoid maps against multi-hot targets."""

MODES: tuple[MetricMode, ...] = ("multiclass", "multilabel")


def check_num_classes(num_classes: object, mode: str = "multiclass") -> int:
    """``num_classes`` as an int: >= 2 (background included) or, multilabel, >= 1 labels."""
    if mode == "multilabel":
        return check_positive_int("num_classes", num_classes)
    try:
        return check_int("num_classes", num_classes, minimum=2)
    except ConfigError as err:
        raise ConfigError(
            f"{err} counting the background (a binary one-logit model is evaluated with "
            "num_classes=2; K independent labels with mode='multilabel')"
        ) from None


def check_options(
    num_classes: object,
    ignore_index: object,
    threshold: object,
    from_logits: object,
    mode: object,
) -> tuple[int, int | None, float, bool, MetricMode]:
    """Validate the options shared by every metric entry point, once, in one place."""
    checked_mode = cast(MetricMode, check_choice("mode", mode, MODES))
    return (
        check_num_classes(num_classes, checked_mode),
        check_ignore_index(ignore_index, checked_mode),
        check_probability("threshold", threshold),
        check_bool("from_logits", from_logits),
        checked_mode,
    )


def is_label_dtype(tensor: Tensor) -> bool:
    """Integer dtypes (bool excluded): what a label map may hold."""
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def ignored_pixels(target: Tensor, ignore_index: int | None) -> Tensor | None:
    """Mask of ``target == ignore_index``, or ``None`` where no value can equal it.

    The comparison is never done with a scalar outside the range of ``target``'s dtype:
    torch would wrap it (``int8 == 255`` would match ``-1``).
    """
    if ignore_index is None or target.dtype == torch.bool:
        return None
    info = torch.iinfo(target.dtype)
    if not info.min <= ignore_index <= info.max:
        return None
    return target == ignore_index


def dtype_hint(target: Tensor, ignore_index: int | None) -> str:
    """An error-message tail for a target whose dtype cannot hold ``ignore_index``."""
    if ignore_index is None or ignored_pixels(target, ignore_index) is not None:
        return ""
    return f"; a {target.dtype} target cannot hold {ignore_index}: store masks as uint8 or int64"


def threshold_scores(scores: Tensor, threshold: float, *, from_logits: bool) -> Tensor:
    """``sigmoid(scores) > threshold`` (or ``scores > threshold`` for probabilities), bool.

    Raises NonFiniteError for NaN and DataError for probabilities outside [0, 1].
    """
    if bool(torch.isnan(scores).any()):
        raise NonFiniteError(
            f"preds of shape {tuple(scores.shape)} contain NaN scores "
            f"({int(torch.isnan(scores).sum())} values)"
        )
    if not from_logits and scores.numel():
        smallest, largest = (float(v) for v in torch.aminmax(scores))
        if smallest < 0.0 or largest > 1.0:
            raise DataError(
                f"from_logits=False expects probabilities in [0, 1], got scores in "
                f"[{smallest:.4g}, {largest:.4g}] (shape {tuple(scores.shape)}); pass "
                "logits with from_logits=True (the default)"
            )
    probs = torch.sigmoid(scores) if from_logits else scores
    return probs > threshold


def _label_map_preds(preds: Tensor, shape: tuple[int, ...], num_classes: int) -> Tensor:
    """Validate an integer label map ``preds`` against the target's (N, H, W)."""
    labels = preds[:, 0] if preds.ndim == 4 and preds.shape[1] == 1 else preds
    if tuple(labels.shape) != shape:
        raise ShapeError(
            f"preds label map has shape {tuple(preds.shape)}, expected {shape} to match target"
        )
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= num_classes:
            raise DataError(
                f"preds contains label {low if low < 0 else high}, expected labels in "
                f"[0, {num_classes - 1}] for num_classes={num_classes}"
            )
    return labels


def _score_preds(
    preds: Tensor, shape: tuple[int, ...], num_classes: int, threshold: float, from_logits: bool
) -> Tensor:
    """Float scores (N, C, H, W) to labels: arg-max over C >= 2, threshold for one channel."""
    if preds.ndim != 4:
        raise ShapeError(
            f"float preds are scores and must have shape (N, C, H, W), got {tuple(preds.shape)} "
            "(pass an integer label map for (N, H, W))"
        )
    n, h, w = shape
    channels = preds.shape[1]
    if (preds.shape[0], preds.shape[2], preds.shape[3]) != shape:
        raise ShapeError(
            f"preds has shape {tuple(preds.shape)}, expected (N, C, H, W) = "
            f"({n}, C, {h}, {w}) to match target shape {shape}"
        )
    if channels == 1:
        if num_classes != 2:
            raise ShapeError(
                f"preds has 1 channel (binary scores) but num_classes={num_classes}; "
                "a one-logit model is evaluated with num_classes=2"
            )
        return threshold_scores(preds, threshold, from_logits=from_logits)[:, 0].to(torch.uint8)
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
    return labels


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
    if not isinstance(target, Tensor):
        raise DTypeError(f"target must be a tensor, got {type(target).__name__}")
    if not is_label_dtype(target):
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
    if not isinstance(preds, Tensor):
        raise DTypeError(f"preds must be a tensor, got {type(preds).__name__}")
    shape = tuple(target.shape)
    if is_label_dtype(preds):
        return _label_map_preds(preds, shape, num_classes), target
    if not preds.is_floating_point():
        raise DTypeError(f"preds must be an integer label map or float scores, got {preds.dtype}")
    return _score_preds(preds, shape, num_classes, threshold, from_logits), target


def _raise_bad_target(target: Tensor, num_classes: int, ignore_index: int | None) -> None:
    wide = target.to(torch.int64)  # compare without wrapping ignore_index into the dtype
    bad = (wide < 0) | (wide >= num_classes)
    if ignore_index is not None:
        bad &= wide != ignore_index
    values = torch.unique(wide[bad])[:5].tolist()
    raise DataError(
        f"target contains label(s) {values} outside [0, {num_classes - 1}] that are not "
        f"ignore_index={ignore_index} (num_classes={num_classes})"
        + dtype_hint(target, ignore_index)
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

    One ``bincount`` over the fused index ``(num_classes + 1) * target + pred``: the
    row stride leaves column ``num_classes`` unreachable by any prediction, so ignored
    pixels go there (bin ``num_classes``) and a target label outside the classes can
    never land in a counted bin, whatever the prediction: it falls outside the bins
    (too large) or below 0, and raises. Returns (C, C) int64, or (N, C, C) per image.
    """
    c, row = num_classes, num_classes + 1
    bins = c * row
    idx = target.to(torch.int64) * row  # a new tensor: the input is never modified
    idx += pred
    ignored = ignored_pixels(target, ignore_index)
    if ignored is not None:
        idx.masked_fill_(ignored, c)
    if per_image:
        n = idx.shape[0]
        if idx.numel():
            low, high = torch.aminmax(idx)
            if int(low) < 0 or int(high) >= bins:
                _raise_bad_target(target, c, ignore_index)
        idx += torch.arange(n, device=idx.device).view(n, 1, 1) * bins
        counts = torch.bincount(idx.flatten(), minlength=n * bins)
        return counts.view(n, c, row)[:, :, :c].contiguous()
    try:
        counts = torch.bincount(idx.flatten(), minlength=bins)
    except RuntimeError:  # a negative label: bincount refuses negative values
        _raise_bad_target(target, c, ignore_index)
        raise
    if counts.numel() > bins:
        _raise_bad_target(target, c, ignore_index)
    return counts.view(c, row)[:, :c].contiguous()
