"""Turning the many kinds of image a user may pass into one ``(C, H, W)`` tensor.

A JPEG file to be resized to the model's input is decoded at 1/4 or 1/2 scale if still
at least twice that size (see ``decode``), so its full-size pixels are never held; the
antialiased float resize that follows, not the decoder's block averaging, shapes the
model's input. Only an image over ``FLOAT_LIMIT`` times the model's pixel count (a PNG
or array photo) is resized as uint8, within one level of the float resize.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from catseg.data._io import decode, rgb, to_array
from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError

ImageInput: TypeAlias = (
    str | os.PathLike[str] | Image.Image | npt.NDArray[np.generic] | torch.Tensor
)
"""Anything :meth:`Segmenter.predict` accepts as one image."""
Size: TypeAlias = tuple[int, int]
BAND = 1 << 20  # floats per band of a banded resize (4 MiB)
DRAFT = 2  # a JPEG is decoded at no less than DRAFT times the model's input size
FLOAT_LIMIT = 64  # larger images (in model pixels) are resized as uint8


def _channels(tensor: torch.Tensor, in_channels: int, what: str) -> torch.Tensor:
    """Adapt (C, H, W) to ``in_channels``: grey is repeated, an alpha channel dropped."""
    channels = tensor.shape[0]
    if channels == in_channels:
        return tensor
    if in_channels == 3 and channels in (1, 4):
        return tensor.expand(3, -1, -1) if channels == 1 else tensor[:3]
    hint = {
        1: "; convert it to grayscale first",
        3: " (1, 3 or 4 channels are accepted: grey is repeated, alpha dropped)",
    }
    raise ShapeError(
        f"{what} has {channels} channels but the model takes {in_channels}"
        + hint.get(in_channels, "")
    )


def _check_size(height: int, width: int, what: str) -> None:
    if height == 0 or width == 0:
        raise ShapeError(f"{what} is empty: {height}x{width} pixels (H x W)")


def _from_pil(image: Image.Image, orientation: int, in_channels: int, name: str) -> torch.Tensor:
    if in_channels not in (1, 3):
        raise ConfigError(
            f"the model takes {in_channels} input channels; a PIL image or file can only feed "
            "a 1- or 3-channel model (pass a (C, H, W) tensor instead)"
        )
    _check_size(image.height, image.width, "the image")
    try:
        converted = rgb(image)
    except DataError as err:
        raise DataError(f"{name}: {err}" if name else str(err)) from err
    if in_channels == 1:
        converted = converted.convert("L")
    return torch.from_numpy(to_array(converted, orientation)).permute(2, 0, 1)


def _from_array(image: npt.NDArray[np.generic], in_channels: int) -> torch.Tensor:
    if image.dtype != np.uint8:
        raise DTypeError(
            f"an image array must be uint8 (H, W, C) with values 0..255, got dtype "
            f"{image.dtype}; pass float images as a (C, H, W) torch tensor in [0, 1]"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ShapeError(f"an image array must have shape (H, W) or (H, W, C), got {image.shape}")
    _check_size(image.shape[0], image.shape[1], "the image array")
    if not image.flags.writeable:  # e.g. np.asarray(pil_image); torch wants writable memory
        image = image.copy()
    return _channels(torch.from_numpy(image).permute(2, 0, 1), in_channels, "the image array")


def _from_tensor(image: torch.Tensor, in_channels: int) -> torch.Tensor:
    if image.ndim != 3:
        hint = "; use predict_batch for a batch" if image.ndim == 4 else ""
        raise ShapeError(
            f"an image tensor must have shape (C, H, W), got {tuple(image.shape)}{hint}"
        )
    _check_size(image.shape[1], image.shape[2], "the image tensor")
    tensor = image.detach()
    if tensor.dtype != torch.uint8:
        if not tensor.is_floating_point():
            raise DTypeError(
                f"an image tensor must be uint8 (0..255) or float (0..1), got {tensor.dtype}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError("the image tensor contains NaN or infinite values")
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"a float image tensor must hold values in [0, 1], got {low:g}..{high:g}; "
                "pass 0..255 images as uint8"
            )
    return _channels(tensor, in_channels, "the image tensor")


class Loaded(NamedTuple):
    """One input read for the model: its pixels, its full size and what to draw on.

    ``pixels`` is ``(in_channels, h, w)`` uint8 or float in [0, 1] (smaller than the
    image for a JPEG read at a draft scale); ``size`` is the full upright ``(H, W)`` the
    mask comes out at. ``display`` is the overlay's image: the file (read
    again, at full size, if an overlay is asked for), an RGB or L copy of a PIL image, or
    ``None`` (an array or tensor: ``pixels`` are the full-size input).
    """

    pixels: torch.Tensor
    size: Size
    display: Path | Image.Image | None


def load_input(image: object, in_channels: int, size: Size | None = None) -> Loaded:
    """Read one image for a model taking ``in_channels`` channels at ``size`` (or any size).

    A file is decoded once (a JPEG at a draft scale no smaller than twice ``size``,
    EXIF orientation applied) and its pixels copied once. The pixels of an array or
    tensor may share memory with the caller's: use only out-of-place operations on them.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        decoded = decode(path, str(image), size and (DRAFT * size[0], DRAFT * size[1]))
        pixels = _from_pil(decoded.image, decoded.orientation, in_channels, str(image))
        return Loaded(pixels, decoded.size, path)
    if isinstance(image, Image.Image):
        pixels = _from_pil(image, 1, in_channels, "")
        return Loaded(pixels, (image.height, image.width), display_image(pixels))
    if isinstance(image, np.ndarray):
        pixels = _from_array(image, in_channels)
    elif isinstance(image, torch.Tensor):
        pixels = _from_tensor(image, in_channels)
    else:
        raise DTypeError(
            "an image must be a file path, a PIL image, a uint8 (H, W, C) NumPy array or a "
            f"(C, H, W) torch tensor, got {type(image).__qualname__}"
        )
    return Loaded(pixels, (int(pixels.shape[1]), int(pixels.shape[2])), None)


