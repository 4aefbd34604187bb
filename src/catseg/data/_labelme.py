"""labelme files: label lists, the JSON document, its image, shape rasterisation.

The rules are those of :mod:`catseg.data.labelme`; every file is treated as untrusted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from catseg._bounds import short
from catseg.data._io import decode, read_rgb
from catseg.data._samples import read_lines
from catseg.errors import ConfigError, DataError, LabelmeError, MissingFileError

#: The labelme label whose pixels become 255 ("ignore").
IGNORE_LABEL = "__ignore__"
# How far (pixels) outside the image a point may lie; beyond, Pillow's rasteriser
# overflows (shapes silently vanish) or stalls (huge circles), so the file is refused.
_MARGIN = 100_000
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
        labels: A sequence of names, or the path of a ``labels.txt`` (UTF-8, one name per
            line, blank lines skipped). An optional leading ``__ignore__`` is dropped;
            the next entry must be ``_background_``.

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
        names, source = read_lines(path), str(path)
    else:
        names, source = list(labels) if isinstance(labels, Sequence) else [labels], "labels"
        if not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f"labels must be non-empty strings, got {short(names)}")
    names = names[1:] if names[:1] == [IGNORE_LABEL] else names
    if names[:1] != ["_background_"]:
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


def read_document(path: Path) -> dict[str, Any]:
    """The parsed JSON object of a labelme file, with a ``shapes`` list."""
    if not path.is_file():
        raise MissingFileError(f"labelme file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as err:  # bad UTF-8, bad JSON, integers past Python's digit limit
        raise LabelmeError(f"{path} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise LabelmeError(f"{path} is nested too deeply to be a labelme file") from err
    except OSError as err:
        raise LabelmeError(f"{path} cannot be read: {err}") from err
    if not isinstance(doc, dict):
        raise LabelmeError(
            f"{path} is not a labelme file (expected an object with 'shapes', "
            f"got a JSON {type(doc).__name__})"
        )
    if not isinstance(doc.get("shapes", []), list):
        raise LabelmeError(f"{path}: shapes must be a list, got {type(doc.get('shapes')).__name__}")
    return doc


def _base64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as err:
        raise LabelmeError(f"{what} is not readable base64") from err


def load_image(doc: dict[str, Any], path: Path, image_root: Path) -> Image.Image:
    """The RGB image of a document: ``imageData`` as stored, else ``imagePath`` upright."""
    data = doc.get("imageData")
    if data is not None and not isinstance(data, str):
        raise LabelmeError(
            f"{path}: imageData must be a base64 string or null, got {type(data).__name__}"
        )
    if data:
        try:  # as stored: labelme applies EXIF only to image files
            return read_rgb(_base64(data, f"{path}: imageData"), f"{path}: imageData")[0]
        except DataError as err:
            raise LabelmeError(str(err)) from err
    image_path = doc.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise LabelmeError(f"{path}: imagePath must be a string, got {short(image_path)}")
    if not image_path:
        raise LabelmeError(f"{path} has neither imageData nor imagePath; cannot find the image")
    shown = short(image_path)
    try:
        resolved = (path.parent / image_path.replace("\\", "/")).resolve()
        root = image_root.resolve()
        inside = resolved.is_relative_to(root)
        found = inside and resolved.is_file()
    except (OSError, ValueError, RuntimeError) as err:  # NUL bytes, symlink loops, long names
        reason = getattr(err, "strerror", None) or err  # an OSError's names the path again
        raise LabelmeError(f"{path}: imagePath {shown} cannot be resolved: {reason}") from err
    if not inside:
        raise LabelmeError(
            f"{path}: imagePath {shown} resolves to a file outside {root}; "
            "images are read only inside the labelme folder unless you opt in with "
            "image_root= (e.g. the parent folder of a sibling images/ folder)"
        )
    if not found:
        raise MissingFileError(f"{path}: imagePath {shown} not found at {resolved}")
    return read_rgb(resolved, str(resolved))[0]


def json_files(folder: Path) -> list[Path]:
    """The visible ``.json`` files of ``folder``, sorted; ids differing only in case refused."""
    if not folder.is_dir():
        raise MissingFileError(f"labelme folder not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".json" and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"{folder} holds no labelme .json files")
    seen: dict[str, Path] = {}
    for file in files:
        other = seen.setdefault(file.stem.casefold(), file)
        if other is not file:
            raise DataError(
                f"{other} and {file} give ids that differ only in case "
                f"({other.stem!r}, {file.stem!r}); their images and masks would overwrite "
                "each other on case-insensitive file systems and in the split files; rename one"
            )
    return files


def _coordinate(value: object, where: str, extent: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabelmeError(f"{where} must be a JSON number, got {value!r}")
    try:
        number = float(value)
    except OverflowError as err:  # an integer too large for a float
        bits = int(value).bit_length()
        raise LabelmeError(f"{where} is an integer of {bits} bits, out of range") from err
    if not math.isfinite(number):
        raise LabelmeError(f"{where} is not finite: {value!r}")
    if not -_MARGIN <= number <= extent + _MARGIN:
        raise LabelmeError(
            f"{where} = {number!r} lies more than {_MARGIN} pixels outside the image; "
            "Pillow cannot draw it reliably"
        )
    return number


def _bitmap(shape: dict[str, Any], where: str) -> npt.NDArray[np.bool_]:
    data = shape.get("mask")
    if not isinstance(data, str):
        raise LabelmeError(f"{where} has no base64 'mask' bitmap")
    try:
        array = np.asarray(decode(_base64(data, f"{where} bitmap"), f"{where} bitmap").image)
    except DataError as err:
        raise LabelmeError(f"{err} (an unreadable bitmap)") from err
    inside = array != 0
    return np.asarray(inside.any(axis=2) if inside.ndim == 3 else inside, dtype=np.bool_)


def _shapes(
    doc: dict[str, Any], size: tuple[int, int], names: list[str], path: Path
) -> Iterator[tuple[str, str, list[tuple[float, ...]], npt.NDArray[np.bool_] | None]]:
    """Check and yield ``(label, kind, points, bitmap)`` per shape, in JSON order."""
    known = [IGNORE_LABEL, *names]
    for index, shape in enumerate(doc.get("shapes", [])):
        if not isinstance(shape, dict):
            raise LabelmeError(f"{path}: shape {index} is not an object")
        label = shape.get("label")
        if not isinstance(label, str):
            raise LabelmeError(
                f"{path}: shape {index} has label {label!r}; a label must be a string"
            )
        if label not in known:
            raise LabelmeError(
                f"{path}: shape {index} has label {label!r}, which is not in the label list {known}"
            )
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in _POINT_COUNTS:
            raise LabelmeError(
                f"{path}: shape {index} has unknown shape_type {kind!r}; "
                f"expected one of {sorted(_POINT_COUNTS)}"
            )
        where = f"{path}: shape {index} ({kind})"
        raw = shape.get("points")
        if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
            raise LabelmeError(f"{where} has malformed points {short(raw)}; expected [[x, y], ...]")
        points = [
            tuple(_coordinate(v, f"{where}: points[{i}][{k}]", size[k]) for k, v in enumerate(p))
            for i, p in enumerate(raw)
        ]
        low, high = _POINT_COUNTS[kind]
        if len(points) < low or (high is not None and len(points) > high):
            wanted = f"exactly {low}" if low == high else f"at least {low}"
            raise LabelmeError(f"{where} has {len(points)} point(s); {kind} needs {wanted}")
        yield label, kind, points, _bitmap(shape, where) if kind == "mask" else None


def _paint(
    layer: Image.Image,
    kind: str,
    points: list[tuple[float, ...]],
    bitmap: npt.NDArray[np.bool_] | None,
    value: int,
) -> None:
    draw = ImageDraw.Draw(layer)  # draws in place
    if kind in ("polygon", "oriented_rectangle"):
        draw.polygon(points, fill=value, outline=value)
    elif kind == "rectangle":
        (xa, ya), (xb, yb) = points
        box = (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
        draw.rectangle(box, fill=value, outline=value)
    elif kind in ("circle", "point"):  # a point is a disc of radius 5
        (cx, cy) = points[0]
        r = math.hypot(points[1][0] - cx, points[1][1] - cy) if kind == "circle" else 5
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=value, outline=value)
    elif kind in ("line", "linestrip"):
        draw.line(points, fill=value, width=10, joint="curve" if kind == "linestrip" else None)
    elif bitmap is not None:  # mask: the bitmap's top-left at the rounded first corner
        (x1, y1), (x2, y2) = points
        left, top = round(x1), round(y1)
        if all(float(v).is_integer() for v in (x1, y1, x2, y2)):
            bitmap = bitmap[: max(round(y2) - top + 1, 0), : max(round(x2) - left + 1, 0)]
        if bitmap.size:  # paste clips to the image
            layer.paste(value, (left, top), Image.fromarray(bitmap))


def rasterise(
    doc: dict[str, Any],
    size: tuple[int, int],
    names: list[str],
    path: Path,
    mode: Literal["multiclass", "multilabel"],
) -> npt.NDArray[np.uint8]:
    """Draw the shapes of a document: an ``(H, W)`` id map or ``(K, H, W)`` label layers.

    Multiclass: each shape writes its class id (255 for ``__ignore__``), later shapes
    over earlier ones. Multilabel: layer ``k`` belongs to ``names[k + 1]``; a shape of that
    label writes 1 into it only, ``__ignore__`` writes 255 and ``_background_`` 0 into
    every layer, later shapes over earlier ones within a layer.

    Examples:
        >>> from pathlib import Path
        >>> box = {"label": "cat", "points": [[0, 0], [1, 1]], "shape_type": "rectangle"}
        >>> dot = {"label": "dog", "points": [[1, 0], [2, 0]], "shape_type": "rectangle"}
        >>> names, doc = ["_background_", "cat", "dog"], {"shapes": [box, dot]}
        >>> rasterise(doc, (3, 2), names, Path("x.json"), "multiclass").tolist()
        [[1, 2, 2], [1, 1, 0]]
        >>> rasterise(doc, (3, 2), names, Path("x.json"), "multilabel").tolist()
        [[[1, 1, 0], [1, 1, 0]], [[0, 1, 1], [0, 0, 0]]]
    """
    multilabel = mode == "multilabel"
    layers = [Image.new("L", size, 0) for _ in (names[1:] if multilabel else names[:1])]
    for label, kind, points, bitmap in _shapes(doc, size, names, path):
        if not multilabel:
            targets = [(0, 255 if label == IGNORE_LABEL else names.index(label))]
        elif label in names[1:]:
            targets = [(names.index(label) - 1, 1)]
        else:  # __ignore__ or _background_: every layer
            targets = [(k, 255 if label == IGNORE_LABEL else 0) for k in range(len(layers))]
        for k, value in targets:
            _paint(layers[k], kind, points, bitmap, value)
    arrays = [np.array(layer, dtype=np.uint8) for layer in layers]
    return np.stack(arrays) if multilabel else arrays[0]
