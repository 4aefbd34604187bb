"""The one image decode: untrusted bytes to upright pixels, every failure a DataError.

:func:`decode` is the only place that hands a file or bytes to Pillow. A missing file
raises :class:`~catseg.errors.MissingFileError`; an empty, truncated, corrupt (a broken
EXIF block included) or non-image file, or one larger than Pillow's decompression-bomb
guard (``PIL.Image.MAX_IMAGE_PIXELS``), raises :class:`~catseg.errors.DataError` naming
it, whatever the decoder raised. :func:`to_array` then copies the decoded pixels once,
in strips, into a uint8 ``(H, W, C)`` array with the EXIF orientation applied on the
way, so a photo is held at most twice between the file and the tensor.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "gray.png"
    >>> Image.new("L", (4, 3), 7).save(path)
    >>> decoded = decode(path, str(path))
    >>> decoded.image.mode, decoded.size, to_array(to_rgb(decoded.image)).shape
    ('L', (3, 4), (3, 4, 3))
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from catseg._validation import check_optional_size, check_path
from catseg.errors import ConfigError, DataError, MissingFileError

_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
TURNED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
# An upright array seen as the stored pixels, per EXIF orientation (the inverse of
# PIL.ImageOps.exif_transpose): writing the stored pixels into it turns them upright.
_STORED_VIEW: dict[int, Callable[[npt.NDArray[Any]], npt.NDArray[Any]]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}
_STRIP_BYTES = 1 << 20


class Decoded(NamedTuple):
    """A loaded image in its stored mode and orientation, and what the file said.

    ``size`` is the full ``(height, width)`` as displayed (after the orientation, before
    JPEG draft reduction); ``deep`` is ``True`` when the file stores more than 8 bits
    per sample in a mode Pillow narrows to 8 bits (16-bit RGB, RGBA or grey+alpha PNGs).
    """

    image: Image.Image
    orientation: int
    size: tuple[int, int]
    format: str
    deep: bool


def _orientation(exif: Image.Exif) -> int:
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _load(opened: Image.Image, name: str, draft_size: tuple[int, int] | None) -> Decoded:
    width, height = opened.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise DataError(
            f"{name} is refused by Pillow's decompression-bomb guard ({width}x{height} = "
            f"{width * height} pixels > PIL.Image.MAX_IMAGE_PIXELS = {limit}); raise that "
            "limit yourself if the file is trusted"
        )
    deep = False  # read before loading: the tile list goes then
    for tile in getattr(opened, "tile", None) or ():
        raw = tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
        deep |= isinstance(raw, str) and ";16" in raw and not opened.mode.startswith("I")
    orientation = None  # JPEG: EXIF bytes before the pixels; PNG: an eXIf chunk after them
    raw_exif = opened.info.get("exif")
    if isinstance(raw_exif, bytes) and raw_exif:
        try:
            exif = Image.Exif()
            exif.load(raw_exif)
            orientation = _orientation(exif)
        except Exception as err:  # SyntaxError, struct.error ... from a broken TIFF header
            raise DataError(
                f"{name} has a corrupt EXIF block ({type(err).__name__}: {err}), so its "
                "orientation is unknown; re-save the photo without the broken metadata"
            ) from err
    if draft_size is not None and opened.format == "JPEG":
        want = draft_size[::-1] if orientation in TURNED else draft_size
        for scale in (4, 2):  # whole blocks only: a partial one would shift the pixels
            whole = width % scale == height % scale == 0
            if whole and height // scale >= want[0] and width // scale >= want[1]:
                opened.draft(opened.mode, (width // scale, height // scale))
                break
    opened.load()
    if orientation is None:
        orientation = _orientation(opened.getexif())
    size = (width, height) if orientation in TURNED else (height, width)
    return Decoded(opened, orientation, size, str(opened.format), deep)


def decode(source: Path | bytes, name: str, draft_size: tuple[int, int] | None = None) -> Decoded:
    """Decode a file or encoded bytes, in their stored mode and orientation.

    Args:
        source: The file, or the encoded image.
        name: What to call it in error messages (a path, ``"a.json: imageData"`` ...).
        draft_size: ``(height, width)`` the caller will resize to: a JPEG is then decoded
            at 1/4 or else 1/2 scale if still at least that size (upright) and made of
            whole blocks (the scale divides its width and height). 1/8 scale, only each
            block's mean, is never used: too coarse for the resize that follows.

    Returns:
        The :class:`Decoded` image and facts about the file.

    Raises:
        MissingFileError: When the file does not exist.
        DataError: When it is not a regular file, is empty, not an image, truncated or
            corrupt, has a corrupt EXIF block or is too large for the bomb guard.
    """
    if isinstance(source, bytes):
        if not source:
            raise DataError(f"{name} is empty (0 bytes); expected an image")
        stream: BinaryIO = io.BytesIO(source)
    else:
        try:  # permissions, NUL bytes, too long names ... are a DataError
            exists, is_file = source.exists(), source.is_file()
            size = source.stat().st_size if is_file else 0
            stream = source.open("rb") if size else io.BytesIO()
        except (OSError, ValueError) as err:
            raise DataError(f"{source} cannot be read: {err}") from err
        if not exists:
            raise MissingFileError(f"file not found: {source}")
        if not is_file:
            raise DataError(f"{source} is not a regular file (expected an image file)")
        if not size:
            raise DataError(f"{source} is empty (0 bytes); expected an image file")
    try:
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; the warning may
        # surface as an exception (filters set to "error"), else _load refuses the file.
        with stream:  # the loaded image needs the file no more
            return _load(Image.open(stream), name, draft_size)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{name} is refused by Pillow's decompression-bomb guard ({err}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS yourself if the file is trusted"
        ) from err
    except UnidentifiedImageError as err:
        raise DataError(f"{name} is not an image file Pillow can read") from err
    except Exception as err:  # any failure inside a decoder plugin
        raise DataError(f"{name} is truncated or corrupt ({type(err).__name__}: {err})") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB copy of an in-memory image, in its stored orientation.

    ``L``, ``1``, ``P``, ``CMYK`` and ``YCbCr`` go through Pillow's conversion; the alpha
    of ``RGBA``, ``LA``, ``PA`` and transparent palette images is dropped; 16-bit
    grayscale (``I;16*`` and ``I``, as Pillow opens 16-bit PNGs) becomes
    ``round(v / 257)``. The EXIF orientation is **not** applied, so a mask predicted for
    the result lines up with ``image`` (files read by :func:`open_image` come out
    upright). The input is never modified.

    Raises:
        ConfigError: When ``image`` is not a PIL image.
        DataError: When the mode has no RGB conversion or is 32-bit float (``F``, no
            standard 8-bit scale), or a lazily opened image fails to decode.

    Examples:
        >>> from PIL import Image
        >>> out = to_rgb(Image.new("RGBA", (2, 2), (10, 20, 30, 0)))
        >>> out.mode, out.getpixel((0, 0))
        ('RGB', (10, 20, 30))
        >>> to_rgb(Image.new("I;16", (1, 1), 65535)).getpixel((0, 0))
        (255, 255, 255)
    """
    if not isinstance(image, Image.Image):
        raise ConfigError(f"image must be a PIL image, got {type(image).__qualname__}")
    return rgb(image, copy=True)


