"""Palettes, coloured masks and overlays of label maps (and of multilabel layers).

Two palettes are built in: :data:`VOC_PALETTE`, the standard Pascal-VOC colour map
(label 1 is dark red, 255 — the "void"/ignore label — is cream), and
:data:`BINARY_PALETTE`, the cat tutorial's black background and green foreground.

Examples:
    >>> import numpy as np
    >>> from catseg.visualize import colorize, overlay
    >>> mask = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    >>> colorize(mask, palette="binary").convert("RGB").getpixel((1, 0))
    (0, 128, 0)
    >>> photo = np.full((2, 2, 3), 100, dtype=np.uint8)
    >>> overlay(photo, mask, alpha=0.3, palette="binary").getpixel((1, 0))
    (70, 108, 70)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from catseg._validation import check_choice, check_finite_float, check_int
from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError

__all__ = [
    "BINARY_PALETTE",
    "VOC_PALETTE",
    "PaletteName",
    "colorize",
    "colorize_layers",
    "get_palette",
    "overlay",
    "overlay_layers",
]

PaletteName: TypeAlias = Literal["voc", "binary"]
"""Names of the built-in palettes accepted wherever a palette is asked for."""

_PALETTE_NAMES: tuple[str, ...] = get_args(PaletteName)


# Label i's colour: the bits of i are dealt out in turn to R, G, B (bit 0 -> R, bit 1 -> G,
# bit 2 -> B, bit 3 -> R, ...), each channel filled from its most significant bit downwards.
VOC_PALETTE: tuple[int, ...] = tuple(
    sum(((label >> (3 * k + channel)) & 1) << (7 - k) for k in range(8))
    for label in range(256)
    for channel in range(3)
)
"""The standard Pascal-VOC colour map: 256 colours as 768 ints ``r0, g0, b0, r1, ...``.

Label 0 is black, 1 is ``(128, 0, 0)``, 2 is ``(0, 128, 0)``, 15 (person) is
``(192, 128, 128)`` and 255 (void) is ``(224, 224, 192)``.
"""

BINARY_PALETTE: tuple[int, ...] = (0, 0, 0, 0, 128, 0, *VOC_PALETTE[6:])
"""The cat tutorial's palette: label 0 black, label 1 green ``(0, 128, 0)``.

