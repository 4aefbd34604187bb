"""The one base class of the loss modules: options checked once, one implementation, one repr."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, TypeVar

from torch import Tensor, nn

__all__ = ["LossModule", "Options"]


class Options(Protocol):
    """What a loss module needs of its checked options: a ``name=value`` description."""

    def describe(self) -> str:
        """The options as ``name=value`` pairs for ``extra_repr``."""
        ...


OptionsT = TypeVar("OptionsT", bound=Options)


class LossModule(nn.Module, Generic[OptionsT]):
    """Base of every loss module: the options checked once, kept in ``options``.

    A subclass checks its options in ``__init__`` (its public, keyword-only signature)
    and hands them to this constructor, and names the loss's one implementation in
    ``_compute`` (``(input, target, options) -> Tensor``, the same function its function
    form calls), so the module and the function cannot drift apart.
    """

    _compute: ClassVar[staticmethod[[Tensor, Tensor, Any], Tensor]]

    def __init__(self, options: OptionsT) -> None:
        super().__init__()
        self.options: OptionsT = options

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss (for :class:`~catseg.losses.SoftDice`: the coefficient) of ``input``.

        Args:
            input: Logits ``(N, C, H, W)`` (probabilities where ``from_logits=False``).
            target: Labels, as for the function form of the loss (e.g.
                :func:`~catseg.losses.soft_dice` for :class:`~catseg.losses.DiceLoss`).

        Returns:
            The scalar value, computed with the options checked at construction.

        Raises:
            ConfigError: If a checked option does not fit ``input`` (e.g. the length of
                ``class_weights`` or ``alpha``).
            ShapeError: If the shapes of ``input`` and ``target`` do not fit ``mode``.
            DTypeError: If ``input`` is not floating point or ``target`` has a wrong dtype.
            DataError: If ``target`` holds a value other than the labels and
                ``ignore_index``, or ``from_logits=False`` and ``input`` is outside ``[0, 1]``.
        """
        return type(self)._compute(input, target, self.options)

    def extra_repr(self) -> str:
        return self.options.describe()
