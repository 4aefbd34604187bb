"""A tiny procedurally drawn segmentation dataset in Pascal VOC layout.

:func:`make_synthetic_voc` needs no download, takes well under a second for the default
64 images, and a small UNet learns it to a foreground IoU above 0.9 in a few seconds on
a CPU: the dataset of the quickstart, the documentation examples and the fast tests.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from catseg._validation import check_finite_float, check_int, check_path, check_size
from catseg.data._samples import write_splits
from catseg.errors import ConfigError, DataError
from catseg.visualize import colorize

__all__ = ["SYNTHETIC_CLASS_NAMES", "make_synthetic_voc"]

#: Class names of the synthetic dataset, in id order (binary: background and blob).
SYNTHETIC_CLASS_NAMES: tuple[str, ...] = ("_background_", "blob")


def checked_args(
    root: str | os.PathLike[str],
    n: object,
    size: object,
    seed: object,
    val_fraction: object,
    void_width: object,
) -> tuple[Path, int, tuple[int, int], int, float, int]:
    """The synthetic writers' arguments, checked (each error names its value)."""
    pair = check_size("size", size)
    if min(pair) < 16:
        raise ConfigError(f"size must be at least 16 pixels on each side, got {size!r}")
    checked = (
        check_int("n", n, minimum=1),
        pair,
        check_int("seed", seed, minimum=0),
        check_finite_float("val_fraction", val_fraction, low=0.0, high=1.0, high_open=True),
        check_int("void_width", void_width, minimum=0),
    )
    out = check_path("root", root)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not an empty folder; refusing to write into it")
    return (out, *checked)


def _background(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.float64]:
    """Dark shaded background with pixel noise and a few faint darker specks."""
    base = rng.uniform(25.0, 75.0, size=3)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / max(height, width)
    shade = 25.0 * ramp[..., None]
    noise = rng.normal(0.0, 12.0, size=(height, width, 3))
    pixels: npt.NDArray[np.float64] = base + shade + noise
    return pixels


def _blob_texture(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.float64]:
    """Bright warm colour with stripes and pixel noise."""
    base = rng.uniform([190.0, 120.0, 40.0], [240.0, 200.0, 110.0])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0.0, math.pi)
    period = rng.uniform(4.0, 9.0)
    phase = xs * math.cos(angle) + ys * math.sin(angle)
    stripes = 18.0 * np.sin(2.0 * math.pi * phase / period)
    noise = rng.normal(0.0, 10.0, size=(height, width, 3))
    pixels: npt.NDArray[np.float64] = base + stripes[..., None] + noise
    return pixels


def _draw_blobs(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.uint8]:
    """Label map with 1 to 3 ellipses / polygons of value 1 on 0."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    short = min(height, width)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        radius = rng.uniform(0.15, 0.3) * short
        if rng.random() < 0.5:
            aspect = rng.uniform(0.6, 1.0)
            rx, ry = (radius, radius * aspect) if rng.random() < 0.5 else (radius * aspect, radius)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=1)
        else:
            corners = int(rng.integers(4, 9))
            step = 2.0 * math.pi / corners  # evenly spread corners: never a sliver
            angles = rng.uniform(0.0, step) + step * (
                np.arange(corners) + rng.uniform(-0.3, 0.3, size=corners)
            )
            radii = radius * rng.uniform(0.8, 1.15, size=corners)
            points = [
                (float(cx + r * math.cos(a)), float(cy + r * math.sin(a)))
                for r, a in zip(radii, angles, strict=True)
            ]
            draw.polygon(points, fill=1, outline=1)
    return np.array(canvas, dtype=np.uint8)


def void_band(mask: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.uint8]:
    """Set pixels within ``width`` 4-neighbour steps of a class boundary (both sides) to 255."""

    def neighbours(grid: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        padded = np.pad(grid, 1, mode="edge")  # the border is its own outside neighbour
        return [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]

    band = np.logical_or.reduce([near != mask for near in neighbours(mask)])
    for _ in range(width - 1):
        band = np.logical_or.reduce([band, *neighbours(band)])
    out: npt.NDArray[np.uint8] = np.where(band, 255, mask).astype(np.uint8)
    return out


def make_synthetic_voc(
    root: str | os.PathLike[str],
    *,
    n: int = 64,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    val_fraction: float = 0.25,
    void_width: int = 1,
) -> Path:
    """Write a small synthetic binary segmentation dataset in Pascal VOC layout.

    Each image shows one to three bright striped blobs (ellipses or polygons, class 1
    ``"blob"``) on a dark, shaded, noisy background (class 0 ``"_background_"``).
    With ``void_width > 0`` the pixels on both sides of every blob outline are 255
    ("ignore"), like Pascal VOC's void band. Equal arguments give pixel-identical masks
    (JPEG bytes depend on Pillow's encoder only).

    Layout written under ``root``::

        JPEGImages/synth_0000.jpg ...          RGB, JPEG quality 95
        SegmentationClassPNG/synth_0000.png    palette PNG, index = class id (0, 1, 255)
        ImageSets/Segmentation/{train,val,trainval}.txt
        class_names.txt                        "_background_" and "blob", one per line

    Args:
        root: Destination folder; created when missing. It must be empty or absent.
        n: Number of images (≥ 1).
        size: Image size, an int for square images or ``(height, width)``; ≥ 16.
        seed: Seed of the generator; equal seeds give equal datasets.
        val_fraction: Share of the ids put in ``val.txt`` (rounded, at least one image
            when ``n ≥ 2`` and the fraction is positive); the rest is ``train.txt``.
        void_width: Width of the 255 band on each side of blob outlines; 0 for pure 0/1.

    Returns:
        The dataset root as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: When an argument is out of range (the message names it).
        DataError: When ``root`` exists and is not an empty folder.

    Examples:
        >>> import tempfile
        >>> from catseg.data.voc import VOCSegmentationDataset
        >>> root = make_synthetic_voc(tempfile.mkdtemp(), n=8, size=32, seed=1)
        >>> train = VOCSegmentationDataset(root, "train")
        >>> len(train), len(VOCSegmentationDataset(root, "val")), train.class_names
        (6, 2, ['_background_', 'blob'])
        >>> image, mask = train[0]
        >>> tuple(image.shape), sorted(mask.unique().tolist())
        ((3, 32, 32), [0, 1, 255])
    """
    out, n, (height, width), seed, val_fraction, void_width = checked_args(
        root, n, size, seed, val_fraction, void_width
    )
    image_dir, mask_dir = out / "JPEGImages", out / "SegmentationClassPNG"
    split_dir = out / "ImageSets" / "Segmentation"
    for folder in (image_dir, mask_dir, split_dir):
        folder.mkdir(parents=True, exist_ok=True)
    ids = [f"synth_{index:04d}" for index in range(n)]
    children = np.random.SeedSequence(seed).spawn(n + 1)
    for sample_id, child in zip(ids, children[:n], strict=True):
        rng = np.random.default_rng(child)
        mask = _draw_blobs(rng, height, width)
        background = _background(rng, height, width)
        blob = _blob_texture(rng, height, width)
        pixels = np.where(mask[..., None] == 1, blob, background)
        rgb = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(image_dir / f"{sample_id}.jpg", quality=95)
        if void_width > 0:
            mask = void_band(mask, void_width)
        colorize(mask).save(mask_dir / f"{sample_id}.png")
    order = np.random.default_rng(children[n]).permutation(n)
    write_splits(split_dir, ids, [ids[i] for i in order], val_fraction)
    (out / "class_names.txt").write_text("\n".join(SYNTHETIC_CLASS_NAMES) + "\n")
    return out