Labels 2 to 255 keep their VOC colours, so the void label 255 still shows as cream.
"""


def get_palette(name: PaletteName) -> tuple[int, ...]:
    """Return a built-in palette by name.

    Args:
        name: ``"voc"`` for :data:`VOC_PALETTE` or ``"binary"`` for :data:`BINARY_PALETTE`.

    Returns:
        768 ints ``r0, g0, b0, r1, g1, b1, ...`` in 0–255.

    Raises:
        ConfigError: If ``name`` is not a built-in palette name.

    Examples:
        >>> get_palette("binary")[:6]
        (0, 0, 0, 0, 128, 0)
        >>> len(get_palette("voc"))
        768
    """
    checked = check_choice("palette name", name, _PALETTE_NAMES)
    return BINARY_PALETTE if checked == "binary" else VOC_PALETTE


def check_palette(palette: PaletteName | Sequence[int]) -> tuple[int, ...]:
    """A palette name or flat ``r0, g0, b0, ...`` ints as the flat tuple of its colours."""
    if isinstance(palette, str):
        return get_palette(palette)
    if not isinstance(palette, (Sequence, np.ndarray)):
        raise ConfigError(
            f"palette must be 'voc', 'binary' or a flat sequence of ints r0, g0, b0, r1, ..., "
            f"got {type(palette).__name__}"
        )
    values: tuple[object, ...] = tuple(palette)
    if not values or len(values) % 3 != 0 or len(values) > 768:
        raise ConfigError(
            "palette must hold 3 ints per colour and at most 256 colours (1 to 768 ints, a "
            f"multiple of 3), got {len(values)} values"
        )
    colours = tuple(check_int("palette values", value, minimum=0) for value in values)
    if max(colours) > 255:
        raise ConfigError(f"palette values must be in 0..255, got {max(colours)}")
    return colours


def _mask_to_uint8(
    mask: npt.ArrayLike | torch.Tensor | Image.Image, n_colours: int
) -> npt.NDArray[np.uint8]:
    if isinstance(mask, Image.Image) and mask.mode not in {"P", "L", "1"}:
        raise DTypeError(f"a mask image must have mode 'P', 'L' or '1', got {mask.mode!r}")
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ShapeError(f"mask must be a 2-D label map (H, W), got shape {tuple(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ShapeError(f"mask must not be empty, got shape {tuple(array.shape)}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise DTypeError(f"mask must hold integer labels, got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n_colours:
        raise ConfigError(
            f"mask holds labels {low}..{high} but the palette has colours for 0..{n_colours - 1}"
        )
    return array.astype(np.uint8, copy=True)


def colorize(
    mask: npt.ArrayLike | torch.Tensor | Image.Image,
    palette: PaletteName | Sequence[int] = "voc",
) -> Image.Image:
    """Turn a label map into a palette-mode PIL image.

    The pixel values of the result are the labels themselves; the palette maps each
    label to a colour. Saved as PNG this is a Pascal-VOC ``SegmentationClassPNG`` mask
    that can be read back losslessly.

    Args:
        mask: Integer (or bool) label map as a NumPy array, torch tensor or a ``"P"``/
            ``"L"`` PIL image. Labels must be in 0..255 and have a palette colour.
        palette: ``"voc"``, ``"binary"`` or a flat sequence ``r0, g0, b0, r1, ...`` of up to
            256 colours.

    Returns:
        A new ``"P"`` mode image of the mask's size.

    Raises:
        ShapeError: If the mask is not ``(H, W)`` or ``(1, H, W)``, or is empty.
        DTypeError: If the mask holds floats, or is an image of another mode.
        ConfigError: If a label has no colour in the palette, or the palette is malformed.

    Examples:
        >>> import torch
        >>> img = colorize(torch.tensor([[0, 1, 255]]))
        >>> img.mode, img.size
        ('P', (3, 1))
        >>> [img.convert("RGB").getpixel((x, 0)) for x in range(3)]
        [(0, 0, 0), (128, 0, 0), (224, 224, 192)]
    """
    colours = check_palette(palette)
    labels = _mask_to_uint8(mask, len(colours) // 3)
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), labels.tobytes())
    image.putpalette(list(colours))
    return image


def _tensor_to_uint8(tensor: torch.Tensor) -> npt.NDArray[np.uint8]:
    tensor = tensor.detach().cpu()
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ShapeError(
            f"an image tensor must have shape (C, H, W) with C in (1, 3), got {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.uint8:
        return tensor.permute(1, 2, 0).numpy()
    if not tensor.is_floating_point():
        raise DTypeError(f"an image tensor must be uint8 or float, got {tensor.dtype}")
    values = tensor.float()
    if values.numel() and not bool(torch.isfinite(values).all()):
        raise NonFiniteError("the image tensor contains NaN or infinite values")
    if values.numel() and (float(values.min()) < 0.0 or float(values.max()) > 1.0):
        raise DataError(
            "a float image tensor must hold values in [0, 1], got "
            f"{float(values.min()):g}..{float(values.max()):g}; pass 0..255 images as uint8"
        )
    return (values * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _array_to_uint8(image: npt.ArrayLike | Image.Image) -> npt.NDArray[np.uint8]:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise DTypeError(f"an image array must be uint8 (H, W, C), got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ShapeError(
            f"an image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got {tuple(array.shape)}"
        )
    return array[:, :, :3]


def _photo(
    image: npt.ArrayLike | torch.Tensor | Image.Image, size: tuple[int, ...], what: str
) -> npt.NDArray[np.float64]:
    """The photo as float RGB ``(H, W, 3)``, checked to have the ``size`` (H, W) of ``what``."""
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    array = _tensor_to_uint8(image) if isinstance(image, torch.Tensor) else _array_to_uint8(image)
    if array.shape[:2] != size:
        raise ShapeError(
            f"image is {array.shape[0]}x{array.shape[1]} (H x W) but {what} {size[0]}x{size[1]}; "
            "they must match"
        )
    return np.broadcast_to(array, (*size, 3)).astype(np.float64)  # grey to RGB


def overlay(
    image: npt.ArrayLike | torch.Tensor | Image.Image,
    mask: npt.ArrayLike | torch.Tensor | Image.Image,
    *,
    alpha: float = 0.3,
    palette: PaletteName | Sequence[int] = "voc",
) -> Image.Image:
    """Blend the coloured mask over an image, as the cat tutorial does.

    Every pixel — background (label 0) and void (255) included — is mixed with the
    palette colour of its label::

        out = floor((1 - alpha) * image + alpha * colour + 0.5)

    per channel. With the VOC and binary palettes the background colour is black, so the
    background is darkened by ``1 - alpha``, like ``Image.blend(photo, mask_rgb, alpha)``
    in the tutorial (which truncates instead of rounding).

    Args:
        image: The photo: a PIL image (any mode, converted to RGB), a ``uint8`` array
            ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha dropped), or a
            tensor ``(C, H, W)`` with C in (1, 3), uint8 or float in [0, 1].
        mask: Integer label map of the same height and width (see :func:`colorize`).
        alpha: Weight of the mask colour, from 0 (photo only) to 1 (mask only).
        palette: ``"voc"``, ``"binary"`` or a flat sequence of colours.

    Returns:
        A new ``"RGB"`` image of the photo's size. The inputs are not modified.

    Raises:
        ShapeError: If image and mask sizes differ, or either has an unsupported shape.
        DTypeError: If the image array is not uint8 or the mask does not hold integers.
        ConfigError: If ``alpha`` is outside [0, 1], a label has no palette colour or the
            palette is malformed.
        DataError: If a float image tensor holds values outside [0, 1].
        NonFiniteError: If a float image tensor holds NaN or infinity.

    Examples:
        >>> import numpy as np
        >>> photo = np.array([[[100, 200, 50], [10, 20, 30]]], dtype=np.uint8)
        >>> mask = np.array([[1, 0]])
        >>> out = overlay(photo, mask, alpha=0.3, palette=[0, 0, 0, 0, 128, 0])
        >>> out.getpixel((0, 0)), out.getpixel((1, 0))
        ((70, 178, 35), (7, 14, 21))
    """
    alpha = check_finite_float("alpha", alpha, low=0.0, high=1.0)
    colours = check_palette(palette)
    labels = _mask_to_uint8(mask, len(colours) // 3)
    rgb = _photo(image, labels.shape, "mask is")
    lut = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    return _rounded((1.0 - alpha) * rgb + alpha * lut[labels])


def _rounded(rgb: npt.NDArray[np.float64]) -> Image.Image:
    """An RGB image of ``rgb`` rounded half up: ``floor(rgb + 0.5)``."""
    return Image.fromarray(np.floor(rgb + 0.5).clip(0, 255).astype(np.uint8))


def _layer_colours(
    layers: npt.ArrayLike | torch.Tensor, palette: PaletteName | Sequence[int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Mean colour of the labels present at each pixel ``(H, W, 3)`` and "any label" ``(H, W)``."""
    if isinstance(layers, torch.Tensor):
        layers = layers.detach().cpu().numpy()
    array = np.asarray(layers)
    if array.ndim != 3:
        raise ShapeError(f"layers must have shape (K, H, W), got {array.shape}")
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise DTypeError(f"layers must be boolean or 0/1 integers, got dtype {array.dtype}")
    present = array == 1 if array.dtype != np.bool_ else array
    lut = np.asarray(check_palette(palette), dtype=np.float64).reshape(-1, 3)
    if lut.shape[0] < array.shape[0] + 1:
        raise ConfigError(
            f"the palette has {lut.shape[0]} colours but {array.shape[0]} layers need "
            f"{array.shape[0] + 1} (layer k takes colour k + 1; colour 0 is the background)"
        )
    weights = present.astype(np.float64)  # (K, H, W)
    count = weights.sum(axis=0)
    summed = np.einsum("khw,kc->hwc", weights, lut[1 : array.shape[0] + 1])
    mean = summed / np.maximum(count, 1.0)[..., None]
    return mean, count > 0


