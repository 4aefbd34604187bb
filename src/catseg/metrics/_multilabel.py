"""Multilabel inputs: K independent yes/no labels per pixel, one 2 × 2 matrix per label.

Internal to :mod:`catseg.metrics`. ``preds`` are ``(N, K, H, W)`` scores (sigmoid and
threshold per label) or a {0, 1} map; ``target`` is a multi-hot ``(N, K, H, W)`` map of
0 and 1 where ``ignore_index`` skips that pixel for that label only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catseg.errors import DataError, DTypeError, ShapeError
from catseg.metrics._confusion import dtype_hint, ignored_pixels, threshold_scores


def multilabel_inputs(
    preds: Tensor,
    target: Tensor,
    num_labels: int,
    *,
    threshold: float,
    from_logits: bool,
) -> tuple[Tensor, Tensor]:
    """Validate multilabel ``preds``/``target``; return ``(hits, target)``, hits bool.

    ``hits[n, k, y, x]`` says whether label ``k`` is predicted at that pixel.
    """
    if not isinstance(target, Tensor):
        raise DTypeError(f"target must be a tensor, got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex():
        raise DTypeError(
            f"multilabel target must be a multi-hot integer or bool map (N, K, H, W) of 0 "
            f"and 1, got dtype {target.dtype} (convert a float mask with mask.long())"
        )
    if target.ndim != 4 or target.shape[1] != num_labels:
        raise ShapeError(
            f"multilabel target must have shape (N, K, H, W) with K = num_classes = "
            f"{num_labels}, got {tuple(target.shape)}"
        )
    if not isinstance(preds, Tensor):
        raise DTypeError(f"preds must be a tensor, got {type(preds).__name__}")
    if tuple(preds.shape) != tuple(target.shape):
        raise ShapeError(
            f"multilabel preds must have the target's shape (N, K, H, W) = "
            f"{tuple(target.shape)}, got {tuple(preds.shape)}"
        )
    if preds.is_complex():
        raise DTypeError(f"preds must be float scores or a {{0, 1}} map, got {preds.dtype}")
    if preds.is_floating_point():
        return threshold_scores(preds, threshold, from_logits=from_logits), target
    if preds.dtype != torch.bool and preds.numel():
        low, high = (int(v) for v in torch.aminmax(preds))
        if low < 0 or high > 1:
            raise DataError(
                f"multilabel preds given as integers must be 0 or 1, got values in "
                f"[{low}, {high}] (pass float scores to apply sigmoid and threshold)"
            )
    return preds.to(torch.bool), target


def _raise_bad_target(target: Tensor, ignored: Tensor | None, ignore_index: int | None) -> None:
    bad = (target != 0) & (target != 1)
    if ignored is not None:
        bad &= ~ignored
    values = torch.unique(target[bad].to(torch.int64))[:5].tolist()
    labels = torch.unique(bad.nonzero()[:, 1])[:5].tolist()
    raise DataError(
        f"multilabel target contains value(s) {values} (for label(s) {labels}) that are "
        f"neither 0, 1 nor ignore_index={ignore_index} (num_classes={target.shape[1]})"
        + dtype_hint(target, ignore_index)
    )


def multilabel_confusion(
    hits: Tensor, target: Tensor, ignore_index: int | None, *, per_image: bool = False
) -> Tensor:
    """Per-label binary confusion counts ``[k, target, pred]`` (int64).

    Counted from sums per label over bool masks (target positives and negatives, the
    predicted ones among them, and the ignored pixels) instead of a bincount: every
    sum is a multi-threaded reduction, with no int64 index the size of the input. A
    value that is neither 0, 1 nor ``ignore_index`` is found because the three counts
    then fall short of the pixel count. Returns (K, 2, 2), or (N, K, 2, 2) per image.
    """
    dims = (2, 3) if per_image else (0, 2, 3)
    if target.dtype == torch.bool:
        positive, negative = target, ~target
    else:
        positive, negative = target == 1, target == 0
    n, _, h, w = hits.shape
    total = h * w if per_image else n * h * w
    # Summing bytes into int32 is ~3x faster than bools into int64, and exact below 2**31.
    dtype = torch.int32 if total < 2**31 else torch.int64

    def count(mask: Tensor) -> Tensor:
        return mask.view(torch.uint8).sum(dims, dtype=dtype).to(torch.int64)

    gt = count(positive)
    neg = count(negative)
    tp = count(hits & positive)
    fp = count(hits & negative)
    ignored = ignored_pixels(target, ignore_index)
    skipped = 0 if ignored is None else count(ignored)
    if bool(((gt + neg + skipped) != total).any()):
        _raise_bad_target(target, ignored, ignore_index)
    confusion = torch.stack((neg - fp, fp, gt - tp, tp), dim=-1)
    return confusion.view(*tp.shape, 2, 2)
