"""Argument checks with one wording per rule, shared by every public entry point.

Each helper takes the argument's ``name`` and ``value``, returns the value normalised
(``int``, ``float``, a ``Path`` ...) and raises :class:`~catseg.errors.ConfigError` naming
the argument, the value (bounded by :func:`~catseg._bounds.short`) and what was expected.
Checks run once, where an argument enters. ``bool`` is never accepted where a number is
expected (``True`` is an ``int`` to Python, not to a user); ints must fit in 64 bits.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar

from catseg._bounds import short
from catseg.errors import ConfigError

T = TypeVar("T")
Mode: TypeAlias = Literal["binary", "multiclass", "multilabel"]
"""How logits become labels: one sigmoid map, a softmax over classes, or K sigmoid maps."""
MODES: tuple[Mode, ...] = ("binary", "multiclass", "multilabel")


def _is_int(value: object) -> bool:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return ok and -(2**63) <= value < 2**63  # type: ignore[operator]


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a bool; only ``True``/``False`` (and numpy bools) are accepted."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ConfigError(f"{name} must be True or False, got {short(value)}")


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """``value`` as an int, at least ``minimum`` when given (floats such as 2.0 are refused)."""
    if not _is_int(value):
        raise ConfigError(f"{name} must be an int, got {short(value)}")
    number = operator.index(value)  # type: ignore[arg-type]
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {short(value)}")
    return number


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1."""
    if not _is_int(value) or operator.index(value) < 1:  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be a positive int, got {short(value)}")
    return operator.index(value)  # type: ignore[arg-type]


def check_finite_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float inside ``[low, high]`` (ends open when asked)."""
    interval = ""
    if low is not None or high is not None:
        left = ("(" if low_open else "[") + ("-inf" if low is None else repr(float(low)))
        right = ("inf" if high is None else repr(float(high))) + (")" if high_open else "]")
        interval = f" in {left}, {right}"
    number = float(value) if _is_real(value) else math.nan  # type: ignore[arg-type]
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if not math.isfinite(number) or too_low or too_high:
        raise ConfigError(f"{name} must be a finite number{interval}, got {short(value)}")
    return number


def check_probability(name: str, value: object, *, open_interval: bool = True) -> float:
    """``value`` as a float in (0, 1) (or [0, 1] with ``open_interval=False``)."""
    return check_finite_float(
        name, value, low=0.0, high=1.0, low_open=open_interval, high_open=open_interval
    )


def check_choice(name: str, value: T, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable values
        ok = False
    if not ok or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {options}; got {short(value)}")
    return value


def check_mode(value: object) -> Mode:
    """``value`` if it is one of :data:`MODES`."""
    return check_choice("mode", value, MODES)  # type: ignore[arg-type]


def check_size(name: str, value: object) -> tuple[int, int]:
    """An int (square) or a ``(height, width)`` pair of positive ints, as a pair."""
    expected = f"{name} must be an int or (height, width) of positive ints, got {short(value)}"
    if _is_int(value):
        pair: tuple[object, ...] = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        pair = tuple(value)
    else:
        raise ConfigError(expected)
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise ConfigError(expected)
    height, width = (operator.index(v) for v in pair)  # type: ignore[arg-type]
    if height < 1 or width < 1:
        raise ConfigError(expected)
    return (height, width)


def check_optional_size(name: str, value: object) -> tuple[int, int] | None:
    """Like :func:`check_size`, with ``None`` passed through."""
    return None if value is None else check_size(name, value)


def check_class_names(name: str, value: object, *, count: int | None = None) -> list[str]:
    """A list of distinct, non-empty class names (``count`` of them when given)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a list of class names, got {short(value)}")
    names = list(value)
    for i, item in enumerate(names):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{name} must hold non-empty strings, got {short(item)}")
        if item in names[:i]:
            raise ConfigError(f"{name} must be distinct, got {short(item)} twice")
    if count is not None and len(names) != count:
        raise ConfigError(f"{name} must have {count} entries, got {len(names)}: {short(names)}")
    return names


def check_mean_std(
    mean: object, std: object, *, channels: int | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``mean`` and ``std``: finite numbers, std > 0, equal lengths."""
    out: list[tuple[float, ...]] = []
    for name, value, low in (("mean", mean, None), ("std", std, 0.0)):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            raise ConfigError(f"{name} must be a non-empty sequence of numbers, got {short(value)}")
        out.append(
            tuple(
                check_finite_float(f"{name}[{i}]", v, low=low, low_open=low is not None)
                for i, v in enumerate(value)
            )
        )
    if len(out[0]) != len(out[1]):
        raise ConfigError(f"mean and std must have equal lengths, got {short(mean)}, {short(std)}")
    if channels is not None and len(out[0]) not in (1, channels):
        raise ConfigError(f"mean and std must have 1 or {channels} entries, got {short(mean)}")
    return out[0], out[1]


def check_path(name: str, value: object) -> Path:
    """``value`` (a non-empty ``str`` or ``os.PathLike``) as a :class:`~pathlib.Path`."""
    if hasattr(value, "__fspath__") or (isinstance(value, str) and value):
        return Path(value)
    raise ConfigError(f"{name} must be a path (str or os.PathLike), got {short(value)}")


def check_callable(name: str, value: T, *, optional: bool = False) -> T:
    """``value`` if it is callable (or ``None`` when ``optional``)."""
    if not callable(value) and not (optional and value is None):
        raise ConfigError(f"{name} must be callable{' or None' * optional}, got {short(value)}")
    return value


def check_ignore_index(value: object, mode: str) -> int | None:
    """``None`` or an int; not 0 or 1 outside multiclass mode, where they are the targets."""
    if value is not None and not _is_int(value):
        raise ConfigError(f"ignore_index must be an int or None, got {short(value)}")
    if mode != "multiclass" and value in (0, 1):
        raise ConfigError(
            f"ignore_index must not be 0 or 1 in {mode} mode (the target values), got "
            f"{value}; the usual value is 255"
        )
    return None if value is None else operator.index(value)  # type: ignore[arg-type]
