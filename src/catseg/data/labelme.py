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
  ``(y2 - y1 + 1) × (x2 - x1 + 1)`` of the bitmap, otherwise all of it; clipped.
* JSON files are UTF-8; a leading byte-order mark (Windows editors) is accepted.
* The image comes from ``imageData`` when present (as stored, as labelme shows it),
  else from ``imagePath`` relative to the JSON file (backslashes accepted; EXIF
  orientation applied, as labelme does). An ``imagePath`` that resolves outside the
  folder being read is refused unless the caller names a wider ``image_root``.
* Points are JSON numbers within 100 000 pixels of the image (further out, Pillow's
  rasteriser overflows or stalls); a malformed document raises
  :class:`~catseg.errors.LabelmeError` naming the file and the field.

``mode="multilabel"`` (:func:`read_labelme`, :class:`LabelmeDataset`) keeps overlapping
shapes instead: one ``(K, H, W)`` multi-hot layer per class after ``_background_``, each
shape drawn by the same rules into its own label's layer only.

Labels follow labelme's ``labels.txt``: an optional first entry ``__ignore__`` (→ 255),
then ``_background_`` (→ 0), then the classes in id order (1, 2, ...). ``__ignore__``
is always accepted as a shape label even when the list omits it.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from catseg._validation import check_choice, check_finite_float, check_int, check_path
from catseg.data._labelme import (
    IGNORE_LABEL,
    Labels,
    json_files,
    load_image,
    rasterise,
    read_document,
    read_labels,
)
from catseg.data._samples import (
    FolderDataset,
    JointTransform,
    checked_index,
    resize_sample,
    write_splits,
)
from catseg.errors import ConfigError, DataError
from catseg.visualize import colorize

__all__ = ["IGNORE_LABEL", "LabelmeDataset", "labelme_to_voc", "read_labelme", "read_labels"]

LabelmeMode = Literal["multiclass", "multilabel"]
"""How labelme shapes become targets: one label map (z-order) or one layer per label."""


def _checked(labels: Labels, mode: object) -> tuple[LabelmeMode, list[str]]:
    checked = cast(LabelmeMode, check_choice("mode", mode, ("multiclass", "multilabel")))
    names = read_labels(labels)
    if checked == "multilabel" and len(names) < 2:
        raise ConfigError(
            f"labels {names!r} name no class besides '_background_'; mode='multilabel' "
            "needs at least one label to make a layer for"
        )
    return checked, names


def _read(
    path: Path, names: list[str], image_root: Path, mode: LabelmeMode
) -> tuple[Image.Image, npt.NDArray[np.uint8]]:
    doc = read_document(path)
    image = load_image(doc, path, image_root)
    return image, rasterise(doc, image.size, names, path, mode)


