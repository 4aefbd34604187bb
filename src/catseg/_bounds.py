"""Bounds on untrusted files (checkpoints, model folders, ONNX metadata), checked before use.

Every file is untrusted input. Unpickling is linear in the size of the file (once its
tuples are bounded: :func:`pickle_problem`); the objects it yields may not be: a list
that holds the same list twice, nested forty deep, is a few hundred bytes in the file
and 2**40 items to anything that walks or copies it (``repr``, ``==``). Every field is
walked once with a budget that counts each *visit* (shared references counted each
time), a nesting limit, a character budget for strings and a 64-bit limit for ints;
tensors must be plain dense (strided) tensors whose elements fit their storage.

The same walk runs when saving (raising :class:`~catseg.errors.ConfigError` that names
the argument), so every file catseg writes is one catseg reads back.
"""

from __future__ import annotations

import json
import math
import os
import pickletools
import reprlib
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from catseg.errors import CatsegError, CheckpointError, MissingFileError

MAX_METADATA_BYTES = 1 << 19
"""Largest pickled metadata (``data.pkl``: everything but the tensor bytes) a file may hold.

PyTorch's safe unpickler runs in Python, at about 1 MB/s for the worst mix of opcodes,
so this bounds the time a load takes. catseg's own checkpoints hold 10-170 kB (a ResNet-34
with its AdamW state and 1000 epochs of history: 160 kB); the weights are stored beside
it and do not count."""
MAX_ITEMS = 200_000
"""Most containers and values one load may visit, shared references counted each time."""
MAX_DEPTH = 32
"""Deepest nesting of dicts/lists/tuples in any field."""
MAX_CHARS = 4_000_000
"""Most characters of strings (and bytes) one load may visit, shared ones counted each time."""
MAX_NAME_CHARS = 1024
"""Longest class name, weight name or config string."""
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)

_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40

_SCALARS = (type(None), bool, float, complex, torch.dtype, torch.device)


def short(value: object) -> str:
    """A bounded ``repr`` for messages: a few items, a few levels, long strings cut.

    Examples:
        >>> short(["x" * 100, [1, [2, [3]]], 4, 5, 6])
        "['xxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx', [1, [...]], 4, 5, ...]"
        >>> short(10**5000)
        '<int that cannot be printed>'
    """
    try:
        return _SHORT.repr(value)
    except ValueError:  # an int too long to print (over 4300 digits) somewhere inside
        return f"<{type(value).__name__} that cannot be printed>"


