"""The soft Dice coefficient: :func:`soft_dice` and the score it shares with its modules."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from catseg.losses._options import DiceMode, OverlapOptions, ReductionScope
from catseg.losses._overlap import Score, overlap_value

__all__ = ["dice_coefficient", "dice_loss", "dice_score", "soft_dice"]


def dice_score(smooth: float, eps: float) -> Score:
    """``D = (2·TP + s) / (ΣP + ΣG + s)``, the denominator clamped to at least ``eps``."""

    def score(tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        return (2.0 * tp + smooth) / (sum_p + sum_g + smooth).clamp_min(eps)

    return score


def dice_coefficient(input: Tensor, target: Tensor, opts: OverlapOptions) -> Tensor:
    """The soft Dice coefficient for checked options (the body of every Dice entry point)."""
    return overlap_value(input, target, opts, dice_score(opts.smooth, opts.eps))


def dice_loss(input: Tensor, target: Tensor, opts: OverlapOptions) -> Tensor:
    """The Dice loss ``1 - coefficient`` for checked options (the body of ``DiceLoss``)."""
    return 1.0 - dice_coefficient(input, target, opts)


def soft_dice(
    input: Tensor,
    target: Tensor,
    *,
    mode: DiceMode = "binary",
    from_logits: bool = True,
    smooth: float = 1.0,
    eps: float = 1e-7,
    squared: bool = False,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Differentiable soft Dice coefficient (higher is better, in ``[0, 1]``).

    Args:
        input: Logits (``from_logits=True``) or probabilities; one channel in binary
            mode, C ≥ 2 channels in multiclass mode, K ≥ 1 in multilabel mode.
        target: Integer label map; in binary mode also a float ``{0, 1}`` mask with a
            channel axis, as the tutorial's dataset produced; in multilabel mode a
            multi-hot ``(N, K, H, W)`` tensor (integer, float ``{0, 1}`` or bool) where
            ``ignore_index`` leaves out one label of one pixel.
        mode: ``"binary"`` (sigmoid over one channel), ``"multiclass"`` (softmax) or
            ``"multilabel"`` (K independent sigmoids; with K = 1 equal to binary).
        from_logits: Apply sigmoid/softmax to ``input``; ``False`` takes probabilities.
        smooth: Added to numerator and denominator (``1.0``: the tutorial's value).
        eps: Lower bound of the denominator, so ``smooth=0`` never divides by zero.
        squared: Use ``Σp² + Σg²`` in the denominator.
        ignore_index: Target value whose pixels are left out entirely; ``None`` keeps all.
        class_weights: One weight per input channel for the average over classes.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` sums over the whole batch; ``"image"`` computes one
            coefficient per image and averages.

    Returns:
        A scalar tensor (float32, or float64 for a float64 input) holding the
        coefficient, differentiable with respect to ``input``.

    Raises:
        ConfigError: If an option is outside its allowed values (naming it), or
            ``class_weights`` has the wrong length or sums to zero over used classes.
        ShapeError: If ``input`` is not 4-D, has the wrong channel count for ``mode``,
            or ``target`` does not match its batch and spatial shape.
        DTypeError: If ``input`` is not floating point, or ``target`` has a dtype that
            is neither integer nor (binary/multilabel mode) float or (multilabel) bool.
        DataError: If ``target`` holds a label outside the classes that is not
            ``ignore_index``, a float target holds values other than 0 and 1 (e.g. a
            mask rescaled to ``[0, 1]``), or ``from_logits=False`` and ``input`` holds
            values outside ``[0, 1]`` (logits passed as probabilities).

    Shape:
        - input: ``(N, 1, H, W)`` (binary), ``(N, C, H, W)`` with C ≥ 2 (multiclass) or
          ``(N, K, H, W)`` (multilabel).
        - target: ``(N, H, W)`` integer; binary also ``(N, 1, H, W)`` integer or float;
          multilabel ``(N, K, H, W)``.
        - output: ``()``.

    Examples:
        >>> import torch
        >>> from catseg.losses import soft_dice
        >>> probs = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]])
        >>> target = torch.tensor([[[1, 0], [1, 0]]])
        >>> soft_dice(probs, target, from_logits=False)   # (2*1.5 + 1) / (1.8 + 2 + 1)
        tensor(0.8333)
        >>> logits = torch.zeros(1, 3, 2, 2)              # uniform softmax: p = 1/3
        >>> soft_dice(logits, torch.tensor([[[0, 1], [2, 255]]]), mode="multiclass",
        ...           smooth=0.0)                          # 2*(1/3) / (1 + 1) per class
        tensor(0.3333)
        >>> multi_hot = torch.tensor([[[[1, 0]], [[1, 255]]]])   # (N=1, K=2, 1, 2)
        >>> # label 0: 2·0.5 / (1 + 1) = 0.5; label 1 (one pixel ignored): 1 / 1.5
        >>> soft_dice(torch.zeros(1, 2, 1, 2), multi_hot, mode="multilabel", smooth=0.0)
        tensor(0.5833)
    """
    opts = OverlapOptions.checked(
        mode,
        smooth,
        ignore_index,
        class_weights,
        include_background,
        reduction_scope,
        from_logits=from_logits,
        eps=eps,
        squared=squared,
    )
    return dice_coefficient(input, target, opts)
