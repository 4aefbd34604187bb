"""Shared checks and helpers of the joint transforms."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as nnf

from catseg._bounds import short
from catseg._validation import check_finite_float, check_int
from catseg.errors import ConfigError, DTypeError, ShapeError

Pair = tuple[torch.Tensor, torch.Tensor]
"""One sample as joint transforms take and return it: ``(image (C, H, W), mask (H, W))``."""


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
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ShapeError(f"image is empty: shape {tuple(image.shape)} has no pixels")
    if not (image.dtype == torch.uint8 or image.is_floating_point()):
        raise DTypeError(f"image must be float or uint8, got {image.dtype}")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise DTypeError(f"mask must be an integer label map, got {mask.dtype}")


def _check_mask_fill(mask_fill: int, mask: torch.Tensor) -> None:
    """Refuse a ``mask_fill`` the mask's integer dtype cannot hold (it would wrap around)."""
    info = torch.iinfo(mask.dtype)
    if not info.min <= mask_fill <= info.max:
        raise DTypeError(
            f"mask_fill={mask_fill} does not fit a {mask.dtype} mask (values "
            f"{info.min}..{info.max}); use a wider mask dtype or another mask_fill"
        )


def _make_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_int("seed", seed))


def _pair_of_floats(
    name: str, value: object, *, low: float | None = None, high: float | None = None
) -> tuple[float, float]:
    """A ``(min, max)`` pair of finite numbers in ``[low, high]`` with ``min <= max``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name} must be a (min, max) pair of numbers, got {value!r}")
    first = check_finite_float(f"{name}[0]", value[0], low=low, high=high)
    second = check_finite_float(f"{name}[1]", value[1], low=low, high=high)
    if first > second:
        raise ConfigError(f"{name} must be (min, max) with min <= max, got {value!r}")
    return (first, second)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _to_float(image: torch.Tensor) -> torch.Tensor:
    return image.to(torch.float32) if image.dtype == torch.uint8 else image


def _back(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dtype == torch.uint8:
        return result.round().clamp_(0, 255).to(torch.uint8)
    return result.to(like.dtype)


def _resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> Pair:
    if tuple(image.shape[1:]) == size:
        return image.clone(), mask.clone()
    resized = nnf.interpolate(_to_float(image)[None], size, mode="bilinear", antialias=True)
    labels = nnf.interpolate(mask[None, None].to(torch.float64), size=size, mode="nearest-exact")
    return _back(resized[0], image), labels[0, 0].to(mask.dtype)


class Joint(abc.ABC):
    """Base of the joint transforms: checks the pair, then :meth:`_apply`; shows settings."""

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """Transform one ``(image, mask)`` pair (new tensors; the inputs are untouched)."""
        _check_pair(image, mask)
        return self._apply(image, mask)

    @abc.abstractmethod
    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        """The transform of a checked pair."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({shown})"


class Compose(Joint):
    """Apply joint transforms one after the other.

    Args:
        transforms: Callables ``(image, mask) -> (image, mask)``.

    Raises:
        ConfigError: When ``transforms`` is not a list or an element is not callable.

    Examples:
        >>> import torch
        >>> from catseg.data.transforms import Compose, Normalize, Resize
        >>> pipeline = Compose([Resize(4), Normalize([0.5] * 3, [0.5] * 3)])
        >>> image, mask = pipeline(torch.ones(3, 8, 8), torch.zeros(8, 8, dtype=torch.int64))
        >>> tuple(image.shape), float(image.max())
        ((3, 4, 4), 1.0)
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor, torch.Tensor], Pair]]) -> None:
        if callable(transforms) or not isinstance(transforms, Sequence):
            raise ConfigError(f"transforms must be a list of callables, got {short(transforms)}")
        self.transforms = list(transforms)
        for index, transform in enumerate(self.transforms):
            if not callable(transform):
                raise ConfigError(f"transforms[{index}] is not callable: {transform!r}")

    def _apply(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        for transform in self.transforms:
            image, mask = transform(image, mask)
        return image, mask

    __call__ = _apply  # unchecked: each transform checks what it takes