def colorize_layers(
    layers: npt.ArrayLike | torch.Tensor, palette: PaletteName | Sequence[int] = "voc"
) -> Image.Image:
    """Draw multilabel layers as one RGB picture in which overlapping labels stay visible.

    Layer ``k`` takes palette colour ``k + 1`` (colour 0 is the background). A pixel
    carrying several labels shows the mean of their colours (so the overlap of a red
    and a green label is olive), and a pixel carrying none shows colour 0.

    Args:
        layers: ``(K, H, W)`` boolean (or 0/1 integer) layers; other values (e.g. 255,
            ignore) count as absent.
        palette: ``"voc"``, ``"binary"`` or a flat sequence of at least ``K + 1`` colours.

    Returns:
        A new ``"RGB"`` image of size ``W × H``.

    Raises:
        ShapeError: If ``layers`` is not 3-D.
        DTypeError: If ``layers`` is neither boolean nor integer.
        ConfigError: If the palette has fewer than ``K + 1`` colours.

    Examples:
        >>> import torch
        >>> layers = torch.tensor([[[True, True, False]], [[False, True, False]]])
        >>> out = colorize_layers(layers)
        >>> [out.getpixel((x, 0)) for x in range(3)]
        [(128, 0, 0), (64, 64, 0), (0, 0, 0)]
    """
    mean, present = _layer_colours(layers, palette)
    background = np.asarray(check_palette(palette)[:3], dtype=np.float64)
    return _rounded(np.where(present[..., None], mean, background))


