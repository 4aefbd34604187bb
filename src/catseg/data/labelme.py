"""labelme annotations: read JSON files, convert folders to Pascal VOC, or load directly.

Rasterisation follows labelme's semantic-segmentation rules (the behaviour of its
``labelme2voc`` converter, labelme 5.x/6.x), re-implemented with Pillow's ``ImageDraw``:

* The label map starts as 0 (``_background_``). Shapes are drawn in JSON order and a
  later shape overwrites earlier ones; ``__ignore__`` shapes write 255.
* Points are the JSON floats (x = column, y = row); Pillow's rasteriser decides which
  pixels are hit. Points outside the image are allowed: the drawing is clipped.
* ``polygon`` (also a missing or null ``shape_type``): ≥ 3 points, filled with its
  outline. ``oriented_rectangle``: 4 points, drawn like a polygon.
* ``rectangle``: 2 opposite corners in any order; filled, both corners inclusive.
* ``circle``: centre and a rim point; filled disc of radius = their distance.
* ``line``: 2 points; ``linestrip``: ≥ 2 points; strokes 10 px wide (rounded joints).
* ``point``: 1 point; filled disc of radius 5 (bounding box centre ± 5).
* ``mask``: a base64 PNG bitmap (non-zero = inside) and 2 corners; the bitmap's
  top-left goes to the rounded first corner. With whole-number corners the patch is
  ``(y2 - y1 + 1) × (x2 - x1 + 1)`` taken from the bitmap's top-left, otherwise the
  whole bitmap; the paste is clipped to the image.
* JSON files are read as UTF-8; a leading byte-order mark (Windows editors) is accepted.
* The image comes from ``imageData`` when present (used as stored, as labelme shows
  it), else from ``imagePath`` relative to the JSON file (Windows backslash separators
  accepted; EXIF orientation applied, as labelme does when it opens an image file). An
  ``imagePath`` that resolves outside the folder being read is refused unless the
  caller names a wider ``image_root``.
* Points are JSON numbers within 100 000 pixels of the image (further out, Pillow's
  rasteriser overflows or stalls); a field of the wrong JSON type, an out-of-range
  number or a document nested too deeply raises :class:`~catseg.errors.LabelmeError`
  naming the file and the field.

Labels follow labelme's ``labels.txt``: an optional first entry ``__ignore__`` (→ 255),
then ``_background_`` (→ 0), then the classes in id order (1, 2, ...). ``__ignore__``
is always accepted as a shape label even when the list omits it.

Examples:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from catseg.data.labelme import read_labelme
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (6, 4)).save(folder / "a.png")
    >>> shape = {"label": "cat", "points": [[1, 1], [3, 2]], "shape_type": "rectangle"}
    >>> doc = {"imagePath": "a.png", "imageData": None, "shapes": [shape]}
    >>> _ = (folder / "a.json").write_text(json.dumps(doc))
    >>> image, mask = read_labelme(folder / "a.json", ["__ignore__", "_background_", "cat"])
    >>> mask.tolist()
    [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.utils.data import Dataset

from catseg._validation import check_finite_float, check_int
from catseg.data._labelme_io import (
    check_distinct_ids,
    image_root_or,
    json_files,
    load_image,
    read_document,
)
from catseg.data._labelme_shapes import IGNORE_LABEL, Labels, rasterise, read_labels
from catseg.data._samples import (
    check_dtypes,
    check_transforms,
    image_to_tensor,
    mask_to_tensor,
    parse_image_size,
    resize_sample,
)
from catseg.data.voc import JointTransform
from catseg.errors import DataError
from catseg.visualize import VOC_PALETTE

__all__ = ["IGNORE_LABEL", "LabelmeDataset", "labelme_to_voc", "read_labelme", "read_labels"]


def read_labelme(
    json_path: str | os.PathLike[str],
    labels: Labels,
    *,
    image_root: str | os.PathLike[str] | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Read one labelme JSON file as an RGB image and a class-index mask.

    The rules are those of the module docstring (labelme's own converter).

    Args:
        json_path: The labelme ``.json`` file.
        labels: Class names, ``labels.txt`` style (see :func:`read_labels`).
        image_root: The folder ``imagePath`` may point into; ``None`` means the JSON
            file's own folder. An ``imagePath`` that resolves outside it (``../``,
            an absolute path, a symbolic link leading out) is refused; pass e.g. the
            common parent to read a sibling ``images/`` folder.

    Returns:
        ``(image, mask)``: ``image`` an ``(H, W, 3)`` uint8 RGB array, ``mask`` an
        ``(H, W)`` uint8 array of class ids with 255 for ``__ignore__``.

    Raises:
        MissingFileError: When the JSON, the labels file or the image is missing.
        LabelmeError: When the JSON is malformed, a label is not in ``labels`` (label and
            file named), a shape has the wrong number of points or an unknown type
            (shape index and file named), there is neither imageData nor imagePath, or
            imageData is not a readable image (corrupt, or refused by the
            decompression-bomb guard), ``imagePath`` resolves outside ``image_root``, a
            field has the wrong JSON type, a coordinate is out of range, or the JSON is
            nested too deeply (the file and field are named).
        DataError: When the image file is unreadable.
        ConfigError: When ``labels`` is malformed.

    Shape:
        ``image (H, W, 3)``, ``mask (H, W)``.

    Examples:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (5, 5)).save(folder / "b.png")
        >>> shapes = [{"label": "cat", "points": [[2, 2]], "shape_type": "point"}]
        >>> doc = {"imagePath": "b.png", "shapes": shapes}
        >>> _ = (folder / "b.json").write_text(json.dumps(doc))
        >>> int(read_labelme(folder / "b.json", ["_background_", "cat"])[1].sum())
        25
    """
    path = Path(json_path)
    names = read_labels(labels)
    root = image_root_or(image_root, path.parent)
    doc = read_document(path)
    image = load_image(doc, path, root)
    mask = rasterise(doc, image.size, names, path)
    return np.array(image, dtype=np.uint8), mask


