"""The one place that hands untrusted bytes to Pillow: every failure becomes a DataError.

Decoding a hostile or damaged file can fail in many ways inside Pillow's plugins
(``OSError``, ``SyntaxError`` from a broken EXIF block, ``struct.error``,
``ValueError``, ``ZeroDivisionError``, ``IndexError``, ``EOFError``, decompression-bomb
errors ...). :func:`decode_stream` catches all of them (not ``KeyboardInterrupt`` and
other ``BaseException`` subclasses) and raises one :class:`~catseg.errors.DataError` whose
message starts with the file's name, so ``on_error="skip"`` and ``except DataError``
always work.

Examples:
    >>> import io
    >>> from PIL import Image
    >>> from catseg.data._decode import decode_stream
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (3, 2)).save(buffer, format="PNG")
    >>> decoded = decode_stream(io.BytesIO(buffer.getvalue()), "x.png")
    >>> decoded.image.size, decoded.orientation, decoded.format
    ((3, 2), 1, 'PNG')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from catseg.errors import DataError, MissingFileError

__all__ = [
    "TRANSPOSING_ORIENTATIONS",
    "Decoded",
    "check_file",
    "decode_file",
    "decode_stream",
    "orientation_method",
]

_EXIF_ORIENTATION_TAG = 0x0112
#: EXIF orientations 5-8 turn the picture by 90 degrees: stored width and height swap.
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Pillow's transpose that shows the stored pixels upright, per EXIF orientation
# (the table of PIL.ImageOps.exif_transpose).
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Decoded:
    """A fully loaded image and what was learnt about the file while decoding it.

    Attributes:
        image: The decoded image (a new object, detached from the file).
        orientation: The EXIF orientation (1..8; 1 when absent or invalid).
        size: Full-resolution ``(height, width)`` as displayed (after the orientation),
            before any JPEG draft reduction.
        format: Pillow's name of the file format (``"PNG"``, ``"JPEG"`` ...).
        deep: ``True`` when the file stores more than 8 bits per sample in a mode that
            Pillow narrows to 8 bits on load (16-bit RGB, RGBA or grey+alpha PNGs).
    """

    image: Image.Image
    orientation: int
    size: tuple[int, int]
    format: str
    deep: bool


def orientation_method(orientation: int) -> Image.Transpose | None:
    """The transpose that turns stored pixels upright for an EXIF orientation (``None``: 1).

    Examples:
        >>> orientation_method(6)
        <Transpose.ROTATE_270: 4>
        >>> orientation_method(1) is None
        True
    """
    return _UPRIGHT.get(orientation)


def check_file(path: Path) -> None:
    """Refuse a missing, special or empty file before any decoding.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: When it is not a regular file, is empty or cannot be inspected.
    """
    try:
        exists = path.exists()
        is_file = path.is_file()
        size = path.stat().st_size if is_file else 0
    except (OSError, ValueError) as err:  # permissions, NUL bytes, too long names ...
        raise DataError(f"{path} cannot be read: {err}") from err
    if not exists:
        raise MissingFileError(f"file not found: {path}")
    if not is_file:
        raise DataError(f"{path} is not a regular file (expected an image file)")
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes); expected an image file")


def _raw_orientation(opened: Image.Image, name: str) -> int | None:
    """The orientation from EXIF bytes found at open time (JPEG); a corrupt block is refused.

    ``None`` when the file carried no EXIF bytes before decoding (PNG keeps its eXIf chunk
    after the pixels, so it is read once the image is loaded).
    """
    raw = opened.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)  # parsed here, not lazily by whoever reads the image later
        return _valid(exif.get(_EXIF_ORIENTATION_TAG, 1))
    except Exception as err:  # SyntaxError, struct.error ... from a broken TIFF header
        raise DataError(
            f"{name} has a corrupt EXIF block ({type(err).__name__}: {err}), so its "
            "orientation is unknown; re-save the photo without the broken metadata"
        ) from err


def _valid(value: object) -> int:
    return value if isinstance(value, int) and value in range(1, 9) else 1


def _is_deep(opened: Image.Image) -> bool:
    for tile in getattr(opened, "tile", None) or ():  # ImageFile only
        args = tile.args
        rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) else ""
        if isinstance(rawmode, str) and ";16" in rawmode and not opened.mode.startswith("I"):
            return True
    return False


def _check_pixels(name: str, width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise DataError(
            f"{name} is refused by Pillow's decompression-bomb guard "
            f"({width}x{height} = {width * height} pixels "
            f"> PIL.Image.MAX_IMAGE_PIXELS = {limit}); raise that limit yourself if "
            "the file is trusted"
        )


def _load(
    opened: Image.Image, name: str, draft_size: tuple[int, int] | None, upright: bool
) -> Decoded:
    stored_width, stored_height = opened.size
    _check_pixels(name, stored_width, stored_height)
    deep = _is_deep(opened)  # before the pixels are loaded (the tile list goes then)
    early = _raw_orientation(opened, name)
    if draft_size is not None and opened.format == "JPEG":
        height, width = draft_size
        if early in TRANSPOSING_ORIENTATIONS:
            height, width = width, height
        opened.draft(opened.mode, (width, height))
    opened.load()
    orientation = (
        early if early is not None else _valid(opened.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    )
    transposed = orientation in TRANSPOSING_ORIENTATIONS
    size = (stored_width, stored_height) if transposed else (stored_height, stored_width)
    image: Image.Image = opened.copy()
    if upright and orientation != 1:
        image = ImageOps.exif_transpose(image, in_place=False)
    return Decoded(image, orientation, (int(size[0]), int(size[1])), str(opened.format), deep)


def decode_stream(
    stream: BinaryIO,
    name: str,
    draft_size: tuple[int, int] | None = None,
    *,
    upright: bool = False,
) -> Decoded:
    """Decode an open binary stream; every failure is a DataError starting with ``name``.

    Args:
        stream: The encoded image.
        name: What to call it in error messages (a path, ``"a.json: imageData"`` ...).
        draft_size: ``(height, width)`` the caller will resize to (JPEG draft decoding).
        upright: Apply the EXIF orientation to the returned image.

    Returns:
        The :class:`Decoded` image and facts about the file.

    Raises:
        DataError: When the data is not an image, is truncated or corrupt, has a corrupt
            EXIF block (its orientation would be unknown), or is larger than
            ``PIL.Image.MAX_IMAGE_PIXELS``.
    """
    try:
        # Pillow's guard warns above MAX_IMAGE_PIXELS and raises above twice that. The
        # warning may surface as an exception (warnings filtered to "error"); otherwise
        # _check_pixels refuses the file before decoding. No global warning filter is
        # touched, so this is safe to call from several threads.
        with Image.open(stream) as opened:
            return _load(opened, name, draft_size, upright)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{name} is refused by Pillow's decompression-bomb guard ({err}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS yourself if the file is trusted"
        ) from err
    except UnidentifiedImageError as err:
        raise DataError(f"{name} is not an image file Pillow can read") from err
    except Exception as err:  # any failure inside a decoder plugin: see the module notes
        raise DataError(f"{name} is truncated or corrupt ({type(err).__name__}: {err})") from err


def decode_file(
    path: str | os.PathLike[str],
    draft_size: tuple[int, int] | None = None,
    *,
    upright: bool = False,
) -> Decoded:
    """:func:`decode_stream` on a file, after :func:`check_file`.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: As for :func:`check_file` and :func:`decode_stream`.
    """
    file = Path(path)
    check_file(file)
    try:
        handle = file.open("rb")
    except OSError as err:
        raise DataError(f"{file} cannot be read: {err}") from err
    with handle:
        return decode_stream(handle, str(file), draft_size, upright=upright)
