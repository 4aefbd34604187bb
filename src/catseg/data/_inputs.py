"""Turning the many kinds of image a user may pass into one ``(C, H, W)`` tensor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from catseg.data._io import decode, rgb, to_array
from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError

ImageInput: TypeAlias = (
    str | os.PathLike[str] | Image.Image | npt.NDArray[np.generic] | torch.Tensor
)
"""Anything :meth:`Segmenter.predict` accepts as one image."""


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
    try:
        converted = rgb(image)
    except DataError as err:
        raise DataError(f"{name}: {err}" if name else str(err)) from err
    if in_channels == 1:
        converted = converted.convert("L")
    _check_size(image.height, image.width, "the image")
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


def load_input(image: object, in_channels: int) -> tuple[torch.Tensor, Image.Image | None]:
    """Read one image into a ``(in_channels, H, W)`` tensor (uint8 or float in [0, 1]).

    A file is decoded once (EXIF orientation applied) and its pixels copied once into
    the tensor. The tensor may share memory with the caller's array or tensor; callers
    must only use out-of-place operations on it.

    Returns:
        The tensor, and for a PIL image input a new RGB (or, for a 1-channel model, L)
        copy of it; ``None`` for files, arrays and tensors (:func:`display_image` makes
        one from the tensor on demand).
    """
    if isinstance(image, (str, os.PathLike)):
        decoded = decode(Path(image), str(image))
        return _from_pil(decoded.image, decoded.orientation, in_channels, str(image)), None
    if isinstance(image, Image.Image):
        tensor = _from_pil(image, 1, in_channels, "")
        return tensor, display_image(tensor)
    if isinstance(image, np.ndarray):
        return _from_array(image, in_channels), None
    if isinstance(image, torch.Tensor):
        return _from_tensor(image, in_channels), None
    raise DTypeError(
        "an image must be a file path, a PIL image, a uint8 (H, W, C) NumPy array or a "
        f"(C, H, W) torch tensor, got {type(image).__qualname__}"
    )


def display_image(tensor: torch.Tensor) -> Image.Image | None:
    """A PIL image of a loaded ``(C, H, W)`` input for overlays; ``None`` unless C is 1 or 3."""
    if tensor.shape[0] not in (1, 3):
        return None
    cpu = tensor.detach().cpu()
    if cpu.dtype != torch.uint8:
        cpu = (cpu.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
    array = cpu.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