@dataclass
class Budget:
    """What is left to visit in one load (or save); shared by all the fields walked."""

    items: int = MAX_ITEMS
    chars: int = MAX_CHARS


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor cannot be part of a checkpoint, or ``None`` if it can.

    Examples:
        >>> tensor_problem(torch.zeros(2)) is None
        True
        >>> tensor_problem(torch.zeros(1).expand(10**6))
        'declares 1000000 elements over a storage of 1 (overlapping strides)'
    """
    if tensor.layout != torch.strided:
        return f"is a {str(tensor.layout).replace('torch.', '')} tensor (only dense tensors)"
    if tensor.is_quantized:
        return f"is a quantized tensor ({tensor.dtype}; only float and integer tensors)"
    if tensor.device.type == "meta":
        return "is a meta tensor (it holds no values)"
    capacity = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
    if tensor.numel() > capacity:
        return (
            f"declares {tensor.numel()} elements over a storage of {capacity} (overlapping strides)"
        )
    return None


def weight_problem(tensor: torch.Tensor, like: torch.Tensor | None = None) -> str | None:
    """Why a tensor cannot be a model weight (in place of the model's ``like``), or ``None``.

    Examples:
        >>> weight_problem(torch.tensor([1.0, float("nan")]))
        'holds NaN or infinite values'
        >>> weight_problem(torch.ones(2, dtype=torch.bool), like=torch.zeros(2))
        'is torch.bool, but the model needs a floating-point tensor'
    """
    if (problem := tensor_problem(tensor)) is not None:
        return problem
    if tensor.is_complex():
        return f"is a complex tensor ({tensor.dtype}); model weights are real"
    if like is not None and like.is_floating_point() != tensor.is_floating_point():
        kind = "a floating-point" if like.is_floating_point() else "an integer"
        return f"is {tensor.dtype}, but the model needs {kind} tensor"
    finite = not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())
    return None if finite else "holds NaN or infinite values"


def pickle_problem(data: bytes) -> str | None:
    """Why unpickling ``data`` could hang, or ``None``: a tuple of over :data:`MAX_ITEMS` items.

    A dict key is hashed when unpickled: 40 tuples, each holding the one below twice, are
    2**40 to hash. The opcodes are read, not run; malformed data is left to the unpickler.
    """
    stack: list[int] = []  # the items each stack entry expands to (1 for all but tuples)
    marks: list[int] = []
    memo: dict[object, int] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "MARK":
                marks.append(len(stack))
            elif op.name.startswith("TUPLE"):
                start = marks.pop() if op.name == "TUPLE" else len(stack) - int(op.name[-1])
                stack[start:] = [1 + sum(stack[start:])]
                if stack[-1] > MAX_ITEMS:
                    return f"its pickle builds a tuple of more than {MAX_ITEMS} nested items"
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if arg is None else arg] = stack[-1]
            elif op.name.endswith("GET"):
                stack.append(memo[arg])
            else:
                before = op.stack_before
                if pickletools.markobject in before:
                    del stack[marks.pop() :]
                    before = before[: before.index(pickletools.markobject)]
                stack[len(stack) - len(before) :] = [1] * len(op.stack_after)
    except (ValueError, KeyError, IndexError):
        return None
    return None


def walk_plain(
    value: Any,
    where: str,
    budget: Budget,
    fail: Callable[[str], CatsegError],
    *,
    tensor_check: Callable[[torch.Tensor], str | None] = tensor_problem,
) -> None:
    """Check that ``value`` is plain data within the budget; raise ``fail(message)`` if not.

    Plain data: ``None``, bools, ints (64-bit), floats, complex, strings, bytes, tensors
    (``tensor_check`` is asked about each), ``torch.dtype``/``torch.device``/``torch.Size``
    and dicts (string or number keys), lists and tuples of them, nested at most
    :data:`MAX_DEPTH` deep. The walk is iterative and stops as soon as the budget is spent.

    Examples:
        >>> from catseg.errors import CheckpointError
        >>> bomb: list = [0]
        >>> for _ in range(30):  # 2**31 items to walk, 30 lists in memory
        ...     bomb = [bomb, bomb]
        >>> walk_plain(bomb, "extra", Budget(), CheckpointError)
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: extra...holds more than 200000 items ...
    """
    # Entries are (item, parent entry, key in parent, depth); the path of an item is only
    # spelled out when it is reported, so a walk costs no string building.
    stack: list[_Entry] = [(value, None, where, 0)]
    while stack:
        entry = stack.pop()
        item, _, _, depth = entry
        budget.items -= 1
        if budget.items < 0:
            raise fail(_too_many(where))
        if isinstance(item, (str, bytes)):
            budget.chars -= len(item)
            if budget.chars < 0:
                raise fail(f"{where} holds more than {MAX_CHARS} characters of strings")
        elif isinstance(item, int) and not isinstance(item, bool):
            if not _INT_RANGE[0] <= item <= _INT_RANGE[1]:
                raise fail(f"{_path(entry)} is an int of {item.bit_length()} bits (at most 64)")
        elif isinstance(item, torch.Tensor):
            problem = tensor_check(item)
            if problem is not None:
                raise fail(f"{_path(entry)} {problem}")
        elif isinstance(item, _SCALARS):
            continue
        elif depth >= MAX_DEPTH:
            raise fail(f"{_path(entry)} is nested more than {MAX_DEPTH} levels deep")
        elif type(item) in _CONTAINERS:
            _push(stack, entry, budget, fail)
        else:
            raise fail(
                f"{_path(entry)} is a {type(item).__module__}.{type(item).__qualname__}; "
                "checkpoints hold only tensors, numbers, strings, None and dicts/lists/tuples "
                "of them (convert NumPy arrays with torch.from_numpy, objects to dicts)"
            )


_Entry = tuple[Any, Any, Any, int]
_KEY = object()
_CONTAINERS = (dict, OrderedDict, list, tuple, set, frozenset, torch.Size)


def _path(entry: _Entry) -> str:
    keys: list[str] = []
    node: _Entry | None = entry
    while node is not None:
        _, parent, key, _ = node
        keys.append(key if parent is None else " (a key)" if key is _KEY else f"[{short(key)}]")
        node = parent
    return "".join(reversed(keys))


def _push(
    stack: list[_Entry], entry: _Entry, budget: Budget, fail: Callable[[str], CatsegError]
) -> None:
    item, _, _, depth = entry
    if len(item) > budget.items:
        raise fail(_too_many(_path(entry)))
    if isinstance(item, dict):
        for key, sub in item.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise fail(f"{_path(entry)} has a key of type {type(key).__name__}")
            stack.append((key, entry, _KEY, depth + 1))
            stack.append((sub, entry, key, depth + 1))
    else:
        stack.extend((sub, entry, i, depth + 1) for i, sub in enumerate(item))


def _too_many(where: str) -> str:
    return (
        f"{where} holds more than {MAX_ITEMS} items (counting shared references each time "
        "they appear); store large arrays as tensors"
    )


# --- torch.save archives ---------------------------------------------------------

ZIP_MAGIC = b"PK\x03\x04"
MAX_RECORDS = 50_000
"""Most entries (one per tensor storage) the archive of a checkpoint or weights may hold."""
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"


def _record_count(path: Path, size: int) -> int | None:
    """Entries declared by the zip's end-of-central-directory record (None if unreadable)."""
    with path.open("rb") as handle:
        tail_start = max(0, size - (1 << 16) - 22)
        handle.seek(tail_start)
        tail = handle.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) < at + 22:
            return None
        count = int.from_bytes(tail[at + 10 : at + 12], "little")
        locator = tail.rfind(_EOCD64_LOCATOR, 0, at)
        if count != 0xFFFF or locator < 0:
            return count
        handle.seek(int.from_bytes(tail[locator + 8 : locator + 16], "little"))
        record = handle.read(56)
        return int.from_bytes(record[32:40], "little") if len(record) == 56 else None


