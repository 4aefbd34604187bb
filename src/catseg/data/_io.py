"""Reading images and masks from disk with errors that name the file.

Everything that touches Pillow for decoding goes through :mod:`catseg.data._decode`,
so the dataset classes, the labelme converter and the predictor share one set of rules:

* images read from a file come back as upright RGB: the EXIF orientation is applied
  (what a photo viewer shows); grayscale, palette, RGBA/LA (alpha dropped), CMYK,
  1-bit and 16-bit (scaled to 8 bit) inputs converted. An image already in memory
  (a PIL image given to :func:`to_rgb`) keeps its stored orientation, so outputs
  computed from it have its ``size``;
* masks come back as ``(H, W)`` uint8 label maps on their stored pixel grid, exactly
  or not at all (:func:`read_mask`);
* a missing file raises :class:`~catseg.errors.MissingFileError`; an empty,
  truncated, corrupt (a broken EXIF block included) or non-image file, or an image
  larger than Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``),
  raises :class:`~catseg.errors.DataError` naming the file, whatever exception the
  decoder itself raised.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from catseg.data._io import open_image, read_mask
    >>> tmp = Path(tempfile.mkdtemp())
    >>> Image.new("L", (4, 3), 7).save(tmp / "gray.png")
    >>> image = open_image(tmp / "gray.png")
    >>> image.mode, image.size
    ('RGB', (4, 3))
    >>> read_mask(tmp / "gray.png").shape
    (3, 4)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image

from catseg._validation import check_optional_size
from catseg.data._decode import decode_file, decode_stream
from catseg.data._masks import read_mask
from catseg.errors import DataError

__all__ = [
    "LoadedImage",
    "decode_bytes",
    "decode_image_bytes",
    "load_rgb",
    "open_image",
    "read_mask",
    "to_rgb",
]

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class LoadedImage(NamedTuple):
    """An upright RGB image read from a file, with its full size and EXIF orientation."""

    image: Image.Image
    size: tuple[int, int]
    orientation: int


def _sixteen_bit_to_uint8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Scale a 16-bit (or 32-bit integer holding 16-bit data) image to 0..255, rounding."""
    values = np.asarray(image).astype(np.int64)
    values = np.clip(values, 0, 65535)
    return ((values + 128) // 257).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB copy of an in-memory image, in its stored orientation.

    Conversion rules by Pillow mode: ``RGB`` is copied; ``L``, ``1``, ``P``,
    ``CMYK`` and ``YCbCr`` go through Pillow's conversion; the alpha of ``RGBA``,
    ``LA``, ``PA`` and transparent palette images is dropped (colours kept as stored);
    16-bit grayscale (``I;16*`` and ``I``, as Pillow opens 16-bit PNGs) is scaled to
    8 bit with ``round(v / 257)``, so 65535 becomes 255; 32-bit float (``F``) is
    refused, since it has no standard 8-bit scale. The input is never modified.

    The EXIF orientation tag is **not** applied: the result has the pixels and the
    ``size`` of the image given, so a mask predicted for it lines up with it. Files
    read by :func:`open_image` (and the datasets) come out upright instead; to turn an
    image you opened yourself upright, call ``PIL.ImageOps.exif_transpose`` first.

    Args:
        image: A Pillow image of any mode (loaded or lazily opened).

    Returns:
        A new image in mode ``"RGB"`` of the same size.

    Raises:
        DataError: When the mode cannot be converted to RGB, is 32-bit float (``F``),
            which has no standard 8-bit scale (the message names the mode and range), or
            a lazily opened image fails to decode.

    Examples:
        >>> from PIL import Image
        >>> rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
        >>> out = to_rgb(rgba)
        >>> out.mode, out.getpixel((0, 0)), rgba.mode
        ('RGB', (10, 20, 30), 'RGBA')
        >>> to_rgb(Image.new("I;16", (1, 1), 65535)).getpixel((0, 0))
        (255, 255, 255)
    """
    try:
        return _convert(image)
    except DataError:
        raise
    except Exception as err:  # a lazily opened image decodes here: any decoder failure
        raise DataError(
            f"cannot read an image of mode {image.mode!r} ({type(err).__name__}: {err}); "
            "expected RGB, RGBA, L, LA, P, 1, CMYK, YCbCr or 16-bit grayscale"
        ) from err


def _convert(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in _SIXTEEN_BIT_MODES:
        gray = Image.fromarray(_sixteen_bit_to_uint8(image))
        return gray.convert("RGB")
    if mode == "F":
        values = np.asarray(image)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        raise DataError(
            f"a 32-bit float image (mode 'F', values in [{low:g}, {high:g}]) has no standard "
            "0..255 scale, and Pillow's conversion would clip it (values in [0, 1] become "
            "black); scale it to 8 bit yourself, e.g. Image.fromarray((values * 255)"
            ".round().astype('uint8')) for values in [0, 1]"
        )
    if mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def decode_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an image held in memory in its stored mode (e.g. a labelme mask bitmap).

    Args:
        data: The encoded image.
        name: What to call the data in error messages.

    Returns:
        A new, fully loaded image in the mode it was stored in (no conversion, no EXIF).

    Raises:
        DataError: When the bytes are empty, not an image, truncated or too large for
            the decompression-bomb guard (``name`` is named).

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("1", (3, 2), 1).save(buffer, format="PNG")
        >>> decode_bytes(buffer.getvalue(), "bitmap").mode
        '1'
    """
    if not data:
        raise DataError(f"{name} is empty (0 bytes); expected an image")
    return decode_stream(io.BytesIO(data), name).image


def decode_image_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an image held in memory (e.g. labelme's ``imageData``) as RGB, as stored.

    The same guards as :func:`open_image` apply, decompression bombs included. The
    EXIF orientation is not applied: labelme shows and rasterises ``imageData`` on its
    stored pixels (it applies the orientation only when it reads an image *file*, and
    then stores the turned pixels without the tag).

    Args:
        data: The encoded image (PNG, JPEG, ...).
        name: What to call the data in error messages, e.g. ``"a.json: imageData"``.

    Returns:
        A new RGB image.

    Raises:
        DataError: When the bytes are empty, not an image, truncated, too large for the
            decompression-bomb guard, or of an unconvertible mode (``name`` is named).

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("L", (3, 2), 9).save(buffer, format="PNG")
        >>> decode_image_bytes(buffer.getvalue(), "inline").getpixel((0, 0))
        (9, 9, 9)
    """
    image = decode_bytes(data, name)
    try:
        return to_rgb(image)
    except DataError as err:
        raise DataError(f"{name}: {err}") from err


def open_image(
    path: str | os.PathLike[str], *, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Read an image file as an upright RGB Pillow image.

    Args:
        path: The image file (any format Pillow reads).
        draft_size: Optional ``(height, width)`` the caller will resize to. For JPEG
            files the decoder then works at a reduced scale (1/2, 1/4 or 1/8) that is
            still at least this size on both sides (in upright orientation), which is
            several times faster and smaller than a full decode. Other formats ignore it.

    Returns:
        A new image in mode ``"RGB"`` with the EXIF orientation applied (see
        :func:`to_rgb` for the mode conversions).

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: When the file is empty, not an image, truncated or corrupt (a broken
            EXIF block included), larger than Pillow's decompression-bomb limit, or of an
            unconvertible mode (the message names the file), whatever the decoder raised.
        ConfigError: When ``draft_size`` is not two positive ints.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (800, 600), (200, 30, 30)).save(path)
        >>> open_image(path).size
        (800, 600)
        >>> open_image(path, draft_size=(150, 200)).size
        (200, 150)
    """
    draft = check_optional_size("draft_size", draft_size)
    return load_rgb(Path(path), draft_size=draft).image


def load_rgb(path: Path, *, draft_size: tuple[int, int] | None = None) -> LoadedImage:
    """Like :func:`open_image`, also returning the full upright size and EXIF orientation.

    The size is the one before JPEG draft reduction, used to check that a mask matches
    its image even when the image was decoded at a reduced scale; the orientation lets
    a dataset turn the mask the way the photo was turned.

    Args:
        path: The image file.
        draft_size: As for :func:`open_image` (already validated).

    Returns:
        ``(image, (height, width), orientation)``.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: As for :func:`open_image`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (640, 480)).save(path)
        >>> image, full, orientation = load_rgb(path, draft_size=(100, 100))
        >>> image.size, full, orientation
        ((160, 120), (480, 640), 1)
    """
    decoded = decode_file(path, draft_size, upright=True)
    try:
        return LoadedImage(to_rgb(decoded.image), decoded.size, decoded.orientation)
    except DataError as err:
        raise DataError(f"{path}: {err}") from err
