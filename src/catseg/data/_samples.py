"""What the folder datasets share: their options, split files, resizing and tensors."""

from __future__ import annotations

import abc
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.utils.data import Dataset

from catseg._validation import check_callable, check_choice, check_optional_size
from catseg.errors import ConfigError, IndexOutOfRangeError, MissingFileError

#: A joint transform: ``(image, mask) -> (image, mask)`` on tensors.
JointTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: File name endings (lower case) recognised as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def resize_sample(
    image: Image.Image, mask: npt.NDArray[np.uint8], size: tuple[int, int] | None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Resize an RGB image (antialiased bilinear) and its mask (nearest) to ``size``.

    The mask is ``(H, W)`` or ``(K, H, W)`` (each layer alike); ``size=None`` keeps both.

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
    return np.asarray(image, dtype=np.uint8), mask


def list_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map stem → path for visible files with one of ``suffixes`` (stray files ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(".") and path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file (a leading byte-order mark accepted), stripped."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [line.strip() for line in lines if line.strip()]


def read_split(root: Path, split: str, known: Container[str]) -> list[str]:
    """Ids of ``ImageSets/Segmentation/<split>.txt``, one per line.

    A whole line is the id when it names a known image (ids may hold spaces, as in
    ``labelme_to_voc`` output), else its first field (VOC's ``<id> <flag>`` lines).
    """
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise MissingFileError(
            f"split file not found: {path} (available splits: {available or 'none'})"
        )
    return [line if line in known else line.split()[0] for line in read_lines(path)]


def write_splits(
    split_dir: Path, ids: Sequence[str], shuffled: Sequence[str], val_fraction: float
) -> None:
    """Write ``train.txt``, ``val.txt`` and ``trainval.txt`` (sorted ids, one per line).

    The first ``round(n * val_fraction)`` of ``shuffled`` go to ``val`` (at least one,
    and one left for ``train``, when ``n >= 2`` and the fraction is positive).
    """
    n_val = round(len(ids) * val_fraction)
    if val_fraction > 0.0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    subsets = {"train": shuffled[n_val:], "val": shuffled[:n_val], "trainval": ids}
    for name, subset in subsets.items():
        (split_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in sorted(subset)))


def checked_index(index: int, size: int) -> int:
    """``index`` (negative counts from the end) as an item number in ``[0, size)``.

    Raises:
        IndexOutOfRangeError: An ``IndexError``, on which the sequence protocol ends
            iteration.
    """
    if not -size <= index < size:
        raise IndexOutOfRangeError(f"index {index} out of range for a dataset of {size} items")
    return index % size


class FolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]], abc.ABC):
    """Base of the folder datasets: the options they share, their repr, their tensors.

    A subclass calls this constructor (arguments checked before reading files), sets ``root``,
    may add repr fields (:meth:`_repr_fields`) and ends ``__getitem__`` with :meth:`_tensors`.

    Raises:
        ConfigError: When an argument is invalid (the message names it).

    Examples:
        >>> import numpy as np
        >>> class Tiny(FolderDataset):
        ...     root = Path("r")
        ...     def __len__(self) -> int:
        ...         return 1
        >>> tiny = Tiny(None, 2, None, "uint8", "int64")
        >>> image, mask = tiny._tensors(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8))
        >>> tiny, tuple(image.shape), image.dtype, mask.dtype
        (Tiny(root='r', split=None, len=1, image_size=(2, 2)), (3, 2, 2), torch.uint8, torch.int64)
    """

    root: Path

    def __init__(
        self,
        split: str | None,
        image_size: int | tuple[int, int] | None,
        transforms: JointTransform | None,
        image_dtype: Literal["float32", "uint8"],
        mask_dtype: Literal["int64", "uint8"],
    ) -> None:
        self.image_dtype = check_choice("image_dtype", image_dtype, ("float32", "uint8"))
        self.mask_dtype = check_choice("mask_dtype", mask_dtype, ("int64", "uint8"))
        self.transforms = check_callable("transforms", transforms, optional=True)
        if split is not None and not isinstance(split, str):
            raise ConfigError(f"split must be a split name (str) or None, got {split!r}")
        self.split = split
        self.image_size = check_optional_size("image_size", image_size)

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def _repr_fields(self) -> dict[str, object]:
        """The fields the repr shows after ``root``, ``split``, ``len`` and ``image_size``."""
        return {}

    def __repr__(self) -> str:
        fields: dict[str, object] = {"root": str(self.root), "split": self.split, "len": len(self)}
        fields |= {"image_size": self.image_size, **self._repr_fields()}
        shown = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return f"{type(self).__name__}({shown})"

    def _tensors(
        self, pixels: npt.NDArray[np.uint8], mask: npt.NDArray[Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The item: new tensors (never views of ``pixels`` or ``mask``), then the transforms."""
        image = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
        if self.image_dtype == "float32":
            image = image.to(torch.float32).div_(255.0)
        dtype = np.int64 if self.mask_dtype == "int64" else np.uint8
        target = torch.from_numpy(np.array(mask, dtype=dtype))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
