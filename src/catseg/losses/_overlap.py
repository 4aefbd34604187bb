"""The one core of the set-overlap losses: soft sums per class, then a score, then the class mean.

For probabilities ``p`` and a one-hot (multiclass) or multi-hot (binary, multilabel)
target ``g``, restricted to the pixels that are not ignored, the core sums per class

``TP = Σp·g``, ``ΣP = Σp`` (``Σp²`` when squared), ``ΣG = Σg`` (``Σg²``),

over the whole batch (``"batch"`` scope) or per image (``"image"``). A score turns the sums
into one value per (image,) class (Dice, Jaccard, Tversky ...); per-image values are
averaged over images, then over classes (weighted by ``class_weights``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from catseg.errors import ConfigError
from catseg.losses._inputs import (
    activate,
    class_labels,
    float_input,
    sigmoid_target,
)
from catseg.losses._options import OverlapOptions

__all__ = [
    "Score",
    "class_mean",
    "class_sums",
    "overlap_sums",
    "overlap_value",
    "sigmoid_sums",
    "weights_for",
]

Score = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(TP, ΣP, ΣG) -> value`` per (image,) class."""


def weights_for(opts: OverlapOptions, channels: int) -> Tensor | None:
    """The class weights checked against the channel count of the input."""
    weights = opts.class_weights
    if weights is None:
        return None
    if weights.numel() != channels:
        raise ConfigError(
            f"class_weights has {weights.numel()} entries, expected one per input channel "
            f"({channels})"
        )
    if float(weights[opts.first_class :].sum()) <= 0.0:
        raise ConfigError(
            f"class_weights {weights.tolist()} sum to zero over the classes used "
            f"(include_background={opts.include_background})"
        )
    return weights


def sigmoid_sums(
    probs: Tensor, g: Tensor, valid: Tensor, scope: str, squared: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Binary/multilabel ``(TP, ΣP, ΣG)`` per class ``(C,)`` or per image and class ``(N, C)``.

    ``g`` is 0 wherever ``valid`` is False. Ignored entries are multiplied by 0 (not
    selected away), so a NaN anywhere in ``probs`` stays NaN.
    """
    dims = (0, 2, 3) if scope == "batch" else (2, 3)
    p = probs * valid.to(probs.dtype)
    g = g.to(probs.dtype)
    tp = (p * g).sum(dims)
    if squared:
        return tp, (p * p).sum(dims), (g * g).sum(dims)
    return tp, p.sum(dims), g.sum(dims)


def class_sums(
    probs: Tensor, labels: Tensor, valid: Tensor, scope: str, squared: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Multiclass ``(TP, ΣP, ΣG)`` from a label map, without a one-hot tensor.

    ``TP[c]`` adds the probability of class ``c`` at the valid pixels labelled ``c``
    (a gather and an index-add), ``ΣG[c]`` counts those pixels; ``Σg² = Σg``.
    """
    n, c = probs.shape[:2]
    p = probs * valid.unsqueeze(1).to(probs.dtype)
    at_label = p.gather(1, labels.unsqueeze(1)).reshape(-1)
    index = (
        labels
        if scope == "batch"
        else labels + c * torch.arange(n, device=labels.device).view(n, 1, 1)
    )
    bins = c if scope == "batch" else n * c
    flat = index.reshape(-1)
    tp = torch.zeros(bins, dtype=p.dtype, device=p.device).index_add_(0, flat, at_label)
    count = torch.bincount(flat[valid.reshape(-1)], minlength=bins).to(p.dtype)
    shape = (c,) if scope == "batch" else (n, c)
    dims = (0, 2, 3) if scope == "batch" else (2, 3)
    sum_p = (p * p).sum(dims) if squared else p.sum(dims)
    return tp.reshape(shape), sum_p, count.reshape(shape)


def overlap_sums(
    x: Tensor, target: Tensor, opts: OverlapOptions, probs: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, ΣP, ΣG)`` of logits/probabilities ``x`` (compute dtype) for the mode of ``opts``.

    ``probs`` may be passed when the caller already has them (DiceCE shares its softmax).
    """
    if probs is None:
        probs = activate(x, opts.mode) if opts.from_logits else x
    if opts.mode == "multiclass":
        labels, valid = class_labels(target, x.shape, opts.ignore_index)
        return class_sums(probs, labels, valid, opts.reduction_scope, opts.squared)
    g, valid = sigmoid_target(target, x.shape, opts.mode, opts.ignore_index)
    return sigmoid_sums(probs, g, valid, opts.reduction_scope, opts.squared)


def class_mean(values: Tensor, weights: Tensor | None, first: int) -> Tensor:
    """Mean over images (if per image), then the (weighted) mean over classes ``first:``."""
    if values.ndim == 2:
        values = values.mean(0)
    if weights is None:
        return values[first:].mean()
    used = weights[first:].to(device=values.device, dtype=values.dtype)
    return (values[first:] * used).sum() / used.sum()


def overlap_value(input: Tensor, target: Tensor, opts: OverlapOptions, score: Score) -> Tensor:
    """Check the tensors, compute the soft sums in fp32/fp64 and reduce ``score`` over classes."""
    with float_input(input, target, opts.mode, opts.from_logits) as x:
        weights = weights_for(opts, x.shape[1])
        sums = overlap_sums(x, target, opts)
        return class_mean(score(*sums), weights, opts.first_class)