def overlay_layers(
    image: npt.ArrayLike | torch.Tensor | Image.Image,
    layers: npt.ArrayLike | torch.Tensor,
    *,
    alpha: float = 0.5,
    palette: PaletteName | Sequence[int] = "voc",
) -> Image.Image:
    """Blend multilabel layers over an image; pixels with no label keep the image's colour.

    Where at least one label is present,
    ``out = floor((1 - alpha) * image + alpha * colour + 0.5)`` with ``colour`` the mean
    colour of the labels present (see :func:`colorize_layers`), so overlaps get their
    own mixed tint; elsewhere the photo is unchanged.

    Args:
        image: The photo, as in :func:`overlay`.
        layers: ``(K, H, W)`` boolean (or 0/1 integer) layers of the image's size.
        alpha: Weight of the label colour, from 0 to 1.
        palette: As in :func:`colorize_layers`.

    Returns:
        A new ``"RGB"`` image of the photo's size.

    Raises:
        ShapeError: If the sizes differ or a shape is unsupported.
        DTypeError: As in :func:`overlay` and :func:`colorize_layers`.
        ConfigError: If ``alpha`` is outside [0, 1] or the palette is too short.

    Examples:
        >>> import numpy as np
        >>> photo = np.full((1, 2, 3), 100, dtype=np.uint8)
        >>> layers = np.array([[[1, 0]], [[1, 0]]], dtype=bool)
        >>> out = overlay_layers(photo, layers, alpha=0.5)
        >>> out.getpixel((0, 0)), out.getpixel((1, 0))
        ((82, 82, 50), (100, 100, 100))
    """
    alpha = check_finite_float("alpha", alpha, low=0.0, high=1.0)
    mean, present = _layer_colours(layers, palette)
    rgb = _photo(image, present.shape, "layers are")
    return _rounded(np.where(present[..., None], (1.0 - alpha) * rgb + alpha * mean, rgb))
