"""Focal loss (Lin et al. 2017): :func:`focal_loss` and :class:`FocalLoss`, one implementation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from catseg._validation import check_finite_float, check_probability
from catseg.errors import ConfigError
from catseg.losses._base import LossModule
from catseg.losses._inputs import (
    class_labels,
    float_input,
    sigmoid_target,
    weighted_mean,
)
from catseg.losses._options import LossMode, check_class_weights, check_ignore_index, check_mode

__all__ = ["FocalLoss", "FocalOptions", "focal_loss"]


@dataclass(frozen=True, eq=False)
class FocalOptions:
    """The checked options of :class:`FocalLoss`."""

    mode: LossMode
    gamma: float
    alpha: float | Tensor | None
    ignore_index: int | None

    @classmethod
    def checked(
        cls,
        mode: object,
        gamma: object,
        alpha: float | Sequence[float] | Tensor | None,
        ignore_index: object,
    ) -> FocalOptions:
        """Check every option once (``alpha`` against the mode)."""
        checked_mode = check_mode(mode)
        checked_gamma = check_finite_float("gamma", gamma, low=0.0)
        weights: float | Tensor | None = None
        if alpha is not None and checked_mode == "multiclass":
            if isinstance(alpha, (int, float)):
                raise ConfigError(
                    f"alpha must be one weight per class in multiclass mode (a sequence), got "
                    f"{alpha!r}; a single alpha weighs the positives of a sigmoid output "
                    "(binary, multilabel)"
                )
            weights = check_class_weights(alpha, "alpha")
        elif alpha is not None:
            weights = check_probability("alpha", alpha, open_interval=False)
        return cls(
            checked_mode, checked_gamma, weights, check_ignore_index(ignore_index, checked_mode)
        )

    def describe(self) -> str:
        """The options as ``name=value`` pairs for ``extra_repr``."""
        alpha = self.alpha.tolist() if isinstance(self.alpha, Tensor) else self.alpha
        return (
            f"mode={self.mode!r}, gamma={self.gamma}, alpha={alpha}, "
            f"ignore_index={self.ignore_index}"
        )


def _modulate(loss: Tensor, p_t: Tensor, gamma: float) -> Tensor:
    return loss if gamma == 0.0 else loss * (1.0 - p_t) ** gamma


def _multiclass_focal(x: Tensor, target: Tensor, opts: FocalOptions) -> tuple[Tensor, Tensor]:
    labels, valid = class_labels(target, x.shape, opts.ignore_index)
    log_p_t = torch.log_softmax(x, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    loss = _modulate(-log_p_t, log_p_t.exp(), opts.gamma)
    if isinstance(opts.alpha, Tensor):
        if opts.alpha.numel() != x.shape[1]:
            raise ConfigError(
                f"alpha has {opts.alpha.numel()} entries, expected one per input channel "
                f"({x.shape[1]})"
            )
        loss = loss * opts.alpha.to(device=x.device, dtype=x.dtype)[labels]
    return loss, valid


def _sigmoid_focal(x: Tensor, target: Tensor, opts: FocalOptions) -> tuple[Tensor, Tensor]:
    g, valid = sigmoid_target(target, x.shape, opts.mode, opts.ignore_index)
    g = g.to(device=x.device, dtype=x.dtype)
    # p_t = sigmoid(x) where g = 1, 1 - sigmoid(x) = sigmoid(-x) where g = 0; BCE = -log p_t
    log_p_t = F.logsigmoid(x * (2.0 * g - 1.0))
    loss = _modulate(-log_p_t, log_p_t.exp(), opts.gamma)
    if isinstance(opts.alpha, float):
        loss = loss * (opts.alpha * g + (1.0 - opts.alpha) * (1.0 - g))
    return loss, valid


def _focal(input: Tensor, target: Tensor, opts: FocalOptions) -> Tensor:
    with float_input(input, target, opts.mode) as x:
        if opts.mode == "multiclass":
            loss, valid = _multiclass_focal(x, target, opts)
        else:
            loss, valid = _sigmoid_focal(x, target, opts)
        return weighted_mean(loss, valid.to(x.dtype))


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    gamma: float = 2.0,
    alpha: float | Sequence[float] | Tensor | None = None,
    ignore_index: int | None = 255,
) -> Tensor:
    """Focal loss from logits, averaged over the entries that are not ignored.

    Binary and multilabel (one term per pixel and label, Lin et al. 2017):
    ``FL = α_t · (1 - p_t)^γ · BCE(x, g)`` with ``p = sigmoid(x)``,
    ``p_t = p·g + (1 - p)·(1 - g)`` and ``α_t = α·g + (1 - α)·(1 - g)`` (no weighting
    for ``alpha=None``). With no ignored pixel the binary value equals torchvision's
    ``sigmoid_focal_loss(x, g, alpha, gamma, reduction="mean")`` (torchvision's
    ``alpha=-1`` is ``None`` here; its default is 0.25, catseg's ``None``).

    Multiclass (softmax focal loss): ``FL = -α_y · (1 - p_y)^γ · log p_y`` with ``p_y``
    the softmax probability of the target class and ``α`` one weight per class.
    ``gamma=0`` and ``alpha=None`` give plain (binary) cross-entropy. The mean is over
    the valid entries (α does not renormalise it). A NaN logit anywhere (also at an
    ignored pixel) makes the loss NaN.

    Args:
        input: Logits, one channel (binary), C ≥ 2 (multiclass) or K ≥ 1 (multilabel).
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        gamma: Focusing exponent (finite, >= 0).
        alpha: Binary/multilabel: weight of the positives in ``[0, 1]``; multiclass:
            one weight (>= 0) per class; ``None``: no weighting.
        ignore_index: Target value left out; ``None`` keeps every pixel.

    Returns:
        The scalar loss, >= 0 (0 only for a perfect, confident prediction); shapes, dtypes and
        errors as for every loss (see :mod:`catseg.losses`).

    Examples:
        >>> import torch
        >>> from catseg.losses import focal_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5: (1/2)^2 · ln 2
        >>> focal_loss(logits, torch.tensor([[[1, 0]]]))
        tensor(0.1733)
    """
    return _focal(input, target, FocalOptions.checked(mode, gamma, alpha, ignore_index))


class FocalLoss(LossModule[FocalOptions]):
    """Module form of :func:`focal_loss` (options documented there, checked once, here).

    The checked options are kept in ``options``; ``gamma=0`` without ``alpha`` is plain
    cross-entropy:

    Examples:
        >>> import torch
        >>> from catseg.losses import FocalLoss
        >>> loss_fn = FocalLoss(mode="multiclass", gamma=0.0)  # = cross-entropy
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> ce = torch.nn.functional.cross_entropy(logits, target)
        >>> torch.allclose(loss_fn(logits, target), ce)
        True
    """

    _compute = staticmethod(_focal)

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__(FocalOptions.checked(mode, gamma, alpha, ignore_index))
