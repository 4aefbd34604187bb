"""Reading untrusted JSON with bounds: file size, nesting, items, numbers, duplicate keys."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catseg.checkpoint._bounds import Budget, short, walk_plain
from catseg.errors import CatsegError, CheckpointError, MissingFileError

MAX_JSON_BYTES = 1 << 20
"""Largest ``config.json`` a model folder may hold (catseg writes 1-20 kB)."""


class _RefusedJSONError(CatsegError, ValueError):
    """Raised by the ``json.loads`` hooks; ``parse_json`` turns it into ``fail(message)``."""


def _refuse_constant(name: str) -> float:
    raise _RefusedJSONError(f"{name} is not a finite number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _RefusedJSONError(f"the key {short(key)} appears twice in one object")
        data[key] = value
    return data


def parse_json(text: bytes, where: str, fail: Callable[[str], CatsegError]) -> Any:
    """Parse JSON bytes and check the result is plain data within catseg's load budget.

    Nesting deeper than :data:`~catseg.checkpoint._bounds.MAX_DEPTH`, more items than the
    budget, ints over 64 bits, ``NaN``/``Infinity`` and duplicate keys are refused with
    ``fail(message)``; the message starts with ``where``.

    Examples:
        >>> parse_json(b'{"a": [1, 2.5]}', "x.json", CheckpointError)
        {'a': [1, 2.5]}
        >>> parse_json(b"[" * 100_000, "x.json", CheckpointError)
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: x.json is not valid JSON: it is nested too deeply
    """
    try:
        data = json.loads(
            text.decode("utf-8"),
            parse_constant=_refuse_constant,
            object_pairs_hook=_no_duplicates,
        )
    except RecursionError:
        raise fail(f"{where} is not valid JSON: it is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, the hooks' error
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise fail(f"{where} is not valid JSON: {message}") from None
    walk_plain(data, where, Budget(), fail)
    for value in _floats(data):
        if not math.isfinite(value):  # 1e999 parses to inf
            raise fail(f"{where} holds the number {value}; only finite numbers are allowed")
    return data


def _floats(data: Any) -> list[float]:
    found: list[float] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def read_json(path: Path, *, limit: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file of at most ``limit`` bytes (checked before reading) with bounds.

    Raises:
        MissingFileError: If the file does not exist.
        CheckpointError: If it is too large, not UTF-8 JSON, or over the bounds.
    """
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist")
    size = os.stat(path).st_size
    if size > limit:
        raise CheckpointError(
            f"{path} is {size} bytes, over the limit of {limit} bytes for a catseg JSON file"
        )
    with open(path, "rb") as handle:
        text = handle.read(limit + 1)
    if len(text) > limit:  # grew while being read
        raise CheckpointError(f"{path} is over the limit of {limit} bytes for a catseg JSON file")
    return parse_json(text, str(path), CheckpointError)
