"""Joint image + mask transforms on tensors (pure PyTorch, no torchvision).

Every transform is a callable ``(image, mask) -> (image, mask)`` that works on one
sample: ``image`` is a ``(C, H, W)`` float tensor (values in [0, 1]) or uint8 tensor
(0..255), ``mask`` is an ``(H, W)`` integer label map. Geometric transforms move both
together: the image is resampled with (antialiased) bilinear interpolation, the mask
with nearest neighbour so it stays an integer map of the same dtype; pixels that come
from outside the image are filled with ``mask_fill`` (255, "ignore") in the mask.
Inputs are never modified in place, and outputs keep the input dtypes (uint8 images
are rounded back to uint8).

Randomness: each random transform takes ``seed``. ``None`` (the default) draws from
PyTorch's global generator, so ``torch.manual_seed`` and the per-worker seeding of
``DataLoader`` make runs reproducible and workers different. An ``int`` gives the
transform its own ``torch.Generator`` seeded with it (the same sequence on every run;
note that each DataLoader worker then gets a copy of the same state). A
``torch.Generator`` is used as given.

Examples:
    >>> import torch
    >>> from catseg.data import transforms as T
    >>> pipeline = T.Compose([T.RandomHorizontalFlip(seed=0), T.PadToMultiple(8)])
    >>> image, mask = pipeline(torch.rand(3, 5, 6), torch.zeros(5, 6, dtype=torch.int64))
    >>> tuple(image.shape), tuple(mask.shape), int(mask[-1, -1])
    ((3, 8, 8), (8, 8), 255)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as nnf

from catseg.errors import ConfigError, DTypeError, ShapeError

__all__ = [
    "ColorJitter",
    "Compose",
    "Normalize",
    "PadToMultiple",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "Resize",
]

Pair = tuple[torch.Tensor, torch.Tensor]


def _check_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise DTypeError(
            f"expected tensors (image, mask), got ({type(image).__name__}, {type(mask).__name__})"
        )
    if image.ndim != 3:
        raise ShapeError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    if mask.ndim != 2 or tuple(mask.shape) != tuple(image.shape[1:]):
        raise ShapeError(
            f"mask must be (H, W) = {tuple(image.shape[1:])} to match image "
            f"{tuple(image.shape)}, got {tuple(mask.shape)}"
        )
    if not (image.dtype == torch.uint8 or image.is_floating_point()):
        raise DTypeError(f"image must be float or uint8, got {image.dtype}")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise DTypeError(f"mask must be an integer label map, got {mask.dtype}")


def _make_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be None, an int or a torch.Generator, got {seed!r}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _size_pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair: tuple[int, ...] = (size, size)
    elif isinstance(size, Sequence):
        pair = tuple(size)
    else:
        raise ConfigError(f"{name} must be an int or (height, width), got {size!r}")
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"{name} must be an int or (height, width), got {size!r}")
    if min(pair) < 1:
        raise ConfigError(f"{name} must be positive, got {size!r}")
    return (pair[0], pair[1])


def _to_float(image: torch.Tensor) -> torch.Tensor:
    return image.to(torch.float32) if image.dtype == torch.uint8 else image


def _back(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dtype == torch.uint8:
        return result.round().clamp_(0, 255).to(torch.uint8)
    return result.to(like.dtype)


def _resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> Pair:
    if tuple(image.shape[1:]) == size:
        return image.clone(), mask.clone()
    source = _to_float(image)[None]
    resized = nnf.interpolate(
        source, size=size, mode="bilinear", align_corners=False, antialias=True
    )
    labels = nnf.interpolate(mask[None, None].to(torch.float64), size=size, mode="nearest-exact")
    return _back(resized[0], image), labels[0, 0].to(mask.dtype)


class Compose:
    """Apply joint transforms one after the other.

    Args:
        transforms: Callables ``(image, mask) -> (image, mask)``.

    Raises:
        ConfigError: When an element is not callable.

    Examples:
        >>> import torch
        >>> pipeline = Compose([Resize(4), Normalize([0.5] * 3, [0.5] * 3)])
        >>> image, mask = pipeline(torch.ones(3, 8, 8), torch.zeros(8, 8, dtype=torch.int64))
        >>> tuple(image.shape), float(image.max())
        ((3, 4, 4), 1.0)
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor, torch.Tensor], Pair]]) -> None:
        self.transforms = list(transforms)
        for index, transform in enumerate(self.transforms):
            if not callable(transform):
                raise ConfigError(f"transforms[{index}] is not callable: {transform!r}")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        for transform in self.transforms:
            image, mask = transform(image, mask)
        return image, mask

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Resize:
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
        self.size = _size_pair(size, "size")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        return _resize_pair(image, mask, self.size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomResizedCrop:
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
        self.size = _size_pair(size, "size")
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ConfigError(f"scale must be (min, max) with 0 < min <= max <= 1, got {scale!r}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ConfigError(f"ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
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

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        top, left, h, w = self._box(int(image.shape[1]), int(image.shape[2]))
        image = image[:, top : top + h, left : left + w]
        mask = mask[top : top + h, left : left + w]
        return _resize_pair(image, mask, self.size)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror image and mask left-right with probability ``p``.

    Args:
        p: Flip probability in [0, 1].
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When ``p`` is outside [0, 1].

    Examples:
        >>> import torch
        >>> flip = RandomHorizontalFlip(p=1.0)
        >>> image, mask = flip(torch.rand(3, 1, 3), torch.tensor([[0, 1, 2]]))
        >>> mask.tolist()
        [[2, 1, 0]]
    """

    def __init__(self, p: float = 0.5, *, seed: int | torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.generator = _make_generator(seed)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        if float(torch.rand((), generator=self.generator)) < self.p:
            return image.flip(-1), mask.flip(-1)
        return image.clone(), mask.clone()

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate by a random angle about the centre, keeping the size.

    The image is sampled bilinearly and the mask with nearest neighbour; pixels that
    come from outside the original get ``image_fill`` and ``mask_fill`` (255 = ignore).

    Args:
        degrees: Angles are drawn uniformly from ``[-degrees, degrees]`` for a number,
            or from ``(min, max)``. Positive angles turn counter-clockwise.
        image_fill: Image value outside the original (in the image's own scale).
        mask_fill: Mask value outside the original.
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When ``degrees`` is negative or ``(min, max)`` is reversed.

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
        if isinstance(degrees, tuple):
            if len(degrees) != 2 or degrees[0] > degrees[1]:
                raise ConfigError(f"degrees must be (min, max) with min <= max, got {degrees!r}")
            self.degrees = (float(degrees[0]), float(degrees[1]))
        else:
            if degrees < 0:
                raise ConfigError(f"degrees must be >= 0, got {degrees!r}")
            self.degrees = (-float(degrees), float(degrees))
        self.image_fill = float(image_fill)
        self.mask_fill = int(mask_fill)
        self.generator = _make_generator(seed)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
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

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, mask_fill={self.mask_fill})"


class ColorJitter:
    """Randomly change brightness, contrast and saturation of the image only.

    Each factor is drawn uniformly from ``[1 - amount, 1 + amount]`` and the three
    adjustments are applied in a random order: brightness scales the pixels, contrast
    blends with the mean grey level, saturation blends with the grey image
    (ITU-R 601 luma). Values are clamped to [0, 1] (0..255 for uint8). The mask is
    returned unchanged (a copy).

    Args:
        brightness: Amount in [0, 1].
        contrast: Amount in [0, 1].
        saturation: Amount in [0, 1].
        seed: ``None``, an int or a ``torch.Generator`` (see the module notes).

    Raises:
        ConfigError: When an amount is outside [0, 1].
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
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)
        self.generator = _make_generator(seed)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        if self.saturation > 0 and image.shape[0] != 3:
            raise ShapeError(f"saturation needs a 3-channel image, got {tuple(image.shape)}")
        top = 255.0 if image.dtype == torch.uint8 else 1.0
        out = _to_float(image).clone()
        order = torch.randperm(3, generator=self.generator).tolist()
        for step in order:
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

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation})"
        )


