"""Focal loss (Lin et al. 2017): :func:`focal_loss` and :class:`FocalLoss`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from catseg._validation import check_ignore_index, check_mode, check_probability
from catseg.errors import ConfigError
from catseg.losses._base import LossModule
from catseg.losses._checks import (
    LossMode,
    check_class_weights,
    check_option,
    check_weight_count,
    class_labels,
    float_input,
    sigmoid_target,
    weighted_mean,
)


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
    the valid entries (α does not renormalise it).

    Args:
        input: Logits ``(N, C, H, W)``.
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        gamma: Focusing exponent (finite, >= 0).
        alpha: Binary/multilabel: weight of the positives in ``[0, 1]``; multiclass:
            one weight (>= 0) per class; ``None``: no weighting.
        ignore_index: Target value left out; ``None`` keeps every pixel.

    Returns:
        The scalar loss, >= 0; shapes, dtypes and errors as for every loss.

    Examples:
        >>> import torch
        >>> from catseg.losses import focal_loss
        >>> logits = torch.zeros(1, 1, 1, 2)                  # p = 0.5: (1/2)^2 · ln 2
        >>> focal_loss(logits, torch.tensor([[[1, 0]]]))
        tensor(0.1733)
    """
    return FocalLoss(mode=mode, gamma=gamma, alpha=alpha, ignore_index=ignore_index).forward(
        input, target
    )


class FocalLoss(LossModule):
    """Module form of :func:`focal_loss` (options checked once, here; read-only).

    ``gamma=0`` without ``alpha`` is plain cross-entropy:

    Examples:
        >>> import torch
        >>> from catseg.losses import FocalLoss
        >>> loss_fn = FocalLoss(mode="multiclass", gamma=0.0)  # = cross-entropy
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> ce = torch.nn.functional.cross_entropy(logits, target)
        >>> torch.allclose(loss_fn(logits, target), ce)
        True
    """

    _shown = ("mode", "gamma", "alpha", "ignore_index")

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.gamma = check_option("gamma", gamma)
        if alpha is not None and self.mode == "multiclass" and isinstance(alpha, (int, float)):
            raise ConfigError(
                f"alpha must be one weight per class in multiclass mode (a sequence), got "
                f"{alpha!r}; a single alpha weighs the positives of a sigmoid output "
                "(binary, multilabel)"
            )
        self.alpha: float | Tensor | None = (
            None
            if alpha is None
            else check_class_weights(alpha, "alpha")
            if self.mode == "multiclass"
            else check_probability("alpha", alpha, open_interval=False)
        )
        self.ignore_index = check_ignore_index(ignore_index, self.mode)

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        with float_input(input, target, self.mode) as x:
            alpha_t: Tensor | float = 1.0
            if self.mode == "multiclass":
                g, valid = class_labels(target, x.shape, self.ignore_index)
                log_p = torch.log_softmax(x, dim=1)
                log_p_t = log_p.gather(1, g.unsqueeze(1)).squeeze(1)
                # log(1 - p_t): the log of the other classes' mass, finite (C >= 2)
                log_rest = log_p.scatter(1, g.unsqueeze(1), -math.inf).logsumexp(1)
                if isinstance(self.alpha, Tensor):
                    check_weight_count(self.alpha, "alpha", x.shape[1])
                    alpha_t = self.alpha.to(device=x.device, dtype=x.dtype)[g]
            else:
                g, valid = sigmoid_target(target, x.shape, self.mode, self.ignore_index)
                g = g.to(x.dtype)
                # p_t = sigmoid(z), 1 - p_t = sigmoid(-z) with z = x·(2g - 1); BCE = -log p_t
                z = x * (2.0 * g - 1.0)
                log_p_t, log_rest = F.logsigmoid(z), F.logsigmoid(-z)
                if isinstance(self.alpha, float):
                    alpha_t = self.alpha * g + (1.0 - self.alpha) * (1.0 - g)
            # (1 - p_t)^γ in log space: its gradient stays finite at p_t = 1 for γ < 1
            focus = (self.gamma * log_rest).exp()
            return weighted_mean(-log_p_t * focus * alpha_t, valid.to(x.dtype))
