"""labelme label lists and shape rasterisation (the rules of :mod:`catseg.data.labelme`)."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from catseg.data._io import decode
from catseg.errors import ConfigError, DataError, LabelmeError, MissingFileError

#: The labelme label whose pixels become 255 ("ignore").
IGNORE_LABEL = "__ignore__"
#: How far (pixels) outside the image a point may lie; beyond, Pillow's rasteriser
#: overflows (shapes silently vanish) or stalls (huge circles), so the file is refused.
COORDINATE_MARGIN = 100_000
_BACKGROUND = "_background_"
_LINE_WIDTH = 10
_POINT_RADIUS = 5
_POINT_COUNTS: dict[str, tuple[int, int | None]] = {
    "polygon": (3, None),
    "oriented_rectangle": (4, 4),
    "rectangle": (2, 2),
    "circle": (2, 2),
    "line": (2, 2),
    "linestrip": (2, None),
    "point": (1, 1),
    "mask": (2, 2),
}

Labels = Sequence[str] | str | os.PathLike[str]


def read_labels(labels: Labels) -> list[str]:
    """Normalise a label list to class names in id order (``__ignore__`` removed).

    Args:
        labels: A sequence of names, or the path of a ``labels.txt`` (UTF-8, a leading
            byte-order mark is accepted; one name per line, blank lines skipped). An
            optional leading ``__ignore__`` is dropped; the next entry must be
            ``_background_``.

    Returns:
        Class names, index = class id, starting with ``"_background_"``.

    Raises:
        MissingFileError: When a labels file does not exist.
        ConfigError: When ``_background_`` is not first, a name repeats, a name is empty,
            or there are more than 255 classes.

    Examples:
        >>> read_labels(["__ignore__", "_background_", "cat"])
        ['_background_', 'cat']
    """
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise MissingFileError(f"labels file not found: {path}")
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        names = [name for name in names if name]
        source = str(path)
    else:
        names = list(labels)
        source = "labels"
        if not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f"labels must be non-empty strings, got {names!r}")
    if names and names[0] == IGNORE_LABEL:
        names = names[1:]
    if not names or names[0] != _BACKGROUND:
        raise ConfigError(
            f"{source} must start with '__ignore__' (optional) then '_background_', "
            f"got {names[:3]!r}"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{source} repeats label(s) {duplicates}")
    if IGNORE_LABEL in names:
        raise ConfigError(f"{source}: '{IGNORE_LABEL}' may only be the first entry")
    if len(names) > 255:
        raise ConfigError(f"{source} has {len(names)} classes; at most 255 fit in a uint8 mask")
    return names


def _coordinate(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabelmeError(f"{where} must be a JSON number, got {value!r}")
    try:
        number = float(value)
    except OverflowError as err:  # an integer too large for a float
        bits = int(value).bit_length()
        raise LabelmeError(f"{where} is an integer of {bits} bits, out of range") from err
    if not math.isfinite(number):
        raise LabelmeError(f"{where} is not finite: {value!r}")
    return number


def _points(
    shape: dict[str, Any], index: int, kind: str, path: Path, size: tuple[int, int]
) -> list[tuple[float, float]]:
    raw = shape.get("points")
    where = f"{path}: shape {index} ({kind})"
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
        shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
        raise LabelmeError(f"{where} has malformed points {shown}; expected [[x, y], ...]")
    points = [
        (
            _coordinate(x, f"{where}: points[{i}][0]"),
            _coordinate(y, f"{where}: points[{i}][1]"),
        )
        for i, (x, y) in enumerate(raw)
    ]
    width, height = size
    for i, (x, y) in enumerate(points):
        for axis, value, extent in ((0, x, width), (1, y, height)):
            if not -COORDINATE_MARGIN <= value <= extent + COORDINATE_MARGIN:
                raise LabelmeError(
                    f"{where}: points[{i}][{axis}] = {value!r} lies more than "
                    f"{COORDINATE_MARGIN} pixels outside the {width}x{height} image; "
                    "Pillow cannot draw it reliably"
                )
    low, high = _POINT_COUNTS[kind]
    if len(points) < low or (high is not None and len(points) > high):
        wanted = f"exactly {low}" if low == high else f"at least {low}"
        raise LabelmeError(f"{where} has {len(points)} point(s); {kind} needs {wanted}")
    return points


def _decode_bitmap(shape: dict[str, Any], index: int, path: Path) -> npt.NDArray[np.bool_]:
    data = shape.get("mask")
    if not isinstance(data, str):
        raise LabelmeError(f"{path}: shape {index} (mask) has no base64 'mask' bitmap")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as err:
        raise LabelmeError(f"{path}: shape {index} (mask) has an unreadable bitmap") from err
    try:
        array = np.asarray(decode(raw, f"{path}: shape {index} (mask) bitmap").image)
    except DataError as err:
        raise LabelmeError(f"{err} (an unreadable bitmap)") from err
    inside: npt.NDArray[np.bool_] = np.asarray(array != 0, dtype=np.bool_)
    if inside.ndim == 3:
        inside = np.asarray(inside.any(axis=2), dtype=np.bool_)
    return inside


def _paste_bitmap(
    label: npt.NDArray[np.uint8],
    bitmap: npt.NDArray[np.bool_],
    points: list[tuple[float, float]],
    value: int,
) -> None:
    (x1, y1), (x2, y2) = points
    left, top = round(x1), round(y1)
    if all(float(v).is_integer() for v in (x1, y1, x2, y2)):
        bitmap = bitmap[: max(round(y2) - top + 1, 0), : max(round(x2) - left + 1, 0)]
    height, width = label.shape
    patch_h, patch_w = bitmap.shape
    row0, col0 = max(top, 0), max(left, 0)
    row1, col1 = min(top + patch_h, height), min(left + patch_w, width)
    if row1 <= row0 or col1 <= col0:
        return
    window = bitmap[row0 - top : row1 - top, col0 - left : col1 - left]
    label[row0:row1, col0:col1][window] = value


def _draw_shape(
    canvas: ImageDraw.ImageDraw, kind: str, points: list[tuple[float, float]], value: int
) -> None:
    if kind in ("polygon", "oriented_rectangle"):
        canvas.polygon(points, fill=value, outline=value)
    elif kind == "rectangle":
        (xa, ya), (xb, yb) = points
        canvas.rectangle(
            (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)), fill=value, outline=value
        )
    elif kind == "circle":
        (cx, cy), (px, py) = points
        radius = math.hypot(px - cx, py - cy)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        canvas.ellipse(box, fill=value, outline=value)
    elif kind == "line":
        canvas.line(points, fill=value, width=_LINE_WIDTH)
    elif kind == "linestrip":
        canvas.line(points, fill=value, width=_LINE_WIDTH, joint="curve")
    else:  # point
        (cx, cy) = points[0]
        box = (cx - _POINT_RADIUS, cy - _POINT_RADIUS, cx + _POINT_RADIUS, cy + _POINT_RADIUS)
        canvas.ellipse(box, fill=value, outline=value)


@dataclass(frozen=True)
class _Shape:
    """A checked labelme shape: its label, type, points and (``mask`` type) bitmap."""

    label: str
    kind: str
    points: list[tuple[float, float]]
    bitmap: npt.NDArray[np.bool_] | None


class _Canvas:
    """One 8-bit label image that shapes are painted into (in JSON order)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.image = Image.new("L", size, 0)
        self.draw = ImageDraw.Draw(self.image)

    def paint(self, shape: _Shape, value: int) -> None:
        if shape.bitmap is None:
            _draw_shape(self.draw, shape.kind, shape.points, value)
            return
        array = np.array(self.image, dtype=np.uint8)
        _paste_bitmap(array, shape.bitmap, shape.points, value)
        self.image = Image.fromarray(array)
        self.draw = ImageDraw.Draw(self.image)

    def array(self) -> npt.NDArray[np.uint8]:
        return np.array(self.image, dtype=np.uint8)


