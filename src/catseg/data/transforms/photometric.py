"""Photometric transforms: they change the image only."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from catseg._validation import check_finite_float, check_mean_std
from catseg.data.transforms._common import Joint, Pair, _back, _make_generator, _to_float, _uniform
from catseg.errors import DTypeError, ShapeError

__all__ = ["ColorJitter", "Normalize", "ToGray"]


class ColorJitter(Joint):
    """Randomly change brightness, contrast and saturation of the image only.

    Each factor is drawn from ``[1 - amount, 1 + amount]``; in a random order,
    brightness scales the pixels, contrast blends with the mean grey level, saturation
    with the grey image (ITU-R 601 luma). Values are clamped to [0, 1] (0..255 for uint8).

    Args:
        brightness: Amount in [0, 1].
        contrast: Amount in [0, 1].
        saturation: Amount in [0, 1].
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When an amount is not a number in [0, 1].
        ShapeError: When saturation is used on an image without 3 channels.

    Examples:
        >>> import torch
        >>> jitter = ColorJitter(brightness=0.5, seed=0)
        >>> image, mask = jitter(torch.full((3, 2, 2), 0.5), torch.zeros(2, 2, dtype=torch.int64))
        >>> 0.25 <= float(image[0, 0, 0]) <= 0.75
        True
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        *,
        seed: int | torch.Generator | None = None,
    ) -> None:
        self.brightness = check_finite_float("brightness", brightness, low=0.0, high=1.0)
        self.contrast = check_finite_float("contrast", contrast, low=0.0, high=1.0)
        self.saturation = check_finite_float("saturation", saturation, low=0.0, high=1.0)
        self.generator = _make_generator(seed)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        if self.saturation > 0 and image.shape[0] != 3:
            raise ShapeError(f"saturation needs a 3-channel image, got {tuple(image.shape)}")
        top = 255.0 if image.dtype == torch.uint8 else 1.0
        out = _to_float(image).clone()
        for step in torch.randperm(3, generator=self.generator).tolist():
            if step == 0 and self.brightness > 0:
                factor = _uniform(1 - self.brightness, 1 + self.brightness, self.generator)
                out = (out * factor).clamp(0.0, top)
            elif step == 1 and self.contrast > 0:
                factor = _uniform(1 - self.contrast, 1 + self.contrast, self.generator)
                grey = _luma(out).mean() if out.shape[0] == 3 else out.mean()
                out = (grey + factor * (out - grey)).clamp(0.0, top)
            elif step == 2 and self.saturation > 0:
                factor = _uniform(1 - self.saturation, 1 + self.saturation, self.generator)
                grey = _luma(out)[None]
                out = (grey + factor * (out - grey)).clamp(0.0, top)
        return _back(out, image), mask.clone()


def _luma(image: torch.Tensor) -> torch.Tensor:
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


class Normalize(Joint):
    """Subtract a per-channel mean and divide by a per-channel std (float images only).

    Args:
        mean: One value per channel.
        std: One positive value per channel.

    Raises:
        ConfigError: When ``mean`` and ``std`` differ in length, a value is not finite or
            a std is not positive.
        ShapeError: On call, when the image's channel count differs from ``len(mean)``.
        DTypeError: On call, when the image is not floating point.

    Examples:
        >>> import torch
        >>> image, _ = Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(
        ...     torch.ones(3, 1, 1), torch.zeros(1, 1, dtype=torch.int64))
        >>> image.flatten().tolist()
        [2.0, 2.0, 2.0]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = map(list, check_mean_std(mean, std))

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        if not image.is_floating_point():
            raise DTypeError(f"Normalize needs a float image in [0, 1], got {image.dtype}")
        if image.shape[0] != len(self.mean):
            raise ShapeError(
                f"image has {image.shape[0]} channels, Normalize has {len(self.mean)} means"
            )
        mean = torch.tensor(self.mean, dtype=image.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype).view(-1, 1, 1)
        return (image - mean) / std, mask.clone()


class ToGray(Joint):
    """RGB to one grey channel as PIL's ``"L"`` does (ITU-R 601: ``.299 R + .587 G + .114 B``).

    A 1-channel model's :class:`~catseg.predict.Segmenter` converts RGB files so: train on
    the same grey images. uint8 stays uint8 (rounded); the mask is returned as a copy.

    Raises:
        ShapeError: On call, when the image does not have 3 channels.

    Examples:
        >>> import torch
        >>> red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)
        >>> ToGray()(red, torch.zeros(1, 1, dtype=torch.int64))[0].tolist()
        [[[76]]]
    """

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        if image.shape[0] != 3:
            raise ShapeError(f"ToGray needs a 3-channel RGB image, got {tuple(image.shape)}")
        return _back(_luma(_to_float(image))[None], image), mask.clone()
