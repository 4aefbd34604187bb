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

from torch import Tensor

from catseg.errors import ConfigError
from catseg.losses._inputs import activate, check_input, compute_dtype, no_autocast, overlap_target
from catseg.losses._options import OverlapOptions

__all__ = ["Score", "class_mean", "overlap_value", "soft_sums", "weights_for"]

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


def soft_sums(
    probs: Tensor, g: Tensor, valid: Tensor, scope: str, squared: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, ΣP, ΣG)`` per class ``(C,)`` (batch scope) or per image and class ``(N, C)``.

    Ignored entries are multiplied by 0, so a NaN anywhere in ``probs`` stays NaN.
    """
    mask = valid.to(device=probs.device, dtype=probs.dtype)
    p = probs * mask
    g = g.to(device=probs.device, dtype=probs.dtype) * mask
    dims = (0, 2, 3) if scope == "batch" else (2, 3)
    tp = (p * g).sum(dims)
    if squared:
        return tp, (p * p).sum(dims), (g * g).sum(dims)
    return tp, p.sum(dims), g.sum(dims)


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
    check_input(input, target, opts.mode, opts.from_logits)
    weights = weights_for(opts, input.shape[1])
    with no_autocast(input.device):
        x = input.to(compute_dtype(input))
        probs = activate(x, opts.mode) if opts.from_logits else x
        g, valid = overlap_target(target, input.shape, opts.mode, opts.ignore_index)
        sums = soft_sums(probs, g, valid, opts.reduction_scope, opts.squared)
        return class_mean(score(*sums), weights, opts.first_class)