def _shapes(
    doc: dict[str, Any], size: tuple[int, int], names: list[str], path: Path
) -> Iterator[_Shape]:
    """Check and yield the shapes of a parsed document in JSON order."""
    known = {IGNORE_LABEL, *names}
    for index, shape in enumerate(doc.get("shapes", [])):
        if not isinstance(shape, dict):
            raise LabelmeError(f"{path}: shape {index} is not an object")
        name = shape.get("label")
        if not isinstance(name, str):
            raise LabelmeError(
                f"{path}: shape {index} has label {name!r}; a label must be a string"
            )
        if name not in known:
            raise LabelmeError(
                f"{path}: shape {index} has label {name!r}, which is not in the label list "
                f"{[IGNORE_LABEL, *names]}"
            )
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in _POINT_COUNTS:
            raise LabelmeError(
                f"{path}: shape {index} has unknown shape_type {kind!r}; "
                f"expected one of {sorted(_POINT_COUNTS)}"
            )
        points = _points(shape, index, kind, path, size)
        bitmap = _decode_bitmap(shape, index, path) if kind == "mask" else None
        yield _Shape(name, kind, points, bitmap)


def rasterise(
    doc: dict[str, Any], size: tuple[int, int], names: list[str], path: Path
) -> npt.NDArray[np.uint8]:
    """Draw the shapes of a parsed labelme document into a class-index label map.

    Args:
        doc: The parsed JSON object (its ``"shapes"`` list is used).
        size: Image ``(width, height)``.
        names: Class names in id order (from :func:`read_labels`).
        path: The JSON file, named in error messages.

    Returns:
        ``(height, width)`` uint8 label map, 255 for ``__ignore__``.

    Raises:
        LabelmeError: On an unknown or non-string label, unknown shape type, wrong point
            count, malformed, non-numeric or out-of-range points (more than
            ``COORDINATE_MARGIN`` pixels outside the image) or an unreadable mask bitmap
            (shape index, field and file named).

    Examples:
        >>> from pathlib import Path
        >>> doc = {"shapes": [{"label": "cat", "points": [[0, 0], [1, 1]],
        ...                    "shape_type": "rectangle"}]}
        >>> rasterise(doc, (3, 2), ["_background_", "cat"], Path("x.json")).tolist()
        [[1, 1, 0], [1, 1, 0]]
    """
    ids = {name: index for index, name in enumerate(names)}
    ids[IGNORE_LABEL] = 255
    canvas = _Canvas(size)
    for shape in _shapes(doc, size, names, path):
        canvas.paint(shape, ids[shape.label])
    return canvas.array()