def labelme_to_voc(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    labels: Labels,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    image_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Convert a folder of labelme JSON files into a Pascal VOC segmentation folder.

    Writes ``JPEGImages/<id>.jpg`` (RGB, quality 95), ``SegmentationClassPNG/<id>.png``
    (palette PNG with the VOC colour map; pixel = class id, 255 = ignore),
    ``class_names.txt`` and ``ImageSets/Segmentation/{train,val,trainval}.txt`` (``<id>``
    = JSON file stem). The ids are shuffled with ``random.Random(seed)`` and the first
    ``round(n * val_fraction)`` (at least 1 when ``n ≥ 2`` and the fraction is
    positive) go to ``val``. Everything is written to a temporary folder beside
    ``dst_dir`` and moved into place at the end, so a failure leaves no partial output.

    Args:
        src_dir: Folder with the ``.json`` files (not searched recursively).
        dst_dir: Destination; must not exist or be an empty folder. Nothing is deleted.
        labels: Class names, ``labels.txt`` style (see :func:`read_labels`).
        val_fraction: Share of the ids in ``val.txt``, in [0, 1).
        seed: Seed of the split shuffle.
        image_root: The folder ``imagePath`` entries may point into; ``None`` means
            ``src_dir`` (see :func:`read_labelme`).

    Returns:
        ``dst_dir`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: When ``dst_dir`` exists and is not empty, ``src_dir`` has no JSON, or
            two JSON names differ only in case (both named).
        ConfigError: When ``val_fraction`` is outside [0, 1) or ``labels`` is malformed.
        LabelmeError: As for :func:`read_labelme` (the file is named).
        MissingFileError: When ``src_dir`` or an image is missing.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from catseg.data.voc import VOCSegmentationDataset
        >>> src = Path(tempfile.mkdtemp())
        >>> _ = (src / "one.json").write_text(
        ...     '{"imageData": null, "imagePath": "one.png", "shapes": []}')
        >>> from PIL import Image
        >>> Image.new("RGB", (4, 4)).save(src / "one.png")
        >>> dst = labelme_to_voc(src, src.parent / (src.name + "-voc"), ["_background_", "cat"])
        >>> VOCSegmentationDataset(dst, "trainval").class_names
        ['_background_', 'cat']
    """
    source, destination = Path(src_dir), Path(dst_dir)
    val_fraction = check_finite_float(
        "val_fraction", val_fraction, low=0.0, high=1.0, high_open=True
    )
    seed = check_int("seed", seed)
    names = read_labels(labels)
    root = image_root_or(image_root, source)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DataError(f"{destination} exists and is not empty; refusing to overwrite it")
    files = json_files(source)
    check_distinct_ids(files)

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for folder in ("JPEGImages", "SegmentationClassPNG", "ImageSets/Segmentation"):
            (staging / folder).mkdir(parents=True)
        ids = []
        for file in files:
            pixels, mask = read_labelme(file, names, image_root=root)
            Image.fromarray(pixels).save(staging / "JPEGImages" / f"{file.stem}.jpg", quality=95)
            png = Image.fromarray(mask)
            png.putpalette(VOC_PALETTE)
            png.save(staging / "SegmentationClassPNG" / f"{file.stem}.png")
            ids.append(file.stem)
        order = list(ids)
        random.Random(seed).shuffle(order)
        n_val = round(len(ids) * val_fraction)
        if val_fraction > 0 and len(ids) >= 2:
            n_val = min(max(n_val, 1), len(ids) - 1)
        val = sorted(order[:n_val])
        train = sorted(order[n_val:])
        split_dir = staging / "ImageSets" / "Segmentation"
        for name, subset in (("train", train), ("val", val), ("trainval", sorted(ids))):
            (split_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in subset))
        (staging / "class_names.txt").write_text("\n".join(names) + "\n")
        if destination.exists():
            destination.rmdir()  # verified empty above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only our own temporary folder
        raise
    return destination


class LabelmeDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A folder of labelme JSON files read directly as a segmentation dataset.

    Each item rasterises one JSON file with :func:`read_labelme` on access (nothing is
    converted up front), then resizes like :class:`VOCSegmentationDataset`.

    Args:
        root: Folder of ``.json`` files (sorted by name; other files ignored).
        labels: Class names, ``labels.txt`` style (see :func:`read_labels`).
        image_size: Output ``(height, width)`` or int; ``None`` keeps each image's size.
        transforms: Optional joint callable ``(image, mask) -> (image, mask)``.
        image_dtype: ``"float32"`` in [0, 1] or ``"uint8"``.
        mask_dtype: ``"int64"`` or ``"uint8"`` (8× smaller batches; the training loop
            widens them on the device).
        image_root: The folder ``imagePath`` entries may point into; ``None`` means
            ``root`` (see :func:`read_labelme`).

    Attributes:
        files: The JSON files in item order.
        class_names: Class names in id order (``__ignore__`` dropped).
        image_size: ``(height, width)`` or ``None``.

    Raises:
        MissingFileError: When ``root`` does not exist.
        DataError: When ``root`` holds no JSON files.
        ConfigError: When an argument is invalid.

    Shape:
        ``image (3, H, W)`` and ``mask (H, W)`` int64 or uint8 (255 = ignore).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 6)).save(root / "c.png")
        >>> _ = (root / "c.json").write_text('{"imagePath": "c.png", "shapes": []}')
        >>> dataset = LabelmeDataset(root, ["_background_", "cat"], image_size=4)
        >>> [tuple(t.shape) for t in dataset[0]]
        [(3, 4, 4), (4, 4)]
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        labels: Labels,
        *,
        image_size: int | tuple[int, int] | None = None,
        transforms: JointTransform | None = None,
        image_dtype: Literal["float32", "uint8"] = "float32",
        mask_dtype: Literal["int64", "uint8"] = "int64",
        image_root: str | os.PathLike[str] | None = None,
    ) -> None:
        check_dtypes(image_dtype, mask_dtype)
        check_transforms(transforms)
        self.root = Path(root)
        self.image_root = image_root_or(image_root, self.root)
        self.class_names = read_labels(labels)
        self.files = json_files(self.root)
        self.image_size = parse_image_size(image_size)
        self.transforms = transforms
        self.image_dtype: Literal["float32", "uint8"] = image_dtype
        self.mask_dtype: Literal["int64", "uint8"] = mask_dtype

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, len={len(self)}, "
            f"image_size={self.image_size!r}, classes={self.class_names!r})"
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for a dataset of {size} items")
        pixels, mask = read_labelme(self.files[index], self.class_names, image_root=self.image_root)
        pixels, mask = resize_sample(Image.fromarray(pixels), mask, self.image_size)
        image = image_to_tensor(pixels, self.image_dtype)
        labels = mask_to_tensor(mask, self.mask_dtype, owned=True)  # read afresh per item
        if self.transforms is not None:
            image, labels = self.transforms(image, labels)
        return image, labels