def display_image(tensor: torch.Tensor) -> Image.Image | None:
    """A PIL image of a loaded ``(C, H, W)`` input for overlays; ``None`` unless C is 1 or 3."""
    if tensor.shape[0] not in (1, 3):
        return None
    cpu = tensor.detach().cpu()
    if cpu.dtype != torch.uint8:
        cpu = (cpu.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
    array = cpu.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def spans(length: int, step: int) -> list[tuple[int, int]]:
    """``[a, b)`` bands of ``step`` to ``2 * step - 1`` (one band if shorter)."""
    starts = list(range(0, length, max(1, step)))
    if len(starts) > 1 and length - starts[-1] < step:
        starts.pop()
    return list(zip(starts, [*starts[1:], length], strict=True))


def resize(x: torch.Tensor, size: Size) -> torch.Tensor:
    """Bilinear, antialiased resize of ``(N, C, H, W)`` (half-pixel centres)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def model_input(
    pixels: torch.Tensor, size: Size | None, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """``(C, H, W)`` uint8 or [0, 1] float pixels -> normalised ``(1, C, h, w)`` float32.

    Resized to ``size`` (``None``: kept), scaled to [0, 1] and normalised on the device
    of ``mean`` and ``std`` (``(1, C, 1, 1)``). The resize is in float, a band of rows at
    a time, on that device; only a CPU uint8 image over ``FLOAT_LIMIT`` times the pixels
    of ``size`` is resized as uint8 there (torch's channels-last kernel: within one level
    of the float resize, at a fraction of the time and memory).
    """
    x, device = pixels[None], mean.device
    if size is not None and tuple(x.shape[2:]) != size:
        large = x.shape[2] * x.shape[3] > FLOAT_LIMIT * size[0] * size[1]
        if large and x.dtype == torch.uint8 and x.device.type == device.type == "cpu":
            x = resize(x.contiguous(memory_format=torch.channels_last), size)
        else:
            x = x.to(device, non_blocking=True)
            rows = spans(x.shape[2], BAND // max(1, x.shape[1] * x.shape[3]))
            x = resize(
                torch.cat([resize(_unit(x[:, :, a:b]), (b - a, size[1])) for a, b in rows], 2),
                size,
            )
    return (_unit(x.to(device, non_blocking=True)) - mean) / std


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1] (uint8 divided by 255)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
