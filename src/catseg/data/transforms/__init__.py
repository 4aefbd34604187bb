"""Joint image + mask transforms on tensors (pure PyTorch, no torchvision).

Every transform is a callable ``(image, mask) -> (image, mask)`` that works on one
sample: ``image`` is a ``(C, H, W)`` float tensor (values in [0, 1]) or uint8 tensor
(0..255), ``mask`` is an ``(H, W)`` integer label map. Geometric transforms move both:
the image is resampled with (antialiased) bilinear interpolation, the mask with nearest
neighbour; mask pixels from outside the image get ``mask_fill`` (255, "ignore").
Inputs are never modified in place; outputs keep the input dtypes (uint8 rounded).

Randomness: each random transform takes ``seed``. ``None`` (the default) draws from
PyTorch's global generator, so ``torch.manual_seed`` and the per-worker seeding of
``DataLoader`` make runs reproducible and workers different. An ``int`` gives the
transform its own ``torch.Generator`` (the same sequence on every run, and in every
DataLoader worker). A ``torch.Generator`` is used as given.

Examples:
    >>> import torch
    >>> from catseg.data import transforms as T
    >>> pipeline = T.Compose([T.RandomHorizontalFlip(seed=0), T.PadToMultiple(8)])
    >>> image, mask = pipeline(torch.rand(3, 5, 6), torch.zeros(5, 6, dtype=torch.int64))
    >>> tuple(image.shape), tuple(mask.shape), int(mask[-1, -1])
    ((3, 8, 8), (8, 8), 255)
"""

from __future__ import annotations

from catseg.data.transforms._common import Compose, Pair
from catseg.data.transforms.geometric import (
    PadToMultiple,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    Resize,
)
from catseg.data.transforms.photometric import ColorJitter, Normalize, ToGray

__all__ = [
    "ColorJitter",
    "Compose",
    "Normalize",
    "PadToMultiple",
    "Pair",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "Resize",
    "ToGray",
]
