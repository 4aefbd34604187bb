"""Sample helpers shared by the dataset classes: size arguments, resizing, tensors.

:class:`FolderDataset` is the base of the folder datasets (VOC, multilabel, labelme): it
checks and holds the sample options they share and turns a decoded sample into tensors.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.utils.data import Dataset

from catseg._validation import check_choice, check_optional_size
from catseg.errors import ConfigError, IndexOutOfRangeError

__all__ = [
    "FolderDataset",
    "JointTransform",
    "check_dtypes",
    "check_split",
    "check_transforms",
    "checked_index",
    "image_to_tensor",
    "list_files",
    "mask_to_tensor",
    "parse_image_size",
    "resize_sample",
]

#: A joint transform: ``(image, mask) -> (image, mask)`` on tensors.
JointTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def parse_image_size(
    value: int | Sequence[int] | None, name: str = "image_size"
) -> tuple[int, int] | None:
    """Normalise an image size argument to ``(height, width)``.

    Args:
        value: ``None``, an int (square) or a ``(height, width)`` pair of positive ints.
        name: Argument name used in the error message.

    Returns:
        ``None`` or ``(height, width)``.

    Raises:
        ConfigError: When the value is not a positive int or a pair of them (the wording
            of :func:`catseg._validation.check_size`).

    Examples:
        >>> parse_image_size(32), parse_image_size((24, 40)), parse_image_size(None)
        ((32, 32), (24, 40), None)
    """
    return check_optional_size(name, value)


def resize_sample(
    image: Image.Image, mask: npt.NDArray[np.uint8], size: tuple[int, int] | None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Resize an RGB image (antialiased bilinear) and its mask (nearest) to ``size``.

    Args:
        image: RGB Pillow image.
        mask: ``(H, W)`` uint8 label map, or ``(K, H, W)`` uint8 layers (one per label,
            each resized the same way).
        size: Target ``(height, width)``; ``None`` keeps the sizes.

    Returns:
        ``(pixels (h, w, 3) uint8, mask (h, w) or (K, h, w) uint8)``.

    Examples:
        >>> import numpy as np
        >>> from PIL import Image
        >>> mask = np.array([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.uint8)
        >>> pixels, small = resize_sample(Image.new("RGB", (4, 2)), mask, (1, 2))
        >>> pixels.shape, small.tolist()
        ((1, 2, 3), [[1, 0]])
    """
    if size is not None:
        height, width = size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        if mask.shape[-2:] != (height, width):
            layers = [
                np.array(Image.fromarray(layer).resize((width, height), Image.Resampling.NEAREST))
                for layer in mask.reshape(-1, *mask.shape[-2:])
            ]
            mask = layers[0] if mask.ndim == 2 else np.stack(layers)
    return np.array(image, dtype=np.uint8), mask