def check_archive(path: Path) -> None:
    """Refuse, before unpickling, ``torch.save`` archives whose reading could not be bounded.

    Not a zip archive, too many entries, compressed entries (``torch.save`` never
    compresses; a compressed entry can expand a small file into gigabytes), entries that
    declare more bytes than the file has, pickled metadata over :data:`MAX_METADATA_BYTES`
    and pickles that :func:`pickle_problem` refuses.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes), not a catseg checkpoint")
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a catseg checkpoint: it is not a torch.save zip archive "
            f"(it starts with bytes {head!r})"
        )
    size = path.stat().st_size
    count = _record_count(path, size)
    if count is not None and count > MAX_RECORDS:
        raise CheckpointError(
            f"{path} is not a catseg checkpoint: its archive declares {count} entries "
            f"(at most {MAX_RECORDS})"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = _check_entries(path, archive.infolist(), size)
            problem = pickle_problem(archive.read(pickled)) if pickled else None
    except CheckpointError:  # from _check_entries (a ValueError)
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt: {err}") from None
    if problem is not None:
        raise CheckpointError(f"{path} cannot be loaded safely: {problem}")


def _check_entries(path: Path, infos: list[zipfile.ZipInfo], size: int) -> zipfile.ZipInfo | None:
    declared = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"{path} is not a catseg checkpoint: archive entry {short(info.filename)} is "
                "compressed (torch.save writes uncompressed archives)"
            )
        declared += info.file_size
        if info.filename.endswith("/data.pkl") and info.file_size > MAX_METADATA_BYTES:
            raise CheckpointError(
                f"{path} holds {info.file_size} bytes of pickled metadata, more than the "
                f"{MAX_METADATA_BYTES} a catseg checkpoint may (the weights are stored "
                "beside it and do not count)"
            )
    if declared > size:
        raise CheckpointError(
            f"{path} is truncated or corrupt: its entries declare {declared} bytes but the "
            f"file has {size}"
        )
    return next((i for i in infos if i.filename.endswith("data.pkl")), None)


# --- JSON -------------------------------------------------------------------------

MAX_JSON_BYTES = 1 << 20
"""Largest ``config.json`` a model folder may hold (catseg writes 1-20 kB)."""


class _RefusedJSONError(CatsegError, ValueError):
    """Raised by the ``json.loads`` hooks; ``parse_json`` turns it into ``fail(message)``."""


def _finite(text: str) -> float:
    if not math.isfinite(value := float(text)):  # NaN, Infinity, 1e999
        raise _RefusedJSONError(f"{text[:40]} is not a finite number")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _RefusedJSONError(f"the key {short(key)} appears twice in one object")
        data[key] = value
    return data


def parse_json(text: bytes, where: str, fail: Callable[[str], CatsegError]) -> Any:
    """Parse JSON bytes and check the result is plain data within catseg's load budget.

    Nesting deeper than :data:`MAX_DEPTH`, more items than the
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
            parse_constant=_finite,
            parse_float=_finite,
            object_pairs_hook=_no_duplicates,
        )
    except RecursionError:
        raise fail(f"{where} is not valid JSON: it is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, the hooks' error
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise fail(f"{where} is not valid JSON: {message}") from None
    walk_plain(data, where, Budget(), fail)
    return data


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
