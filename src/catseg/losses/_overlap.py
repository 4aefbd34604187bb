"""The set-overlap losses: soft Dice, soft Jaccard (IoU) and (focal) Tversky."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from catseg.losses._base import OverlapLoss
from catseg.losses._checks import LossMode, ReductionScope, check_option, check_term_weights


def soft_dice(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
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
        input: Logits (``from_logits=True``) or probabilities ``(N, C, H, W)``.
        target: Integer label map ``(N, H, W)``; binary also ``(N, 1, H, W)`` integer or
            float ``{0, 1}`` (the tutorial's masks); multilabel a multi-hot
            ``(N, K, H, W)`` tensor where ``ignore_index`` leaves out one label of one pixel.
        mode: ``"binary"`` (sigmoid over one channel), ``"multiclass"`` (softmax) or
            ``"multilabel"`` (K independent sigmoids; with K = 1 equal to binary).
        from_logits: Apply sigmoid/softmax to ``input``; ``False`` takes probabilities
            (values outside ``[0, 1]`` raise ``DataError``).
        smooth: Added to numerator and denominator (``1.0``: the tutorial's value).
        eps: Lower bound of the denominator (at least the dtype's smallest normal
            number), so ``smooth=0`` never divides by zero.
        squared: Use ``Σp² + Σg²`` in the denominator.
        ignore_index: Target value whose pixels are left out entirely; ``None`` keeps all.
        class_weights: One weight per input channel for the average over classes
            (``ConfigError`` if the length differs or they sum to zero over used classes).
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` sums over the whole batch; ``"image"`` computes one
            coefficient per image and averages.

    Returns:
        The scalar coefficient (float32, or float64 for float64 input), differentiable;
        shapes, dtypes and errors as for every loss (see :mod:`catseg.losses`).

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
    return SoftDice(
        mode=mode,
        from_logits=from_logits,
        smooth=smooth,
        eps=eps,
        squared=squared,
        ignore_index=ignore_index,
        class_weights=class_weights,
        include_background=include_background,
        reduction_scope=reduction_scope,
    ).forward(input, target)


class SoftDice(OverlapLoss):
    """Module returning the soft Dice coefficient (options of :func:`soft_dice`).

    A bad option raises :class:`~catseg.errors.ConfigError` here, at construction; the
    attributes ``mode``, ``smooth`` ... show the checked options and are read-only.

    Examples:
        >>> import torch
        >>> from catseg.losses import SoftDice
        >>> metric = SoftDice(from_logits=False)
        >>> metric(torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2, dtype=torch.long))
        tensor(1.)
    """

    _shown = ("mode", "from_logits", "smooth", "squared", "ignore_index", "reduction_scope")

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        from_logits: bool = True,
        smooth: float = 1.0,
        eps: float = 1e-7,
        squared: bool = False,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        super().__init__(
            mode,
            smooth,
            ignore_index,
            class_weights,
            include_background,
            reduction_scope,
            from_logits,
            eps,
            squared,
        )


class DiceLoss(SoftDice):
    """Dice loss ``1 - soft_dice(...)``: in ``[0, 1]``, 0 for a perfect prediction.

    The options of :func:`soft_dice`; the default is the tutorial's loss: binary,
    logits in, ``smooth=1.0``, summed over the batch.

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceLoss
        >>> loss_fn = DiceLoss(mode="multiclass", include_background=False)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss = loss_fn(logits, torch.randint(0, 3, (2, 8, 8)))
        >>> loss.backward()
        >>> 0.0 <= loss.item() <= 1.0, logits.grad is not None
        (True, True)
    """

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        return 1.0 - super()._value(input, target)


def jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    smooth: float = 1.0,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - J`` from logits, in ``[0, 1]``.

    Per class ``J = (TP + s) / (ΣP + ΣG - TP + s)`` with ``TP = Σp·g``, ``ΣP = Σp``,
    ``ΣG = Σg``; the sums, scopes, class weights and empty-class rule of
    :func:`~catseg.losses.soft_dice`. ``J = D / (2 - D)`` for ``smooth = 0``: monotone in
    Dice, but it punishes a mediocre overlap more.

    Args:
        input: Logits ``(N, C, H, W)``.
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        smooth: Added to numerator and denominator.
        ignore_index: Target value left out entirely; ``None`` keeps every pixel.
        class_weights: One weight per input channel for the class average.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` (sums over the batch) or ``"image"``.

    Returns:
        The scalar loss ``1 - J``; shapes, dtypes and errors as for every loss.

    Examples:
        >>> import torch
        >>> from catseg.losses import jaccard_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5
        >>> jaccard_loss(logits, torch.tensor([[[1, 0]]]), smooth=0.0)  # 1 - 0.5 / 1.5
        tensor(0.6667)
    """
    return JaccardLoss(
        mode=mode,
        smooth=smooth,
        ignore_index=ignore_index,
        class_weights=class_weights,
        include_background=include_background,
        reduction_scope=reduction_scope,
    ).forward(input, target)


