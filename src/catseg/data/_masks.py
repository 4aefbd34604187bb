"""Reading segmentation masks: class ids exactly as stored, or a DataError naming the file.

A mask is a lossless label map, so every rule here refuses rather than guesses when the
file cannot hold exact class ids (a JPEG, a float or 16-bit colour file, an object drawn
only in the alpha channel). Masks are read on their stored pixel grid (no EXIF
orientation); :func:`align_mask` puts one on its photo's displayed grid.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from catseg.data._masks import read_mask
    >>> path = Path(tempfile.mkdtemp()) / "ids.png"
    >>> Image.new("L", (3, 1), 2).save(path)
    >>> read_mask(path).tolist()
    [[2, 2, 2]]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from catseg._validation import check_path
from catseg.data._io import TURNED, decode, upright
from catseg.errors import DataError
from catseg.visualize import VOC_PALETTE

_LOSSY_FORMATS = frozenset({"JPEG", "MPO"})  # refused for masks, whatever the file's name


def _rgb_mask_to_indices(rgb: npt.NDArray[np.uint8], path: Path) -> npt.NDArray[np.uint8]:
    palette = np.asarray(VOC_PALETTE, dtype=np.int64).reshape(-1, 3)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    # the lowest index wins where the palette repeats a colour
    lookup = {int(code): index for index, code in reversed(list(enumerate(palette_codes)))}
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


def _check_alpha(labels: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], path: Path) -> None:
    """Refuse an alpha channel that splits one class into parts (shapes only alpha shows)."""
    if alpha.size == 0 or int(alpha.min()) == int(alpha.max()):
        return
    pairs = np.unique(labels.astype(np.int64) * 256 + alpha, return_counts=False)
    classes = pairs // 256
    split = np.unique(classes[np.r_[False, classes[1:] == classes[:-1]]])
    if split.size:
        raise DataError(
            f"{path} has an alpha channel that varies inside class id(s) "
            f"{[int(c) for c in split[:5]]}: part of the mask is drawn only in transparency, "
            "which catseg does not read as classes; flatten the mask so that every class has "
            "its own colour or value (e.g. a palette or grayscale PNG without alpha)"
        )


def _numeric_mask(image: Image.Image, path: Path) -> npt.NDArray[np.uint8]:
    """16/32-bit integer or 32-bit float values, when all are whole class ids in 0..255."""
    values = np.asarray(image, dtype=np.float64)
    if not ((values >= 0) & (values <= 255) & (values == np.round(values))).all():  # NaN fails
        shown = f"values in [{float(np.nanmin(values)):g}, {float(np.nanmax(values)):g}]"
        what = f"32-bit float mask (mode 'F', {shown})" if image.mode == "F" else None
        raise DataError(
            f"{path} is a {what or f'{image.mode} mask with {shown}'}: not all whole class "
            "ids in 0..255; catseg will not round or clip class ids, save the mask as an "
            "8-bit palette or grayscale PNG"
        )
    return values.astype(np.uint8)


def _decode_mode(image: Image.Image, path: Path) -> npt.NDArray[np.uint8]:
    mode = image.mode
    if mode in ("P", "L", "1"):
        return np.array(image, dtype=np.uint8)
    if mode in ("LA", "PA", "RGB", "RGBA"):
        bands = np.asarray(image, dtype=np.uint8)
        if mode.startswith("RGB"):
            labels = _rgb_mask_to_indices(np.ascontiguousarray(bands[..., :3]), path)
        else:
            labels = bands[..., 0].copy()
        if mode.endswith("A"):  # the alpha band is the last
            _check_alpha(labels, bands[..., -1], path)
        return labels
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _numeric_mask(image, path)
    raise DataError(
        f"{path} has image mode {mode!r}, which is not a mask mode; "
        "expected a palette ('P'), grayscale ('L') or VOC-coloured RGB PNG"
    )


def read_mask(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """Read a segmentation mask as an ``(H, W)`` uint8 label map, exactly or not at all.

    Decoding rules by Pillow mode: ``P`` (palette) → the stored palette **indices**
    (colours ignored); ``L`` → the values as stored; ``1`` → 0/1; ``LA``/``PA`` → the
    first band; ``RGB``/``RGBA`` → each colour mapped to its index in the Pascal VOC
    colour map; 16- and 32-bit integer grayscale and 32-bit float → the values, when all
    are whole numbers in 0..255. An alpha channel is ignored when it is constant inside
    every class (opaque masks, or a transparent background around opaque objects); when
    it varies inside one class, part of the drawing exists only in transparency and the
    file is refused. 255 stays 255 (the "ignore" value). Masks are read on their stored
    pixel grid: EXIF orientation is not applied (see :func:`align_mask`).

    Refused (``DataError`` naming the file and the reason): JPEG data whatever the file
    name (lossy compression changes class ids along every edge), 16-bit RGB, RGBA or
    grey+alpha files (Pillow keeps only the high byte of each sample), and values that
    are not whole class ids in 0..255.

    Args:
        path: The mask file, usually a PNG.

    Returns:
        A new ``(H, W)`` uint8 array of class indices.

    Raises:
        MissingFileError: When ``path`` does not exist.
        DataError: When the file is unreadable or refused by the rules above (an RGB
            mask's colours outside the VOC palette are listed; the file is named).

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
    file = check_path("path", path)
    decoded = decode(file, str(file))
    if decoded.format in _LOSSY_FORMATS:
        raise DataError(
            f"{file} holds {decoded.format} data (lossy compression), which changes class ids "
            "along every edge; save masks as PNG (lossless), e.g. a palette PNG holding "
            "class ids"
        )
    if decoded.deep:
        raise DataError(
            f"{file} is a 16-bit {decoded.image.mode} image; Pillow reads only the high byte "
            "of each sample, which would change class ids; save masks as 8-bit palette or "
            "grayscale PNGs (16-bit grayscale holding ids 0..255 also works)"
        )
    return _decode_mode(decoded.image, file)


def align_mask(
    mask: npt.NDArray[np.uint8],
    orientation: int,
    image_size: tuple[int, int],
    image_path: Path,
    mask_path: Path,
) -> npt.NDArray[np.uint8]:
    """Return ``mask`` on the grid of its photo as displayed (EXIF orientation applied).

    A mask is used on the grid its size proves. Without an orientation tag (or with 1)
    the sizes must match. For a non-square photo turned by 90 degrees (orientations
    5-8), a mask of the displayed size (drawn as labelme and browsers show the photo) is
    used as is, and one of the stored size (drawn by tools that ignore EXIF) is turned
    with the photo. When the size cannot tell (a square photo, or orientations 2-4,
    which keep the size) the item is refused instead of guessed.

    Args:
        mask: ``(H, W)`` label map as stored.
        orientation: The photo's EXIF orientation (1..8).
        image_size: The photo's full-resolution displayed ``(height, width)``.
        image_path: The photo, named in errors.
        mask_path: The mask, named in errors.

    Returns:
        The mask on the displayed grid (``mask`` itself, or a new turned array).

    Raises:
        DataError: When the sizes do not match, or the grid is ambiguous (both files,
            the sizes and the orientation named, with the fix).

    Examples:
        >>> import numpy as np
        >>> from pathlib import Path
        >>> stored = np.array([[1, 2, 3]], dtype=np.uint8)  # drawn on the stored 3x1 pixels
        >>> align_mask(stored, 6, (3, 1), Path("a.jpg"), Path("a.png")).tolist()
        [[1], [2], [3]]
    """
    height, width = image_size
    turned = orientation in TURNED
    if orientation == 1 or (turned and height != width):
        if mask.shape == (height, width):
            return mask
        if orientation != 1 and mask.shape == (width, height):
            return upright(mask, orientation)
        exif = f" as displayed (EXIF orientation {orientation})" if orientation != 1 else ""
        raise DataError(
            f"image {image_path} is {width}x{height} (WxH){exif} but mask {mask_path} is "
            f"{mask.shape[1]}x{mask.shape[0]}; they must match"
        )
    raise DataError(
        f"image {image_path} has EXIF orientation {orientation}, which "
        + ("mirrors or turns it without changing its size" if not turned else "turns it")
        + f" ({width}x{height} WxH as displayed), so the size of mask {mask_path} "
        "cannot tell whether it was drawn on the photo as displayed or on its stored "
        "pixels; save the photo upright without the tag "
        "(PIL.ImageOps.exif_transpose(image).save(...)) with the mask drawn on it"
    )