def _luma(image: torch.Tensor) -> torch.Tensor:
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


class Normalize:
    """Subtract a per-channel mean and divide by a per-channel std (float images only).

    Args:
        mean: One value per channel.
        std: One positive value per channel.

    Raises:
        ConfigError: When ``mean`` and ``std`` differ in length or a std is not positive.
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
        if len(mean) != len(std) or len(mean) == 0:
            raise ConfigError(f"mean {list(mean)} and std {list(std)} must have the same length")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {list(std)}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        if not image.is_floating_point():
            raise DTypeError(f"Normalize needs a float image in [0, 1], got {image.dtype}")
        if image.shape[0] != len(self.mean):
            raise ShapeError(
                f"image has {image.shape[0]} channels, Normalize has {len(self.mean)} means"
            )
        mean = torch.tensor(self.mean, dtype=image.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype).view(-1, 1, 1)
        return (image - mean) / std, mask.clone()

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class PadToMultiple:
    """Pad on the bottom and right so height and width are multiples of ``multiple``.

    Args:
        multiple: Positive int, e.g. the model's total stride.
        image_fill: Value of padded image pixels.
        mask_fill: Value of padded mask pixels (255 = ignore).

    Raises:
        ConfigError: When ``multiple`` is not a positive int.

    Shape:
        ``(C, H, W), (H, W) -> (C, H', W'), (H', W')``, ``H' = ceil(H / multiple) * multiple``.

    Examples:
        >>> import torch
        >>> _, mask = PadToMultiple(4)(torch.rand(3, 3, 2), torch.zeros(3, 2, dtype=torch.int64))
        >>> mask.tolist()
        [[0, 0, 255, 255], [0, 0, 255, 255], [0, 0, 255, 255], [255, 255, 255, 255]]
    """

    def __init__(self, multiple: int, *, image_fill: float = 0.0, mask_fill: int = 255) -> None:
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ConfigError(f"multiple must be a positive int, got {multiple!r}")
        self.multiple = multiple
        self.image_fill = float(image_fill)
        self.mask_fill = int(mask_fill)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        height, width = int(image.shape[1]), int(image.shape[2])
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        padded = nnf.pad(image, (0, pad_w, 0, pad_h), value=self.image_fill)
        labels = nnf.pad(mask, (0, pad_w, 0, pad_h), value=self.mask_fill)
        return padded, labels

    def __repr__(self) -> str:
        return f"PadToMultiple(multiple={self.multiple}, mask_fill={self.mask_fill})"