class JaccardLoss(OverlapLoss):
    """Module form of :func:`jaccard_loss` (options checked once, here; read-only).

    Examples:
        >>> import torch
        >>> from catseg.losses import JaccardLoss
        >>> loss_fn = JaccardLoss(mode="multiclass", smooth=0.0)
        >>> loss_fn(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 1]]]))  # 1 - 0.5 / 1.5
        tensor(0.6667)
    """

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        smooth: float = 1.0,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        super().__init__(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )

    def _score(self, tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        return (tp + self.smooth) / self._floor(sum_p + sum_g - tp + self.smooth)

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        return 1.0 - super()._value(input, target)


def tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    smooth: float = 1.0,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Tversky loss ``(1 - TI)^gamma`` from logits, averaged over classes.

    Per class ``TI = (TP + s) / (TP + α·FP + β·FN + s)`` with ``TP = Σp·g``,
    ``FP = Σp·(1 - g)``, ``FN = Σ(1 - p)·g`` (Salehi et al. 2017); ``β > α`` punishes
    missed foreground more than false alarms. ``gamma ≠ 1`` gives the focal Tversky
    loss (Abraham & Khan 2019 write the exponent as ``1/γ``: their γ = 4/3 is
    ``gamma=0.75`` here), per image with the ``"image"`` scope. With ``α = β = 0.5`` it
    equals :class:`~catseg.losses.DiceLoss` with ``smooth`` doubled (the smp/MONAI
    convention); ``α = β = 1`` gives the Jaccard loss.

    Args:
        input: Logits ``(N, C, H, W)``.
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        alpha: Weight of false positives (finite, >= 0).
        beta: Weight of false negatives (finite, >= 0; not both 0).
        gamma: Focal exponent (finite, > 0); 1 is the plain Tversky loss.
        smooth: Added to numerator and denominator.
        ignore_index: Target value left out entirely; ``None`` keeps every pixel.
        class_weights: One weight per input channel for the class average.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` or ``"image"``.

    Returns:
        The scalar loss in ``[0, 1]``; shapes, dtypes and errors as for every loss.

    Examples:
        >>> import torch
        >>> from catseg.losses import tversky_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5, target [1, 0]
        >>> tversky_loss(logits, torch.tensor([[[1, 0]]]), alpha=0.3, beta=0.7, smooth=0.0)
        tensor(0.5000)
    """
    return TverskyLoss(
        mode=mode,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        smooth=smooth,
        ignore_index=ignore_index,
        class_weights=class_weights,
        include_background=include_background,
        reduction_scope=reduction_scope,
    ).forward(input, target)


class TverskyLoss(OverlapLoss):
    """Module form of :func:`tversky_loss` (options checked once, here; read-only).

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceLoss, TverskyLoss
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> tversky = TverskyLoss(mode="multiclass", smooth=0.5)(logits, target)
        >>> dice = DiceLoss(mode="multiclass", smooth=1.0)(logits, target)
        >>> torch.allclose(tversky, dice)                     # alpha = beta = 0.5
        True
    """

    _shown = (*OverlapLoss._shown, "alpha", "beta", "gamma")

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        smooth: float = 1.0,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        super().__init__(
            mode, smooth, ignore_index, class_weights, include_background, reduction_scope
        )
        self.alpha, self.beta = check_term_weights(("alpha", alpha), ("beta", beta))
        self.gamma = check_option("gamma", gamma, positive=True)

    def _score(self, tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        errors = self.alpha * (sum_p - tp) + self.beta * (sum_g - tp)
        loss = (1.0 - (tp + self.smooth) / self._floor(tp + errors + self.smooth)).clamp_min(0.0)
        # loss is 0 or >= 2^-24 (float32): the power's gradient is finite except at 0
        return torch.where(loss > 0, torch.where(loss > 0, loss, 1.0) ** self.gamma, loss)