def read_labelme(
    json_path: str | os.PathLike[str],
    labels: Labels,
    *,
    image_root: str | os.PathLike[str] | None = None,
    mode: LabelmeMode = "multiclass",
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Read one labelme JSON file as an RGB image and a class-index mask or label layers.

    The rules are those of the module docstring. With ``mode="multilabel"`` a pixel under
    a ``cat`` and a ``dog`` polygon is 1 in both layers (``__ignore__`` writes 255 and
    ``_background_`` 0 into every layer), the targets of ``DiceLoss(mode="multilabel")``.

    Args:
        json_path: The labelme ``.json`` file.
        labels: Class names, ``labels.txt`` style (see :func:`read_labels`); in
            multilabel mode with at least one class besides ``_background_``.
        image_root: The folder ``imagePath`` may point into; ``None`` means the JSON
            file's own folder. An ``imagePath`` that resolves outside it (``../``,
            an absolute path, a symbolic link leading out) is refused; pass e.g. the
            common parent to read a sibling ``images/`` folder.
        mode: ``"multiclass"`` (one label map in z-order, as labelme's converter) or
            ``"multilabel"`` (one layer per class after ``_background_``, overlaps kept).

    Returns:
        ``(image, mask)``: an ``(H, W, 3)`` uint8 RGB array and an ``(H, W)`` uint8 map of
        class ids (255 for ``__ignore__``), or in multilabel mode ``(K, H, W)`` uint8
        layers of 0 (absent), 1 (present) and 255 (ignore).

    Raises:
        MissingFileError: When the JSON, the labels file or the image is missing.
        LabelmeError: When the JSON is malformed or nested too deeply, a field has the
            wrong JSON type, a label is not in ``labels``, a shape has an unknown type or
            the wrong number of points, a coordinate is out of range, imageData is not a
            readable image, or imagePath is absent or resolves outside ``image_root``
            (the file, shape and field are named).
        DataError: When the image file is unreadable.
        ConfigError: When ``labels`` is malformed, ``mode`` is unknown, or (multilabel)
            ``labels`` names no class besides ``_background_``.

    Shape:
        ``image (H, W, 3)``, ``mask (H, W)``; multilabel: ``mask (K, H, W)``.

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

        Two overlapping rectangles: z-order keeps the later one, layers keep both.

        >>> cat = {"label": "cat", "points": [[0, 0], [2, 0]], "shape_type": "rectangle"}
        >>> dog = {"label": "dog", "points": [[1, 0], [3, 0]], "shape_type": "rectangle"}
        >>> Image.new("RGB", (4, 1)).save(folder / "c.png")
        >>> _ = (folder / "c.json").write_text(json.dumps({"imagePath": "c.png",
        ...                                                "shapes": [cat, dog]}))
        >>> labels = ["_background_", "cat", "dog"]
        >>> read_labelme(folder / "c.json", labels)[1].tolist()
        [[1, 2, 2, 2]]
        >>> read_labelme(folder / "c.json", labels, mode="multilabel")[1].tolist()
        [[[1, 1, 1, 0]], [[0, 1, 1, 1]]]
    """
    checked, names = _checked(labels, mode)
    path = check_path("json_path", json_path)
    root = path.parent if image_root is None else check_path("image_root", image_root)
    image, mask = _read(path, names, root, checked)
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
    (VOC palette; pixel = class id, 255 = ignore), ``class_names.txt`` and
    ``ImageSets/Segmentation/{train,val,trainval}.txt`` (``<id>`` = JSON file stem). The
    ids are shuffled with ``random.Random(seed)``; the first ``round(n * val_fraction)``
    (at least 1 when ``n ≥ 2`` and the fraction is positive) go to ``val``. A failure
    leaves no partial output (the folder is built beside ``dst_dir``, then moved).

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
    source, destination = check_path("src_dir", src_dir), check_path("dst_dir", dst_dir)
    val_fraction = check_finite_float(
        "val_fraction", val_fraction, low=0.0, high=1.0, high_open=True
    )
    seed = check_int("seed", seed)
    names = read_labels(labels)
    root = source if image_root is None else check_path("image_root", image_root)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DataError(f"{destination} exists and is not empty; refusing to overwrite it")
    files = json_files(source)

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for folder in ("JPEGImages", "SegmentationClassPNG", "ImageSets/Segmentation"):
            (staging / folder).mkdir(parents=True)
        for file in files:
            image, mask = _read(file, names, root, "multiclass")
            image.save(staging / "JPEGImages" / f"{file.stem}.jpg", quality=95)
            colorize(mask).save(staging / "SegmentationClassPNG" / f"{file.stem}.png")
        ids = [file.stem for file in files]
        order = list(ids)
        random.Random(seed).shuffle(order)
        write_splits(staging / "ImageSets" / "Segmentation", ids, order, val_fraction)
        (staging / "class_names.txt").write_text("\n".join(names) + "\n")
        if destination.exists():
            destination.rmdir()  # verified empty above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only our own temporary folder
        raise
    return destination


class LabelmeDataset(FolderDataset):
    """A folder of labelme JSON files read directly as a segmentation dataset.

    Each item rasterises one JSON file on access (nothing is converted up front) with
    :func:`read_labelme`, then resizes like :class:`VOCSegmentationDataset` (masks with
    nearest neighbour, so ids, 0/1 and 255 stay exact).

    Args:
        root: Folder of ``.json`` files (sorted by name; other files ignored).
        labels: Class names, ``labels.txt`` style (see :func:`read_labels`).
        image_size: Output ``(height, width)`` or int; ``None`` keeps each image's size.
        transforms: Optional joint callable ``(image, mask) -> (image, mask)``; in
            multilabel mode the mask it receives is ``(K, H, W)``.
        image_dtype: ``"float32"`` in [0, 1] or ``"uint8"``.
        mask_dtype: ``"int64"`` or ``"uint8"``; ``None`` means ``"int64"`` in multiclass
            mode and ``"uint8"`` in multilabel mode.
        image_root: The folder ``imagePath`` entries may point into; ``None`` means
            ``root`` (see :func:`read_labelme`).
        mode: ``"multiclass"`` (one ``(H, W)`` class-index map, as labelme's converter)
            or ``"multilabel"`` (one multi-hot layer per class, overlaps kept, as from
            :class:`VOCMultilabelDataset`).

    Attributes:
        files: The JSON files in item order.
        class_names: Class names in id order (``__ignore__`` dropped); in multilabel
            mode the ``K`` labels in layer order (``_background_`` dropped too).
        mode: ``"multiclass"`` or ``"multilabel"`` (read by :func:`~catseg.training.fit`).
        image_size: ``(height, width)`` or ``None``.

    Raises:
        MissingFileError: When ``root`` does not exist.
        DataError: When ``root`` holds no JSON files.
        ConfigError: When an argument is invalid, or (multilabel) ``labels`` names no
            class besides ``_background_``.

    Shape:
        ``image (3, H, W)`` and ``mask (H, W)`` int64 or uint8 (255 = ignore); in
        multilabel mode ``mask (K, H, W)`` with values 0, 1 and 255.

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
        >>> layers = LabelmeDataset(root, ["_background_", "cat", "dog"], mode="multilabel")
        >>> layers.class_names, tuple(layers[0][1].shape), layers[0][1].dtype
        (['cat', 'dog'], (2, 6, 8), torch.uint8)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        labels: Labels,
        *,
        image_size: int | tuple[int, int] | None = None,
        transforms: JointTransform | None = None,
        image_dtype: Literal["float32", "uint8"] = "float32",
        mask_dtype: Literal["int64", "uint8"] | None = None,
        image_root: str | os.PathLike[str] | None = None,
        mode: LabelmeMode = "multiclass",
    ) -> None:
        self.mode, self._names = _checked(labels, mode)
        multilabel = self.mode == "multilabel"
        if mask_dtype is None:
            mask_dtype = "uint8" if multilabel else "int64"
        super().__init__(None, image_size, transforms, image_dtype, mask_dtype)
        self.root = check_path("root", root)
        self.image_root = self.root if image_root is None else check_path("image_root", image_root)
        self.class_names = self._names[1:] if multilabel else self._names
        self.files = json_files(self.root)

    def __len__(self) -> int:
        return len(self.files)

    def _repr_fields(self) -> dict[str, object]:
        return {"classes": self.class_names, "mode": self.mode}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[checked_index(index, len(self))]
        image, mask = _read(path, self._names, self.image_root, self.mode)
        return self._tensors(*resize_sample(image, mask, self.image_size))
