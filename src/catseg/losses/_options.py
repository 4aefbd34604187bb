"""Option checks and option records shared by every loss (one rule each, via catseg._validation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from catseg._validation import check_bool, check_choice, check_finite_float, check_int
from catseg.errors import ConfigError, ReadOnlyOptionError

__all__ = [
    "DiceMode",
    "LossMode",
    "OptionView",
    "OverlapOptions",
    "ReductionScope",
    "check_class_weights",
    "check_ignore_index",
    "check_mode",
    "check_term_weights",
]

LossMode = Literal["binary", "multiclass", "multilabel"]
"""``"binary"``: one logit channel (sigmoid); ``"multiclass"``: C ≥ 2 channels (softmax);
``"multilabel"``: K independent sigmoid channels with multi-hot targets ``(N, K, H, W)``."""

DiceMode = LossMode
"""The modes of :func:`~catseg.losses.soft_dice` (the same words as :data:`LossMode`)."""

ReductionScope = Literal["batch", "image"]
"""``"batch"``: sums over the whole batch; ``"image"``: per image, then the mean."""

MODES: tuple[LossMode, ...] = ("binary", "multiclass", "multilabel")
SCOPES: tuple[ReductionScope, ...] = ("batch", "image")
EPS = 1e-7


def check_mode(value: object) -> LossMode:
    """``value`` if it is one of the three modes."""
    return check_choice("mode", value, MODES)  # type: ignore[arg-type]


def check_ignore_index(value: object, mode: LossMode) -> int | None:
    """``None`` or an int (255 for VOC, -100 for torch's convention).

    In the sigmoid modes the targets are 0 and 1, so ignoring either would silently drop
    every background or every foreground pixel: 0 and 1 are refused there.
    """
    if value is None:
        return None
    try:
        checked = check_int("ignore_index", value)
    except ConfigError:
        raise ConfigError(f"ignore_index must be an int or None, got {value!r}") from None
    if mode != "multiclass" and checked in (0, 1):
        raise ConfigError(
            f"ignore_index must not be 0 or 1 in {mode} mode (the target values), got "
            f"{checked}; the usual value is 255"
        )
    return checked


def check_class_weights(
    value: Sequence[float] | Tensor | None, name: str = "class_weights"
) -> Tensor | None:
    """Class weights as a float64 CPU tensor: 1-D, non-empty, finite, >= 0."""
    if value is None:
        return None
    try:
        weights = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be a 1-D sequence of numbers, got {value!r}") from None
    if weights.ndim != 1 or weights.numel() == 0:
        raise ConfigError(
            f"{name} must be a non-empty 1-D sequence, got shape {tuple(weights.shape)}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ConfigError(f"{name} must be finite and >= 0, got {weights.tolist()}")
    return weights


def check_term_weights(
    first: tuple[str, object], second: tuple[str, object]
) -> tuple[float, float]:
    """Two term weights (finite, >= 0), not both 0."""
    a = check_finite_float(first[0], first[1], low=0.0)
    b = check_finite_float(second[0], second[1], low=0.0)
    if a == 0 and b == 0:
        raise ConfigError(f"{first[0]} and {second[0]} are both 0; the loss would be 0")
    return a, b


@dataclass(frozen=True, eq=False)
class OverlapOptions:
    """The checked options of the set-overlap losses (Dice, Jaccard, Tversky)."""

    mode: LossMode
    smooth: float
    ignore_index: int | None
    class_weights: Tensor | None
    include_background: bool
    reduction_scope: ReductionScope
    from_logits: bool = True
    eps: float = EPS
    squared: bool = False

    @classmethod
    def checked(
        cls,
        mode: object,
        smooth: object,
        ignore_index: object,
        class_weights: Sequence[float] | Tensor | None,
        include_background: object,
        reduction_scope: object,
        *,
        from_logits: object = True,
        eps: object = EPS,
        squared: object = False,
    ) -> OverlapOptions:
        """Check every option once and return them normalised (raises ConfigError).

        The six options every set-overlap loss has come first, in the order of the public
        signatures; the Dice-only ones are keywords.
        """
        checked_mode = check_mode(mode)
        return cls(
            mode=checked_mode,
            smooth=check_finite_float("smooth", smooth, low=0.0),
            ignore_index=check_ignore_index(ignore_index, checked_mode),
            class_weights=check_class_weights(class_weights),
            include_background=check_bool("include_background", include_background),
            reduction_scope=check_choice("reduction_scope", reduction_scope, SCOPES),  # type: ignore[arg-type]
            from_logits=check_bool("from_logits", from_logits),
            eps=check_finite_float("eps", eps, low=0.0, low_open=True),
            squared=check_bool("squared", squared),
        )

    @property
    def first_class(self) -> int:
        """Index of the first channel in the class average (1 drops the background)."""
        return 1 if self.mode == "multiclass" and not self.include_background else 0

    def describe(self) -> str:
        """The options as ``name=value`` pairs for ``extra_repr``."""
        return (
            f"mode={self.mode!r}, smooth={self.smooth}, ignore_index={self.ignore_index}, "
            f"reduction_scope={self.reduction_scope!r}"
        )


class OptionView:
    """Read-only attribute of a loss module that shows one field of its checked options.

    Options are checked once, at construction; assigning to the attribute afterwards
    raises instead of silently bypassing the checks (build a new loss instead).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.options, self.name)  # type: ignore[attr-defined]

    def __set__(self, obj: object, value: object) -> None:
        raise ReadOnlyOptionError(
            f"{type(obj).__name__}.{self.name} is read-only (options are checked once, at "
            "construction); build a new loss with the changed option"
        )
