"""Griffe extension for the docs build: show private sentinel types by their public name.

``Segmenter.from_checkpoint`` and ``Segmenter.from_onnx`` default ``image_size`` to
``catseg.predict.KEEP`` ("use the file's value"), a member of the private enum
``_Keep``, so that mypy can tell it from ``None`` ("original size"). In the reference
the private type would show in every such signature (``tuple[int, int] | _Keep |
None``) and as the value of ``KEEP`` (``KEEP = _Keep.KEEP``). This extension writes the
public constant in its place, as PEP 661 proposes for sentinels
(``tuple[int, int] | KEEP | None = KEEP``), and leaves out the value of the constant
itself, whose docstring says what it means. The code is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import griffe

# private sentinel type -> the public constant that is its only value
SENTINELS = {"_Keep": "KEEP"}


def replace_names(expr: object) -> object:
    """``expr`` with every name in :data:`SENTINELS` replaced by its public constant."""
    if isinstance(expr, griffe.ExprName) and expr.name in SENTINELS:
        return griffe.ExprName(SENTINELS[expr.name], parent=expr.parent)
    if isinstance(expr, list):
        return [replace_names(item) for item in expr]
    if isinstance(expr, griffe.Expr) and dataclasses.is_dataclass(expr):
        for field in dataclasses.fields(expr):
            value = getattr(expr, field.name)
            new = replace_names(value)
            if new is not value:
                object.__setattr__(expr, field.name, new)
        return expr
    return expr


def mentions_sentinel(expr: object) -> bool:
    """Whether a griffe expression (or string) names a private sentinel type."""
    return any(name in str(expr) for name in SENTINELS)


class PublicSentinels(griffe.Extension):
    """Rewrites signatures and values that name a private sentinel type."""

    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        """Replace the sentinel type in parameter and return annotations."""
        for parameter in func.parameters:
            if mentions_sentinel(parameter.annotation):
                parameter.annotation = replace_names(parameter.annotation)  # type: ignore[assignment]
        if mentions_sentinel(func.returns):
            func.returns = replace_names(func.returns)  # type: ignore[assignment]

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        """Leave out the value of a constant that is a sentinel (``KEEP = _Keep.KEEP``)."""
        if attr.value is not None and mentions_sentinel(attr.value):
            attr.value = None
