"""The base of the loss modules, and the one core of the set-overlap losses.

For probabilities ``p`` and a one-hot (multiclass) or multi-hot target ``g`` on the
pixels that are not ignored, the overlap core sums per class ``TP = Σp·g``, ``ΣP = Σp``
(``Σp²`` when squared) and ``ΣG = Σg`` over the batch or per image; a score turns the
sums into one value per (image,) class, averaged over images, then over classes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from catseg._validation import check_bool, check_choice, check_ignore_index, check_mode
from catseg.errors import ConfigError, ReadOnlyOptionError
from catseg.losses._checks import (
    SCOPES,
    check_class_weights,
    check_option,
    check_weight_count,
    class_labels,
    float_input,
    sigmoid_target,
)


class LossModule(nn.Module):
    """Base of every loss module: options checked once in ``__init__``, then read-only."""

    _shown: ClassVar[tuple[str, ...]]  # the options ``repr`` shows, in order

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__ and name != "training" and not name.startswith("_"):
            raise ReadOnlyOptionError(
                f"{type(self).__name__}.{name} is read-only (options are checked once, at "
                "construction); build a new loss with the changed option"
            )
        super().__setattr__(name, value)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss (for :class:`~catseg.losses.SoftDice`: the coefficient) of ``input``.

        Inputs, output and errors are those of every loss (see :mod:`catseg.losses`).
        """
        return self._value(input, target)

    @abc.abstractmethod
    def _value(self, input: Tensor, target: Tensor) -> Tensor: ...

    def extra_repr(self) -> str:
        def show(value: object) -> str:
            return repr(value.tolist() if isinstance(value, Tensor) else value)

        return ", ".join(f"{name}={show(getattr(self, name))}" for name in self._shown)


class OverlapLoss(LossModule):
    """A loss of the soft per-class sums ``(TP, ΣP, ΣG)``: Dice, Jaccard, Tversky, Dice + CE."""

    _shown: ClassVar[tuple[str, ...]] = ("mode", "smooth", "ignore_index", "reduction_scope")

    def __init__(
        self,
        mode: object,
        smooth: object,
        ignore_index: object,
        class_weights: Sequence[float] | Tensor | None,
        include_background: object,
        reduction_scope: object,
        from_logits: object = True,
        eps: object = 1e-7,
        squared: object = False,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.from_logits = check_bool("from_logits", from_logits)
        self.smooth = check_option("smooth", smooth)
        self.eps = check_option("eps", eps, positive=True)
        self.squared = check_bool("squared", squared)
        self.ignore_index = check_ignore_index(ignore_index, self.mode)
        self.class_weights = check_class_weights(class_weights, "class_weights")
        self.include_background = check_bool("include_background", include_background)
        self.reduction_scope = check_choice("reduction_scope", reduction_scope, SCOPES)

    def _score(self, tp: Tensor, sum_p: Tensor, sum_g: Tensor) -> Tensor:
        """The Dice coefficient of each class (Jaccard and Tversky override it)."""
        return (2.0 * tp + self.smooth) / self._floor(sum_p + sum_g + self.smooth)

    def _floor(self, den: Tensor) -> Tensor:
        """``den`` clamped to ``eps``, at least the dtype's smallest normal (``1/eps`` finite)."""
        return den.clamp_min(max(self.eps, torch.finfo(den.dtype).tiny))

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        with float_input(input, target, self.mode, self.from_logits) as x:
            weights = self._weights(x.shape[1])
            if self.mode == "multiclass":
                labels, valid = class_labels(target, x.shape, self.ignore_index)
                probs = torch.softmax(x, dim=1) if self.from_logits else x
            else:
                labels, valid = sigmoid_target(target, x.shape, self.mode, self.ignore_index)
                probs = torch.sigmoid(x) if self.from_logits else x
            return self._class_mean(self._score(*self._sums(probs, labels, valid)), weights)

    def _weights(self, channels: int) -> Tensor | None:
        """The class weights checked against the channel count of the input."""
        weights = self.class_weights
        if weights is not None:
            check_weight_count(weights, "class_weights", channels)
            if float(weights[self._first :].sum()) <= 0.0:
                raise ConfigError(
                    f"class_weights {weights.tolist()} sum to zero over the classes used "
                    f"(include_background={self.include_background})"
                )
        return weights

    @property
    def _first(self) -> int:
        """Index of the first channel in the class average (1 drops the background)."""
        return 1 if self.mode == "multiclass" and not self.include_background else 0

    def _sums(self, probs: Tensor, g: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(TP, ΣP, ΣG)`` per class ``(C,)`` or per image and class ``(N, C)``.

        ``g`` is the {0, 1} target of the input's shape (binary, multilabel) or the label
        map (multiclass: ``TP`` by a gather and an index-add, no one-hot tensor), 0 where
        ``valid`` is False. Ignored entries are multiplied by 0 (not selected away), so a
        NaN anywhere in ``probs`` stays NaN; ``Σg² = Σg`` since ``g`` is 0 or 1.
        """
        per_image = self.reduction_scope == "image"
        dims = (2, 3) if per_image else (0, 2, 3)
        multiclass = self.mode == "multiclass"
        p = probs * (valid.unsqueeze(1) if multiclass else valid).to(probs.dtype)
        sum_p = (p * p).sum(dims) if self.squared else p.sum(dims)
        if not multiclass:
            g = g.to(p.dtype)
            return (p * g).sum(dims), sum_p, g.sum(dims)
        n, c = p.shape[:2]
        index = g + c * torch.arange(n, device=g.device).view(n, 1, 1) if per_image else g
        bins, flat = (n * c if per_image else c), index.reshape(-1)
        at_label = p.gather(1, g.unsqueeze(1)).reshape(-1)
        tp = torch.zeros(bins, dtype=p.dtype, device=p.device).index_add_(0, flat, at_label)
        count = torch.bincount(flat[valid.reshape(-1)], minlength=bins).to(p.dtype)
        return tp.reshape(sum_p.shape), sum_p, count.reshape(sum_p.shape)

    def _class_mean(self, values: Tensor, weights: Tensor | None) -> Tensor:
        """Mean over images (if per image), then the (weighted) mean over the used classes."""
        values = (values.mean(0) if values.ndim == 2 else values)[self._first :]
        if weights is None:
            return values.mean()
        used = weights[self._first :].to(device=values.device, dtype=values.dtype)
        return (values * used).sum() / used.sum()
