"""Reading images and masks from disk with errors that name the file.

Everything that touches Pillow for decoding lives here, so the dataset classes,
the labelme converter and the predictor share one set of rules:

* images come back as RGB: EXIF orientation applied; grayscale, palette, RGBA/LA
  (alpha dropped), CMYK, 1-bit and 16-bit (scaled to 8 bit) inputs converted;
* masks come back as ``(H, W)`` uint8 label maps: palette PNGs are decoded **by
  index** (the palette is only for viewing), RGB-coloured masks are mapped back
  through the Pascal VOC colour map;
* a missing file raises :class:`~catseg.errors.MissingFileError`; an empty,
  truncated or non-image file, or an image larger than Pillow's decompression-bomb
  guard (``PIL.Image.MAX_IMAGE_PIXELS``), raises :class:`~catseg.errors.DataError`.

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
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from catseg.errors import ConfigError, DataError, MissingFileError

__all__ = ["decode_bytes", "decode_image_bytes", "load_rgb", "open_image", "read_mask", "to_rgb"]

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# EXIF orientations 5-8 rotate by 90 degrees: stored width/height are swapped.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MissingFileError(f"file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (expected an image file)")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); expected an image file")


def _sixteen_bit_to_uint8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Scale a 16-bit (or 32-bit integer holding 16-bit data) image to 0..255, rounding."""
    values = np.asarray(image).astype(np.int64)
    values = np.clip(values, 0, 65535)
    return ((values + 128) // 257).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB copy of ``image`` with its EXIF orientation applied.

    Conversion rules by Pillow mode: ``RGB`` is copied; ``L``, ``1``, ``P``,
    ``CMYK`` and ``YCbCr`` go through Pillow's conversion; the alpha of ``RGBA``,
    ``LA``, ``PA`` and transparent palette images is dropped (colours kept as stored);
    16-bit grayscale (``I;16*`` and ``I``, as Pillow opens 16-bit PNGs) is scaled to
    8 bit with ``round(v / 257)``, so 65535 becomes 255; 32-bit float (``F``) is
    refused, since it has no standard 8-bit scale. The input is never modified.

    Args:
        image: An open Pillow image of any mode.

    Returns:
        A new image in mode ``"RGB"``, upright according to its EXIF orientation tag.

    Raises:
        DataError: When the mode cannot be converted to RGB, or is 32-bit float (``F``),
            which has no standard 8-bit scale (the message names the mode and range).

    Examples:
        >>> from PIL import Image
        >>> rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
        >>> out = to_rgb(rgba)
        >>> out.mode, out.getpixel((0, 0)), rgba.mode
        ('RGB', (10, 20, 30), 'RGBA')
        >>> to_rgb(Image.new("I;16", (1, 1), 65535)).getpixel((0, 0))
        (255, 255, 255)
    """
    upright: Image.Image = ImageOps.exif_transpose(image, in_place=False)
    mode = upright.mode
    if mode == "RGB":
        return upright if upright is not image else image.copy()
    if mode in _SIXTEEN_BIT_MODES:
        gray = Image.fromarray(_sixteen_bit_to_uint8(upright))
        return gray.convert("RGB")
    if mode == "F":
        values = np.asarray(upright)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        raise DataError(
            f"a 32-bit float image (mode 'F', values in [{low:g}, {high:g}]) has no standard "
            "0..255 scale, and Pillow's conversion would clip it (values in [0, 1] become "
            "black); scale it to 8 bit yourself, e.g. Image.fromarray((values * 255)"
            ".round().astype('uint8')) for values in [0, 1]"
        )
    if mode == "P" and "transparency" in upright.info:
        return upright.convert("RGBA").convert("RGB")
    try:
        return upright.convert("RGB")
    except (ValueError, OSError) as err:
        raise DataError(
            f"cannot convert an image of mode {mode!r} to RGB ({err}); "
            "expected RGB, RGBA, L, LA, P, 1, CMYK, YCbCr or 16-bit grayscale"
        ) from err


def _open_checked(
    path: Path, draft_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``path`` (failures → DataError); also return the full upright (height, width)."""
    _check_file(path)
    with path.open("rb") as handle:
        return _decode(handle, str(path), draft_size)


def _decode(
    stream: BinaryIO, name: str, draft_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an open binary stream; errors are DataErrors whose message starts with ``name``."""
    try:
        # Pillow's guard warns above MAX_IMAGE_PIXELS and raises above twice that. The
        # warning may surface as an exception (warnings filtered to "error"); otherwise
        # the size check below refuses the file before decoding. No global warning
        # filter is touched, so this is safe to call from several threads.
        with Image.open(stream) as opened:
            stored_width, stored_height = opened.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and stored_width * stored_height > limit:
                raise DataError(
                    f"{name} is refused by Pillow's decompression-bomb guard "
                    f"({stored_width}x{stored_height} = {stored_width * stored_height} pixels "
                    f"> PIL.Image.MAX_IMAGE_PIXELS = {limit}); raise that limit yourself if "
                    "the file is trusted"
                )
            transposed = opened.getexif().get(_EXIF_ORIENTATION_TAG, 1) in _TRANSPOSING_ORIENTATIONS
            full_size = (stored_width, stored_height) if transposed else opened.size[::-1]
            if draft_size is not None and opened.format == "JPEG":
                height, width = draft_size
                if transposed:
                    height, width = width, height
                opened.draft(opened.mode, (width, height))
            opened.load()
            decoded: Image.Image = opened.copy()
            return decoded, (int(full_size[0]), int(full_size[1]))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{name} is refused by Pillow's decompression-bomb guard ({err}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS yourself if the file is trusted"
        ) from err
    except DataError:
        raise
    except UnidentifiedImageError as err:
        raise DataError(f"{name} is not an image file Pillow can read") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataError(f"{name} is truncated or corrupt: {err}") from err


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
    return _decode(io.BytesIO(data), name, None)[0]


def decode_image_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an image held in memory (e.g. labelme's ``imageData``) as upright RGB.

    The same rules and guards as :func:`open_image` apply, decompression bombs included.

    Args:
        data: The encoded image (PNG, JPEG, ...).
        name: What to call the data in error messages, e.g. ``"a.json: imageData"``.

    Returns:
        A new RGB image with the EXIF orientation applied.

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
        DataError: When the file is empty, not an image, truncated or corrupt, larger
            than Pillow's decompression-bomb limit, or of an unconvertible mode
            (the message names the file).
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
    file = Path(path)
    if draft_size is not None and (
        len(draft_size) != 2 or not all(isinstance(v, int) and v >= 1 for v in draft_size)
    ):
        raise ConfigError(f"draft_size must be (height, width) positive ints, got {draft_size!r}")
    return load_rgb(file, draft_size=draft_size)[0]


def load_rgb(
    path: Path, *, draft_size: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Like :func:`open_image`, also returning the full-resolution upright ``(height, width)``.

    The second value is the size before JPEG draft reduction, used to check that a mask
    matches its image even when the image was decoded at a reduced scale.

    Args:
        path: The image file.
        draft_size: As for :func:`open_image`.

    Returns:
        The RGB image and the full-resolution upright ``(height, width)``.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: As for :func:`open_image`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.jpg"
        >>> Image.new("RGB", (640, 480)).save(path)
        >>> image, full = load_rgb(path, draft_size=(100, 100))
        >>> image.size, full
        ((160, 120), (480, 640))
    """
    image, full_size = _open_checked(path, draft_size)
    try:
        return to_rgb(image), full_size
    except DataError as err:
        raise DataError(f"{path}: {err}") from err


def _rgb_mask_to_indices(rgb: npt.NDArray[np.uint8], path: Path) -> npt.NDArray[np.uint8]:
    from catseg.visualize import VOC_PALETTE  # lazy: avoids an import cycle

    palette = np.asarray(VOC_PALETTE, dtype=np.int64).reshape(-1, 3)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup: dict[int, int] = {}
    for index in range(palette_codes.shape[0] - 1, -1, -1):  # lowest index wins on duplicates
        lookup[int(palette_codes[index])] = index
    unique, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(c) for c in unique if int(c) not in lookup]
    if unknown:
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(
            f"{path} is an RGB mask with colours that are not in the Pascal VOC palette: "
            f"{shown}{more}; save masks as palette ('P') or grayscale PNGs holding class ids"
        )
    mapped = np.array([lookup[int(c)] for c in unique], dtype=np.uint8)
    result: npt.NDArray[np.uint8] = mapped[inverse.reshape(codes.shape)]
    return result


def read_mask(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """Read a segmentation mask as an ``(H, W)`` uint8 label map.

    Decoding rules by Pillow mode: ``P`` (palette) → the stored palette **indices**
    (colours ignored); ``L`` → the values as stored; ``1`` → 0/1; ``LA``/``PA`` → the
    first band; ``RGB``/``RGBA`` → each colour mapped to its index in the Pascal VOC
    colour map (alpha ignored); 16-bit grayscale → the values, when all are ≤ 255.
    255 stays 255 (the "ignore" value). EXIF orientation is not applied to masks.

    Args:
        path: The mask file, usually a PNG.

    Returns:
        A new ``(H, W)`` uint8 array of class indices.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: When the file is empty, unreadable or corrupt, an RGB mask holds
            colours outside the VOC palette (the first few are listed), a 16-bit mask
            holds values above 255, or the mode is not a mask mode (all naming the file).

    Shape:
        Output ``(H, W)`` for an image of width ``W`` and height ``H``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "mask.png"
        >>> mask = Image.new("P", (3, 2), 1)
        >>> mask.putpalette([0, 0, 0, 128, 0, 0] + [255, 255, 255] * 254)
        >>> mask.save(path)
        >>> read_mask(path).tolist()
        [[1, 1, 1], [1, 1, 1]]
    """
    file = Path(path)
    image, _ = _open_checked(file, None)
    mode = image.mode
    if mode in ("P", "L", "1"):
        return np.array(image, dtype=np.uint8)
    if mode in ("LA", "PA"):
        first_band: npt.NDArray[np.uint8] = np.array(image, dtype=np.uint8)[..., 0].copy()
        return first_band
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB") if mode == "RGBA" else image, dtype=np.uint8)
        return _rgb_mask_to_indices(rgb, file)
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise DataError(
                f"{file} is a {mode} mask with values in [{values.min()}, {values.max()}]; "
                "expected class ids in 0..255"
            )
        narrowed: npt.NDArray[np.uint8] = values.astype(np.uint8)
        return narrowed
    raise DataError(
        f"{file} has image mode {mode!r}, which is not a mask mode; "
        "expected a palette ('P'), grayscale ('L') or VOC-coloured RGB PNG"
    )
