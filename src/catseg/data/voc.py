"""Pascal-VOC-style segmentation folders as a lazy PyTorch dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from catseg._validation import check_bool, check_choice, check_class_names, check_path
from catseg.data._io import read_rgb
from catseg.data._masks import align_mask, read_mask
from catseg.data._samples import (
    IMAGE_SUFFIXES,
    FolderDataset,
    JointTransform,
    checked_index,
    list_files,
    read_lines,
    read_split,
    resize_sample,
)
from catseg.errors import ConfigError, DataError, MissingFileError

__all__ = ["VOCSegmentationDataset"]

_INVALID = -1


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "VOCdevkit" / "VOC2012", root / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    if not root.exists():
        raise MissingFileError(f"dataset root not found: {root}")
    raise MissingFileError(
        f"{root} has no JPEGImages folder (looked in {root}, {root / 'VOCdevkit' / 'VOC2012'} "
        f"and {root / 'VOC2012'}); expected a VOC layout with JPEGImages/ and "
        "SegmentationClassPNG/ or SegmentationClass/"
    )


class VOCSegmentationDataset(FolderDataset):
    """Images and class-index masks from a Pascal VOC style folder, loaded lazily.

    ``root`` is either a flat folder (labelme2voc / :func:`labelme_to_voc` output,
    :func:`make_synthetic_voc`) or a VOC devkit: the folder holding ``JPEGImages`` is
    looked up as ``root``, ``root/VOCdevkit/VOC2012`` or ``root/VOC2012``. Masks are
    read from ``SegmentationClassPNG`` or, when absent, ``SegmentationClass``.
    Hidden files, ``Thumbs.db``, ``*.json`` and other non-image files are ignored.

    Items are decoded on access. With ``image_size``, the image is resized with
    antialiased bilinear filtering (JPEGs decoded at a reduced draft scale first) and
    the mask with nearest neighbour. Masks keep 255 (ignore).

    Args:
        root: Dataset folder (see above).
        split: Name of a split file ``ImageSets/Segmentation/<split>.txt`` (one id per
            line); ``None`` takes every image that has a mask, in sorted id order.
        image_size: Output ``(height, width)``, or an int for a square; ``None`` keeps
            each image's own size.
        transforms: Optional joint callable ``(image, mask) -> (image, mask)`` applied to
            the tensors last, e.g. from :mod:`catseg.data.transforms`.
        classes: Optional subset of class names to keep, e.g. ``["cat"]``: those become
            ids 1, 2, ... in the given order, every other class becomes 0 (background)
            and 255 stays 255. A leading background name (``class_names[0]``) is allowed
            and ignored. Needs ``class_names.txt``.
        cache: Keep each decoded (and resized) item in memory as uint8 after its first
            access (per DataLoader worker: combine with ``persistent_workers=True``).
        on_error: ``"raise"`` stops on the first unreadable item. ``"skip"`` drops ids
            whose image or mask file is missing and, when an item fails to load, returns
            the next readable item instead (wrapping around); skipped ids are in
            :attr:`skipped_ids` (per process: DataLoader workers keep their own record).
        image_dtype: ``"float32"`` (in [0, 1]) or ``"uint8"`` (0..255, 4× smaller
            batches; the training loop converts them).
        mask_dtype: ``"int64"`` or ``"uint8"`` (8× smaller; the training loop widens it).

    Attributes:
        root: The folder holding ``JPEGImages``.
        split: The split name or ``None``.
        ids: Sample ids in item order.
        class_names: Class names in id order (from ``class_names.txt``, reduced by
            ``classes``); empty when the file is absent and ``classes`` is not given.
        image_size: ``(height, width)`` or ``None``.
        mask_dir: The mask folder in use.

    Raises:
        MissingFileError: When the root, a folder or the split file is missing,
            ``split=None`` finds no image with a mask (e.g. JPEG masks), or (with
            ``on_error="raise"``) split ids lack an image or a mask (the first few listed).
        ConfigError: When an argument is invalid or a name in ``classes`` is unknown.
        DataError: On access, when a file is unreadable, an image and its mask differ
            in size (both files and sizes named), or a mask holds an id outside
            ``class_names`` (other than 255).

    Shape:
        Items are ``image (3, H, W)`` float32 in [0, 1] (or uint8) and ``mask (H, W)``
        int64 (or uint8), with ``(H, W) = image_size`` when given.

    Examples:
        >>> import tempfile
        >>> from catseg.data.synthetic import make_synthetic_voc
        >>> root = make_synthetic_voc(tempfile.mkdtemp(), n=4, size=32)
        >>> dataset = VOCSegmentationDataset(root, "trainval", image_dtype="uint8")
        >>> len(dataset), dataset[0][0].dtype
        (4, torch.uint8)
        >>> repr(dataset).startswith("VOCSegmentationDataset(root=")
        True
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        *,
        image_size: int | tuple[int, int] | None = None,
        transforms: JointTransform | None = None,
        classes: Sequence[str] | None = None,
        cache: bool = False,
        on_error: Literal["raise", "skip"] = "raise",
        image_dtype: Literal["float32", "uint8"] = "float32",
        mask_dtype: Literal["int64", "uint8"] = "int64",
    ) -> None:
        self.on_error = check_choice("on_error", on_error, ("raise", "skip"))
        super().__init__(split, image_size, transforms, image_dtype, mask_dtype)
        self.cache = check_bool("cache", cache)
        self.root = _find_root(check_path("root", root))
        self.image_dir = self.root / "JPEGImages"
        found = [self.root / n for n in ("SegmentationClassPNG", "SegmentationClass")]
        found = [folder for folder in found if folder.is_dir()]
        if not found:
            raise MissingFileError(
                f"{self.root} has no mask folder; expected SegmentationClassPNG/ or "
                "SegmentationClass/"
            )
        self.mask_dir = found[0]
        images = list_files(self.image_dir, IMAGE_SUFFIXES)
        masks = list_files(self.mask_dir, (".png",))
        self._skipped: list[str] = []
        if split is None:
            ids = sorted(set(images) & set(masks))
            if not ids:
                raise MissingFileError(self._nothing_matches(len(images), len(masks)))
        else:
            ids = read_split(self.root, split, images)
            for what, known in (("image", images), ("mask", masks)):
                # an id without its image is reported (or skipped) once, as image-less
                absent = [i for i in ids if i not in known and (what == "image" or i in images)]
                if absent and self.on_error == "raise":
                    more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
                    raise MissingFileError(
                        f"{len(absent)} id(s) of split {split!r} have no {what} in "
                        f"{self.image_dir if what == 'image' else self.mask_dir}: "
                        f"{', '.join(absent[:5])}{more}"
                    )
                self._skipped += absent
            dropped = set(self._skipped)
            ids = [i for i in ids if i not in dropped]
        self.ids: list[str] = ids
        self._images = [images[i] for i in ids]
        self._masks = [masks[i] for i in ids]
        self._cache: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = {}
        names_file = self.root / "class_names.txt"
        names = read_lines(names_file) if names_file.is_file() else []
        self._lut, self.class_names = self._build_lut(names, classes)

    def _nothing_matches(self, n_images: int, n_masks: int) -> str:
        suffixes = {p.suffix.lower() for p in self.mask_dir.iterdir() if p.is_file()}
        others = sorted(suffixes - {".png", ""})
        hint = (
            f"{self.mask_dir.name}/ holds {', '.join(others)} files, but masks must be PNG "
            "(lossless) files named like their image"
            if others
            else "masks must be PNG files named like their image (cat_1.jpg -> cat_1.png)"
        )
        return (
            f"{self.root} has no image with a mask: {n_images} image(s) in "
            f"{self.image_dir.name}/, {n_masks} PNG mask(s) in {self.mask_dir.name}/, "
            f"none with matching names; {hint}"
        )

    def _build_lut(
        self, names: list[str], classes: Sequence[str] | None
    ) -> tuple[npt.NDArray[np.int64] | None, list[str]]:
        if classes is None and not names:
            return None, []
        lut = np.full(256, _INVALID, dtype=np.int64)
        lut[255] = 255
        if classes is None:
            lut[: len(names)] = np.arange(len(names))
            return lut, names
        classes = check_class_names("classes", classes)
        if not names:
            raise ConfigError(
                f"classes={list(classes)!r} needs {self.root / 'class_names.txt'} to map "
                "names to mask ids, but the file is missing"
            )
        keep = list(classes[1:] if classes and classes[0] == names[0] else classes)
        unknown = [c for c in keep if c not in names[1:]]
        if unknown or not keep or len(set(keep)) != len(keep):
            raise ConfigError(
                f"classes={list(classes)!r} must name distinct foreground classes from "
                f"{self.root / 'class_names.txt'}: {names[1:]}"
                + (f"; unknown: {unknown}" if unknown else "")
            )
        lut[: len(names)] = 0
        for new_id, name in enumerate(keep, start=1):
            lut[names.index(name)] = new_id
        return lut, [names[0], *keep]

    @property
    def skipped_ids(self) -> tuple[str, ...]:
        """Ids skipped so far in this process (``on_error="skip"``), in skip order."""
        return tuple(self._skipped)

    @property
    def num_skipped(self) -> int:
        """Number of ids skipped so far in this process."""
        return len(self._skipped)

    def __len__(self) -> int:
        return len(self.ids)

    def _repr_fields(self) -> dict[str, object]:
        return {"mask_dir": self.mask_dir.name, "classes": self.class_names}

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._cache.get(index)
        if cached is None:
            image_path, mask_path = self._images[index], self._masks[index]
            image, decoded = read_rgb(image_path, str(image_path), self.image_size)
            mask = align_mask(
                read_mask(mask_path), decoded.orientation, decoded.size, image_path, mask_path
            )
            cached = resize_sample(image, mask, self.image_size)
            if self.cache:
                self._cache[index] = cached
        pixels, mask = cached
        if self._lut is not None:
            mapped = self._lut[mask]
            if (mapped == _INVALID).any():
                bad = sorted({int(v) for v in np.unique(mask[mapped == _INVALID])})
                raise DataError(
                    f"mask {self._masks[index]} holds ids {bad[:8]} outside class_names "
                    f"({len(self.class_names)} classes) and 255"
                )
            return self._tensors(pixels, mapped)
        return self._tensors(pixels, mask)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = checked_index(index, len(self))
        if self.on_error == "raise":
            return self._load(index)
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            try:
                return self._load(current)
            except (DataError, MissingFileError):
                self._skipped.append(self.ids[current])
        raise DataError(f"every item of {self!r} failed to load (on_error='skip')")