def list_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map stem → path for visible files with one of ``suffixes`` (stray files ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in suffixes and path.stem not in found:
            found[path.stem] = path
    return found


def image_to_tensor(
    pixels: npt.NDArray[np.uint8], image_dtype: Literal["float32", "uint8"]
) -> torch.Tensor:
    """Turn ``(H, W, 3)`` uint8 pixels into a ``(3, H, W)`` tensor (float32 in [0, 1] or uint8).

    Args:
        pixels: ``(H, W, 3)`` uint8 array.
        image_dtype: ``"float32"`` (divided by 255) or ``"uint8"``.

    Returns:
        A new contiguous ``(3, H, W)`` tensor that shares no memory with ``pixels``.

    Examples:
        >>> import numpy as np
        >>> image_to_tensor(np.full((1, 1, 3), 255, dtype=np.uint8), "float32").flatten().tolist()
        [1.0, 1.0, 1.0]
    """
    # Always a copy: for a 1-pixel-wide image the transpose is already contiguous, and a
    # view would let an in-place transform write into the caller's (or the cache's) array.
    image = torch.from_numpy(np.array(pixels.transpose(2, 0, 1), order="C", copy=True))
    if image_dtype == "float32":
        return image.to(torch.float32).div_(255.0)
    return image


def mask_to_tensor(
    mask: npt.NDArray[Any], mask_dtype: Literal["int64", "uint8"], *, owned: bool = False
) -> torch.Tensor:
    """Turn an ``(H, W)`` label map with values in 0..255 into an int64 or uint8 tensor.

    Args:
        mask: ``(H, W)`` integer array whose values fit in 0..255 (255 = ignore).
        mask_dtype: ``"int64"`` (what losses index with) or ``"uint8"`` (8× smaller
            batches; the training loop widens them on the device).
        owned: ``True`` when ``mask`` is a fresh array that nobody else holds (such as
            the result of a class mapping): then it is used as it is when it already has
            the wanted dtype, instead of being copied.

    Returns:
        An ``(H, W)`` tensor. With ``owned=False`` (the default) it shares no memory with
        ``mask``, so a cached array can never be changed through it.

    Examples:
        >>> import numpy as np
        >>> mask_to_tensor(np.array([[0, 255]], dtype=np.uint8), "int64")
        tensor([[  0, 255]])
        >>> mask_to_tensor(np.array([[1, 255]]), "uint8").dtype
        torch.uint8
        >>> fresh = np.array([[1, 0]], dtype=np.int64)
        >>> bool(np.shares_memory(mask_to_tensor(fresh, "int64", owned=True).numpy(), fresh))
        True
    """
    target = np.int64 if mask_dtype == "int64" else np.uint8
    if owned:
        return torch.from_numpy(np.ascontiguousarray(mask, dtype=target))
    return torch.from_numpy(np.array(mask, dtype=target, copy=True))


def check_dtypes(image_dtype: object, mask_dtype: object) -> None:
    """Refuse unknown ``image_dtype`` / ``mask_dtype`` values with a message naming them.

    Raises:
        ConfigError: When either value is not one of the documented choices.
    """
    check_choice("image_dtype", image_dtype, ("float32", "uint8"))
    check_choice("mask_dtype", mask_dtype, ("int64", "uint8"))


def check_transforms(transforms: object) -> None:
    """Refuse a ``transforms`` argument that is neither ``None`` nor callable.

    Raises:
        ConfigError: Naming the type received.
    """
    if transforms is not None and not callable(transforms):
        raise ConfigError(f"transforms must be callable, got {type(transforms).__name__}")


def check_split(split: object) -> None:
    """Refuse a ``split`` argument that is neither ``None`` nor a split name.

    Raises:
        ConfigError: Naming the value received.
    """
    if split is not None and not isinstance(split, str):
        raise ConfigError(f"split must be a split name (str) or None, got {split!r}")


def checked_index(index: int, size: int) -> int:
    """``index`` (Python-style, negative counts from the end) as an item number in ``[0, size)``.

    Raises:
        IndexOutOfRangeError: When ``index`` is out of range; it is an ``IndexError``, on
            which the sequence protocol ends iteration.

    Examples:
        >>> checked_index(-1, 3)
        2
    """
    if not -size <= index < size:
        raise IndexOutOfRangeError(f"index {index} out of range for a dataset of {size} items")
    return index % size


class FolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]], abc.ABC):
    """Base of the folder datasets: the sample options they share, their repr, their tensors.

    A subclass calls this constructor with its ``image_size``, ``transforms``,
    ``image_dtype`` and ``mask_dtype`` arguments (checked here, before any file is read),
    names its repr fields in :meth:`_repr_fields` and ends ``__getitem__`` with
    :meth:`_tensors`.

    Args:
        image_size: Output ``(height, width)``, an int for a square, or ``None``.
        transforms: ``None`` or a joint ``(image, mask) -> (image, mask)`` callable.
        image_dtype: ``"float32"`` or ``"uint8"``.
        mask_dtype: ``"int64"`` or ``"uint8"``; checked only, a subclass keeps it (or
            its fixed dtype) itself.

    Raises:
        ConfigError: When an argument is invalid (the message names it).

    Examples:
        >>> import numpy as np
        >>> class Tiny(FolderDataset):
        ...     def _repr_fields(self) -> dict[str, object]:
        ...         return {"len": 1, "image_size": self.image_size}
        >>> tiny = Tiny(2, None, "uint8", "int64")
        >>> tiny
        Tiny(len=1, image_size=(2, 2))
        >>> image, mask = tiny._tensors(
        ...     np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8), "int64", owned=True
        ... )
        >>> tuple(image.shape), image.dtype, mask.dtype
        ((3, 2, 2), torch.uint8, torch.int64)
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] | None,
        transforms: JointTransform | None,
        image_dtype: Literal["float32", "uint8"],
        mask_dtype: Literal["int64", "uint8"],
    ) -> None:
        check_dtypes(image_dtype, mask_dtype)
        check_transforms(transforms)
        self.image_size = parse_image_size(image_size)
        self.transforms = transforms
        self.image_dtype: Literal["float32", "uint8"] = image_dtype

    @abc.abstractmethod
    def _repr_fields(self) -> dict[str, object]:
        """The ``name: value`` pairs the repr shows, in order (values are repr'd)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"

    def _tensors(
        self,
        pixels: npt.NDArray[np.uint8],
        mask: npt.NDArray[Any],
        mask_dtype: Literal["int64", "uint8"],
        *,
        owned: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The item of ``(H, W, 3)`` pixels and a mask: tensors, then the joint transforms.

        ``owned`` is passed to :func:`mask_to_tensor` (``True`` for a mask read afresh).
        """
        image = image_to_tensor(pixels, self.image_dtype)
        target = mask_to_tensor(mask, mask_dtype, owned=owned)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
