"""Geometric joint transforms: image and mask move together."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as nnf

from catseg._validation import (
    check_finite_float,
    check_int,
    check_positive_int,
    check_probability,
    check_size,
)
from catseg.data.transforms._common import (
    Joint,
    Pair,
    _back,
    _check_mask_fill,
    _make_generator,
    _pair_of_floats,
    _resize_pair,
    _to_float,
    _uniform,
)
from catseg.errors import ConfigError

__all__ = ["PadToMultiple", "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation", "Resize"]


class Resize(Joint):
    """Resize image (antialiased bilinear) and mask (nearest) to a fixed size.

    Args:
        size: Output ``(height, width)``, or an int for a square.

    Raises:
        ConfigError: When ``size`` is not a positive int or pair.

    Shape:
        ``(C, H, W), (H, W) -> (C, h, w), (h, w)`` with ``(h, w) = size``.

    Examples:
        >>> import torch
        >>> mask = torch.tensor([[0, 1], [2, 255]])
        >>> _, out = Resize((4, 4))(torch.rand(3, 2, 2), mask)
        >>> out.tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = check_size("size", size)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        return _resize_pair(image, mask, self.size)


class RandomResizedCrop(Joint):
    """Crop a random area and aspect ratio, then resize it to ``size``.

    The crop's area is drawn uniformly from ``scale`` × the image area and its aspect
    ratio (width / height) log-uniformly from ``ratio``; up to 10 draws are tried, then
    the largest centred crop within ``ratio`` is used.

    Args:
        size: Output ``(height, width)`` or int.
        scale: ``(min, max)`` share of the image area, ``0 < min <= max <= 1``.
        ratio: ``(min, max)`` aspect ratio, ``0 < min <= max``.
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When an argument is out of range (the value is named).

    Shape:
        ``(C, H, W), (H, W) -> (C, h, w), (h, w)``.

    Examples:
        >>> import torch
        >>> crop = RandomResizedCrop(8, scale=(0.5, 1.0), seed=0)
        >>> image, mask = crop(torch.rand(3, 20, 30), torch.ones(20, 30, dtype=torch.int64))
        >>> tuple(image.shape), mask.unique().tolist()
        ((3, 8, 8), [1])
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        seed: int | torch.Generator | None = None,
    ) -> None:
        self.size = check_size("size", size)
        self.scale = _pair_of_floats("scale", scale, low=0.0, high=1.0)
        self.ratio = _pair_of_floats("ratio", ratio, low=0.0)
        if self.scale[0] == 0.0 or self.ratio[0] == 0.0:
            name, value = ("scale", scale) if self.scale[0] == 0.0 else ("ratio", ratio)
            raise ConfigError(f"{name} must be (min, max) with 0 < min <= max, got {value!r}")
        self.generator = _make_generator(seed)

    def _box(self, height: int, width: int) -> tuple[int, int, int, int]:
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], self.generator)
            aspect = math.exp(_uniform(log_lo, log_hi, self.generator))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=self.generator))
                left = int(torch.randint(0, width - w + 1, (), generator=self.generator))
                return top, left, h, w
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, max(1, round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            h, w = height, max(1, round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        top, left, h, w = self._box(int(image.shape[1]), int(image.shape[2]))
        rows, cols = slice(top, top + h), slice(left, left + w)
        return _resize_pair(image[:, rows, cols], mask[rows, cols], self.size)


class RandomHorizontalFlip(Joint):
    """Mirror image and mask left-right with probability ``p``.

    Args:
        p: Flip probability in [0, 1].
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When ``p`` is not a number in [0, 1].

    Examples:
        >>> import torch
        >>> flip = RandomHorizontalFlip(p=1.0)
        >>> image, mask = flip(torch.rand(3, 1, 3), torch.tensor([[0, 1, 2]]))
        >>> mask.tolist()
        [[2, 1, 0]]
    """

    def __init__(self, p: float = 0.5, *, seed: int | torch.Generator | None = None) -> None:
        self.p = check_probability("p", p, open_interval=False)
        self.generator = _make_generator(seed)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        if float(torch.rand((), generator=self.generator)) < self.p:
            return image.flip(-1), mask.flip(-1)
        return image.clone(), mask.clone()


class RandomRotation(Joint):
    """Rotate by a random angle about the centre, keeping the size.

    The image is sampled bilinearly and the mask with nearest neighbour; pixels from
    outside the original get ``image_fill`` and ``mask_fill``.

    Args:
        degrees: Angles are drawn uniformly from ``[-degrees, degrees]`` for a number,
            or from ``(min, max)``. Positive angles turn counter-clockwise.
        image_fill: Image value outside the original (in the image's own scale).
        mask_fill: Mask value outside the original.
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When ``degrees`` is negative, not finite or ``(min, max)`` is reversed,
            ``image_fill`` is not a finite number or ``mask_fill`` not an int.
        DTypeError: When called on a mask whose dtype cannot hold ``mask_fill``.

    Examples:
        >>> import torch
        >>> mask = torch.zeros(5, 5, dtype=torch.int64)
        >>> mask[2, 3] = 1
        >>> _, out = RandomRotation((90.0, 90.0))(torch.rand(3, 5, 5), mask)
        >>> (out == 1).nonzero().tolist()
        [[1, 2]]
        >>> _, out = RandomRotation((45.0, 45.0))(torch.rand(3, 5, 5), mask)
        >>> int(out[0, 0])
        255
    """

    def __init__(
        self,
        degrees: float | tuple[float, float],
        *,
        image_fill: float = 0.0,
        mask_fill: int = 255,
        seed: int | torch.Generator | None = None,
    ) -> None:
        if isinstance(degrees, Sequence) and not isinstance(degrees, (str, bytes)):
            self.degrees = _pair_of_floats("degrees", degrees)
        else:
            limit = check_finite_float("degrees", degrees, low=0.0)
            self.degrees = (-limit, limit)
        self.image_fill = check_finite_float("image_fill", image_fill)
        self.mask_fill = check_int("mask_fill", mask_fill)
        self.generator = _make_generator(seed)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        _check_mask_fill(self.mask_fill, mask)
        angle = math.radians(_uniform(self.degrees[0], self.degrees[1], self.generator))
        height, width = int(image.shape[1]), int(image.shape[2])
        cos, sin = math.cos(angle), math.sin(angle)
        # Output pixel (x, y) in pixel units samples input R(-angle) (x, y); the grid works
        # in normalised units, so scale by the aspect ratio around the rotation.
        theta = torch.tensor(
            [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
            dtype=torch.float64,
        )
        grid = nnf.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
        source = _to_float(image)[None].to(torch.float64)
        ones = torch.ones(1, 1, height, width, dtype=torch.float64)
        rotated = nnf.grid_sample(source, grid, mode="bilinear", align_corners=False)
        coverage = nnf.grid_sample(ones, grid, mode="bilinear", align_corners=False)
        rotated = rotated + (1.0 - coverage) * self.image_fill
        labels = nnf.grid_sample(
            mask[None, None].to(torch.float64), grid, mode="nearest", align_corners=False
        )
        inside = nnf.grid_sample(ones, grid, mode="nearest", align_corners=False)
        labels = torch.where(inside > 0.5, labels, torch.full_like(labels, self.mask_fill))
        return _back(rotated[0], image), labels[0, 0].round().to(mask.dtype)


class PadToMultiple(Joint):
    """Pad on the bottom and right so height and width are multiples of ``multiple``.

    Args:
        multiple: Positive int, e.g. the model's total stride.
        image_fill: Value of padded image pixels.
        mask_fill: Value of padded mask pixels (255 = ignore).

    Raises:
        ConfigError: When ``multiple`` is not a positive int, ``image_fill`` is not a
            finite number or ``mask_fill`` not an int.
        DTypeError: When called on a mask whose dtype cannot hold ``mask_fill``.

    Shape:
        ``(C, H, W), (H, W) -> (C, H', W'), (H', W')``, ``H' = ceil(H / multiple) * multiple``.

    Examples:
        >>> import torch
        >>> _, mask = PadToMultiple(4)(torch.rand(3, 3, 2), torch.zeros(3, 2, dtype=torch.int64))
        >>> mask.tolist()
        [[0, 0, 255, 255], [0, 0, 255, 255], [0, 0, 255, 255], [255, 255, 255, 255]]
    """

    def __init__(self, multiple: int, *, image_fill: float = 0.0, mask_fill: int = 255) -> None:
        self.multiple = check_positive_int("multiple", multiple)
        self.image_fill = check_finite_float("image_fill", image_fill)
        self.mask_fill = check_int("mask_fill", mask_fill)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        _check_mask_fill(self.mask_fill, mask)
        pad = (0, -int(image.shape[2]) % self.multiple, 0, -int(image.shape[1]) % self.multiple)
        return nnf.pad(image, pad, value=self.image_fill), nnf.pad(mask, pad, value=self.mask_fill)