def rasterise_layers(
    doc: dict[str, Any], size: tuple[int, int], names: list[str], path: Path
) -> npt.NDArray[np.uint8]:
    """Draw the shapes of a parsed labelme document into one multi-hot layer per label.

    Layer ``k`` belongs to ``names[k + 1]`` (``_background_`` has no layer). A shape of
    that label writes 1 into layer ``k`` only; ``__ignore__`` shapes write 255 and
    ``_background_`` shapes write 0 into every layer. Within a layer, later shapes
    overwrite earlier ones, as in :func:`rasterise`.

    Args:
        doc: The parsed JSON object (its ``"shapes"`` list is used).
        size: Image ``(width, height)``.
        names: Class names in id order (from :func:`read_labels`), at least two.
        path: The JSON file, named in error messages.

    Returns:
        ``(K, height, width)`` uint8 layers with values 0, 1 and 255, ``K = len(names) - 1``.

    Raises:
        LabelmeError: As for :func:`rasterise`.

    Examples:
        >>> from pathlib import Path
        >>> box = {"label": "cat", "points": [[0, 0], [1, 1]], "shape_type": "rectangle"}
        >>> dot = {"label": "dog", "points": [[1, 0], [2, 0]], "shape_type": "rectangle"}
        >>> names = ["_background_", "cat", "dog"]
        >>> rasterise_layers({"shapes": [box, dot]}, (3, 2), names, Path("x.json")).tolist()
        [[[1, 1, 0], [1, 1, 0]], [[0, 1, 1], [0, 0, 0]]]
    """
    layers = [_Canvas(size) for _ in names[1:]]
    index = {name: k for k, name in enumerate(names[1:])}
    for shape in _shapes(doc, size, names, path):
        if shape.label in index:
            layers[index[shape.label]].paint(shape, 1)
        else:  # __ignore__ or _background_: every label
            value = 255 if shape.label == IGNORE_LABEL else 0
            for layer in layers:
                layer.paint(shape, value)
    return np.stack([layer.array() for layer in layers])