def rgb(image: Image.Image, *, copy: bool = False) -> Image.Image:
    """:func:`to_rgb`, returning ``image`` itself when it is RGB and ``copy`` is false."""
    try:
        mode = image.mode
        if mode == "RGB":
            return image.copy() if copy else image
        if mode in _SIXTEEN_BIT:
            values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
            return Image.fromarray(((values + 128) // 257).astype(np.uint8)).convert("RGB")
        if mode == "F":
            values = np.asarray(image)
            low, high = (float(values.min()), float(values.max())) if values.size else (0, 0)
            raise DataError(
                f"a 32-bit float image (mode 'F', values in [{low:g}, {high:g}]) has no "
                "standard 0..255 scale, and Pillow's conversion would clip it; scale it to "
                "8 bit yourself, e.g. Image.fromarray((values * 255).round().astype('uint8'))"
            )
        if mode == "P" and "transparency" in image.info:
            return image.convert("RGBA").convert("RGB")
        return image.convert("RGB")
    except DataError:
        raise
    except Exception as err:  # a lazily opened image decodes here: any decoder failure
        raise DataError(
            f"cannot read an image of mode {image.mode!r} ({type(err).__name__}: {err}); "
            "expected RGB, RGBA, L, LA, P, 1, CMYK, YCbCr or 16-bit grayscale"
        ) from err


def upright(array: npt.NDArray[Any], orientation: int) -> npt.NDArray[Any]:
    """A new ``(H, W, ...)`` array of stored pixels turned by an EXIF orientation.

    Examples:
        >>> import numpy as np
        >>> upright(np.array([[1, 2, 3]]), 6).tolist()  # turned 90 degrees clockwise
        [[1], [2], [3]]
    """
    height, width = array.shape[:2]
    shape = (width, height) if orientation in TURNED else (height, width)
    out = np.empty((*shape, *array.shape[2:]), array.dtype)
    _STORED_VIEW[orientation](out)[...] = array
    return out


def to_array(image: Image.Image, orientation: int = 1) -> npt.NDArray[np.uint8]:
    """Copy an ``RGB`` or ``L`` image once into a new upright ``(H, W, C)`` uint8 array.

    Examples:
        >>> from PIL import Image
        >>> to_array(Image.new("RGB", (3, 1), (1, 2, 3)), 8).shape
        (3, 1, 3)
    """
    width, height = image.size
    bands = len(image.getbands())
    shape = (width, height) if orientation in TURNED else (height, width)
    out = np.empty((*shape, bands), np.uint8)
    stored = _STORED_VIEW[orientation](out)
    step = max(1, _STRIP_BYTES // max(4 * width, 1))
    for top in range(0, height, step):  # strips: Pillow's tobytes holds two copies at once
        strip = np.asarray(image.crop((0, top, width, min(top + step, height))))
        stored[top : top + strip.shape[0]] = strip.reshape(strip.shape[0], width, bands)
    return out


def read_rgb(
    source: Path | bytes, name: str, draft_size: tuple[int, int] | None = None
) -> tuple[Image.Image, Decoded]:
    """Decode as RGB: upright for a file, as stored for bytes (labelme's ``imageData``)."""
    decoded = decode(source, name, draft_size)
    try:
        image = rgb(decoded.image)
    except DataError as err:
        raise DataError(f"{name}: {err}") from err
    if decoded.orientation != 1 and not isinstance(source, bytes):
        image = Image.fromarray(to_array(image, decoded.orientation))
    return image, decoded


def open_image(
    path: str | os.PathLike[str], *, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Read an image file as an upright RGB Pillow image.

    Args:
        path: The image file (any format Pillow reads).
        draft_size: Optional ``(height, width)`` the caller will resize to: a JPEG is then
            decoded at 1/4 or else 1/2 scale if still at least that size and made of
            whole blocks, several times faster and smaller. Other formats ignore it.

    Returns:
        A new ``"RGB"`` image with the EXIF orientation applied (modes converted as by
        :func:`to_rgb`).

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: When the file is empty, not an image, truncated or corrupt (a broken
            EXIF block included), too large for Pillow's decompression-bomb guard, or of
            an unconvertible mode (the file is named).
        ConfigError: When ``draft_size`` is not two positive ints.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (800, 600), (200, 30, 30)).save(path)
        >>> open_image(path).size, open_image(path, draft_size=(150, 200)).size
        ((800, 600), (200, 150))
    """
    draft = check_optional_size("draft_size", draft_size)
    return read_rgb(check_path("path", path), str(path), draft)[0]
