"""Multilabel segmentation data: one mask per label, so a pixel may carry several labels.

The folder convention (a VOC layout with one mask folder per label)::

    root/
      JPEGImages/<id>.jpg (or .png)        the images
      SegmentationLabels/<label>/<id>.png  one grayscale/palette PNG per label and image:
                                           0 = absent, 1 = present, 255 = ignore
      labels.txt                           label names in channel order, one per line
      ImageSets/Segmentation/<split>.txt   optional splits, one id per line

Every image needs a mask in every label's folder (all zero where the label is absent).
:class:`VOCMultilabelDataset` reads it into multi-hot ``(K, H, W)`` uint8 targets (255
kept), the targets of ``DiceLoss(mode="multilabel")`` and ``MeanIoU(K, mode="multilabel")``;
:func:`make_synthetic_multilabel` writes a small learnable dataset in it.

Examples:
    >>> import tempfile
    >>> root = make_synthetic_multilabel(tempfile.mkdtemp(), n=4, size=32)
    >>> sorted(p.name for p in (root / "SegmentationLabels").iterdir())
    ['bar', 'disc']
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageDraw

from catseg._validation import check_path
from catseg.data._io import read_rgb
from catseg.data._masks import read_mask
from catseg.data._samples import (
    IMAGE_SUFFIXES,
    FolderDataset,
    JointTransform,
    checked_index,
    list_files,
    read_lines,
    read_split,
    resize_sample,
    write_splits,
)
from catseg.data.synthetic import checked_args, void_band
from catseg.errors import DataError, MissingFileError

__all__ = ["MULTILABEL_CLASS_NAMES", "VOCMultilabelDataset", "make_synthetic_multilabel"]

#: Label names of :func:`make_synthetic_multilabel`, in channel order.
MULTILABEL_CLASS_NAMES: tuple[str, ...] = ("disc", "bar")

LABELS_FOLDER = "SegmentationLabels"  # one sub-folder of masks per label


class VOCMultilabelDataset(FolderDataset):
    """Images and multi-hot ``(K, H, W)`` masks from a one-mask-per-label folder.

    See the module docstring for the layout. Items are read on access; masks are resized
    with nearest neighbour, so 0, 1 and 255 stay exact.

    Args:
        root: Dataset folder holding ``JPEGImages``, ``SegmentationLabels`` and
            ``labels.txt``.
        split: Name of ``ImageSets/Segmentation/<split>.txt``; ``None`` takes every image,
            in sorted id order.
        image_size: Output ``(height, width)`` (an int for a square), or ``None``.
        transforms: Optional joint ``(image, mask) -> (image, mask)`` callable applied
            last; the mask it receives is ``(K, H, W)``.
        image_dtype: ``"float32"`` (in [0, 1]) or ``"uint8"``.

    Attributes:
        class_names: The label names, channel ``k`` of a mask is ``class_names[k]``.
        mode: Always ``"multilabel"`` (read by :func:`~catseg.training.fit`).
        ids: Sample ids in item order.

    Raises:
        MissingFileError: If a folder, ``labels.txt`` or a label's mask is missing.
        DataError: On item access, if a mask holds values other than 0, 1 and 255 or its
            size differs from the image's.
        ConfigError: If an argument is invalid.

    Shape:
        image ``(3, H, W)``; mask ``(K, H, W)`` uint8 with values 0, 1 and 255.

    Examples:
        >>> import tempfile
        >>> root = make_synthetic_multilabel(tempfile.mkdtemp(), n=4, size=32)
        >>> data = VOCMultilabelDataset(root)
        >>> image, mask = data[0]
        >>> data.class_names, data.mode, tuple(mask.shape), mask.dtype
        (['disc', 'bar'], 'multilabel', (2, 32, 32), torch.uint8)
        >>> sorted(mask.unique().tolist())
        [0, 1, 255]
    """

    mode: Literal["multilabel"] = "multilabel"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        *,
        image_size: int | tuple[int, int] | None = None,
        transforms: JointTransform | None = None,
        image_dtype: Literal["float32", "uint8"] = "float32",
    ) -> None:
        super().__init__(split, image_size, transforms, image_dtype, "uint8")
        self.root = check_path("root", root)
        labels_file = self.root / "labels.txt"
        if not (self.root / "JPEGImages").is_dir() or not (self.root / LABELS_FOLDER).is_dir():
            raise MissingFileError(
                f"{self.root} is not a multilabel dataset: expected JPEGImages/, "
                f"{LABELS_FOLDER}/<label>/ and labels.txt"
            )
        if not labels_file.is_file():
            raise MissingFileError(
                f"{labels_file} not found: a multilabel dataset lists its label names, one "
                f"per line, in labels.txt (the sub-folders of {LABELS_FOLDER}/)"
            )
        self.class_names = read_lines(labels_file)
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise DataError(
                f"{labels_file} must list distinct label names, one per line, "
                f"got {self.class_names!r}"
            )
        images = list_files(self.root / "JPEGImages", IMAGE_SUFFIXES)
        ids = sorted(images) if split is None else read_split(self.root, split, images)
        absent = [i for i in ids if i not in images]
        if absent or not ids:
            raise MissingFileError(
                f"{self.root / 'JPEGImages'} has no image for id(s) {absent[:3]!r}"
                if absent
                else f"{self.root} holds no images"
            )
        self._masks: list[list[Path]] = []
        for label in self.class_names:
            folder = self.root / LABELS_FOLDER / label
            if not folder.is_dir():
                raise MissingFileError(f"label {label!r} of labels.txt has no folder {folder}")
            found = list_files(folder, (".png",))
            missing = [i for i in ids if i not in found]
            if missing:
                raise MissingFileError(
                    f"{folder} has no mask for {len(missing)} image(s), e.g. "
                    f"{missing[0]!r}.png (every image needs one mask per label; an absent "
                    "label is an all-zero mask)"
                )
            self._masks.append([found[i] for i in ids])
        self.ids: list[str] = ids
        self._images = [images[i] for i in ids]

    def __len__(self) -> int:
        return len(self.ids)

    def _repr_fields(self) -> dict[str, object]:
        return {"labels": self.class_names}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = checked_index(index, len(self))
        path = self._images[index]
        image, _ = read_rgb(path, str(path))
        layers = []
        for masks in self._masks:
            layer = read_mask(masks[index])
            if layer.shape != (image.height, image.width):
                raise DataError(
                    f"mask {masks[index]} is {layer.shape[1]}x{layer.shape[0]} (W x H) but its "
                    f"image is {image.width}x{image.height}"
                )
            bad = sorted({int(v) for v in np.unique(layer)} - {0, 1, 255})
            if bad:
                raise DataError(
                    f"mask {masks[index]} holds values {bad[:8]}; a label mask holds 0 "
                    "(absent), 1 (present) and 255 (ignore) only"
                )
            layers.append(layer)
        return self._tensors(*resize_sample(image, np.stack(layers), self.image_size))


def _disc(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.uint8]:
    canvas = Image.new("L", (width, height), 0)
    r = rng.uniform(0.15, 0.3) * min(height, width)
    cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
    ImageDraw.Draw(canvas).ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
    return np.array(canvas, dtype=np.uint8)


def _bar(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.uint8]:
    canvas = Image.new("L", (width, height), 0)
    angle = rng.uniform(0.0, math.pi)
    length, thick = rng.uniform(0.5, 0.9) * max(height, width), rng.uniform(0.1, 0.2) * height
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    ax, ay = math.cos(angle) * length / 2, math.sin(angle) * length / 2  # half the length
    bx, by = -math.sin(angle) * thick / 2, math.cos(angle) * thick / 2  # half the thickness
    signs = ((1, 1), (1, -1), (-1, -1), (-1, 1))
    corners = [(cx + a * ax + b * bx, cy + a * ay + b * by) for a, b in signs]
    ImageDraw.Draw(canvas).polygon(corners, fill=1)
    return np.array(canvas, dtype=np.uint8)


def make_synthetic_multilabel(
    root: str | os.PathLike[str],
    *,
    n: int = 48,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    val_fraction: float = 0.25,
    void_width: int = 1,
) -> Path:
    """Write a small synthetic multilabel dataset with overlapping labels.

    Each image shows a reddish disc (label ``"disc"``, channel 0) and a bluish bar
    (label ``"bar"``, channel 1) on a dark noisy background, each present with
    probability 0.8. Where they overlap the pixel is purple and carries both labels.
    With ``void_width > 0`` the pixels on both sides of each label's outline are 255 in
    that label's mask only. Equal arguments give equal files, in the layout of the module
    docstring with ``train``, ``val`` and ``trainval`` splits.

    Args:
        root: Destination folder; created when missing. It must be empty or absent.
        n: Number of images (≥ 1).
        size: Image size, an int for square images or ``(height, width)``; ≥ 16.
        seed: Seed of the generator.
        val_fraction: Share of the ids put in ``val.txt`` (at least one when ``n ≥ 2``).
        void_width: Width of the 255 band on each side of an outline; 0 for pure 0/1.

    Returns:
        The dataset root.

    Raises:
        ConfigError: When an argument is out of range (the message names it).
        DataError: When ``root`` exists and is not an empty folder.

    Examples:
        >>> import tempfile
        >>> root = make_synthetic_multilabel(tempfile.mkdtemp(), n=6, size=32, seed=3)
        >>> len(VOCMultilabelDataset(root, "train")), len(VOCMultilabelDataset(root, "val"))
        (4, 2)
    """
    out, n, (height, width), seed, val_fraction, void_width = checked_args(
        root, n, size, seed, val_fraction, void_width
    )
    image_dir, split_dir = out / "JPEGImages", out / "ImageSets" / "Segmentation"
    label_dirs = [out / LABELS_FOLDER / name for name in MULTILABEL_CLASS_NAMES]
    for folder in (image_dir, split_dir, *label_dirs):
        folder.mkdir(parents=True, exist_ok=True)
    ids = [f"multi_{index:04d}" for index in range(n)]
    children = np.random.SeedSequence(seed).spawn(n + 1)
    tints = (np.array([150.0, 10.0, 0.0]), np.array([0.0, 30.0, 160.0]))
    for sample_id, child in zip(ids, children[:n], strict=True):
        rng = np.random.default_rng(child)
        layers = [_disc(rng, height, width), _bar(rng, height, width)]
        layers = [m if rng.uniform() < 0.8 else np.zeros_like(m) for m in layers]
        pixels = rng.uniform(30.0, 70.0, size=3) + rng.normal(0.0, 10.0, (height, width, 3))
        for layer, tint in zip(layers, tints, strict=True):
            pixels = pixels + layer[..., None] * tint
        rgb = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(image_dir / f"{sample_id}.png")
        for layer, folder in zip(layers, label_dirs, strict=True):
            marked = void_band(layer, void_width) if void_width > 0 else layer
            Image.fromarray(marked).save(folder / f"{sample_id}.png")
    order = np.random.default_rng(children[n]).permutation(n)
    write_splits(split_dir, ids, [ids[i] for i in order], val_fraction)
    (out / "labels.txt").write_text("\n".join(MULTILABEL_CLASS_NAMES) + "\n")
    return out
