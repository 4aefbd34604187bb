"""The labelling loop: predictions as labelme pre-annotations, photos ranked for labelling.

Regions become shapes with OpenCV (extra ``labelme``): ``connectedComponentsWithStats``
splits each class into regions, ``findContours`` traces a region's outer boundary
through its edge pixels' centres (exact on the pixel grid: Pillow, as labelme, draws
such a polygon back with its outline, pixel for pixel) and ``approxPolyDP`` (the
Douglas-Peucker simplification) drops points within ``tolerance`` pixels of the outline.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from catseg._bounds import short
from catseg._runtime import require
from catseg._validation import check_choice, check_finite_float, check_int, check_path
from catseg.data._inputs import ImageInput
from catseg.errors import ConfigError, MissingFileError
from catseg.predict._folder import list_photos
from catseg.predict._segmenter import Segmenter

if TYPE_CHECKING:
    from catseg.predict._prediction import Prediction, Uncertainty

# the shape fields labelme 5.x writes besides label, points, shape_type and mask
_FIELDS: dict[str, Any] = {"group_id": None, "description": "", "flags": {}}
_BOX = Image.Resampling.BOX


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shapes(
    label_map: npt.NDArray[np.uint8], names: dict[int, str], kind: str, tolerance: float, area: int
) -> list[tuple[float, dict[str, Any]]]:
    """``(fill area, shape)`` per region of ``label_map``; value 0 only as enclosed holes."""
    cv2 = require("cv2", "labelme")
    height, width = label_map.shape
    found = []
    for value in np.unique(label_map).tolist():
        hole = value == 0  # the image starts as background: only enclosed regions are drawn
        if hole and (kind == "mask" or 0 not in names):
            continue
        if value not in names:
            raise ConfigError(f"mask value {value} has no class name in {sorted(names.items())}")
        mask = (label_map == value).astype(np.uint8)
        _, ids, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4 if hole else 8)
        for i, (x, y, w, h, pixels) in enumerate(stats.tolist()[1:], start=1):
            if pixels < area or (hole and (x == 0 or y == 0 or x + w == width or y + h == height)):
                continue
            crop = (ids[y : y + h, x : x + w] == i).astype(np.uint8)
            points, fill, bitmap = [[x, y], [x + w - 1, y + h - 1]], 0.0, None
            if kind == "mask":
                bitmap = _png(Image.fromarray(crop))
            else:
                contour = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0][0]
                kept = cv2.approxPolyDP(contour, tolerance, True) if tolerance else contour
                kept = kept if len(kept) > 2 else contour  # a small region: no simplification
                points = (kept.reshape(-1, 2) + np.array([x, y])).tolist()
                points, fill = (points * 3)[: max(3, len(points))], cv2.contourArea(contour)
            shape = {"label": names[value], "points": points, **_FIELDS, "shape_type": kind}
            found.append((float(fill), shape | {"mask": bitmap}))
    return found


def labelme_document(
    prediction: Prediction,
    target: Path,
    image_path: str | os.PathLike[str] | None,
    kind: str,
    tolerance: object,
    min_area: object,
) -> dict[str, Any]:
    """The labelme 5.x document of :meth:`Prediction.to_labelme` (see there)."""
    check_choice("shapes", kind, ("polygon", "mask"))
    tol = check_finite_float("tolerance", tolerance, low=0.0)
    area = check_int("min_area", min_area, minimum=0)
    if image_path is not None:
        photo = check_path("image_path", image_path).absolute()
        if not photo.is_file():
            raise MissingFileError(f"image_path {photo} not found")
        try:  # relative to the JSON's folder, as labelme writes it
            shown, data = Path(os.path.relpath(photo, target.absolute().parent)).as_posix(), None
        except ValueError:  # another drive (Windows)
            shown, data = photo.as_posix(), None
    elif prediction.image is None:
        raise ConfigError("this prediction has no image to embed; pass image_path=")
    else:
        shown, data = f"{target.stem}.png", _png(prediction.image)
    found = []
    if prediction.multilabel:  # one shape set per layer; holes stay filled
        for k, layer in enumerate(prediction.layers.numpy().astype(np.uint8)):
            found += _shapes(layer, {1: prediction.classes[k]}, kind, tol, area)
    else:
        names = {**dict(enumerate(prediction.classes)), 255: "__ignore__"}
        found = _shapes(prediction.mask.numpy(), names, kind, tol, area)
    found.sort(key=lambda item: -item[0])  # containers first: a later shape wins in labelme
    (height, width), shapes = prediction.size, [shape for _, shape in found]
    head = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": shown}
    return head | {"imageData": data, "imageHeight": height, "imageWidth": width}


def rank_for_labelling(
    segmenter: Segmenter,
    images: str | os.PathLike[str] | Iterable[ImageInput],
    *,
    method: Uncertainty = "entropy",
    spread: float = 0.0,
) -> list[tuple[ImageInput, float]]:
    """Rank photos by the model's doubt, most uncertain first: what to label next.

    Each photo's score is the mean of its :meth:`Prediction.uncertainty` map (0: the
    model is sure of every pixel, 1: it has no idea anywhere). Photos are segmented one
    at a time, so memory does not grow with their number.

    Args:
        segmenter: The model to ask (its settings: size, TTA, tiling, device).
        images: A folder (its ``.jpg``, ``.jpeg`` and ``.png`` files, at any depth) or
            an iterable of inputs accepted by :meth:`Segmenter.predict`.
        method: ``"entropy"`` or ``"margin"`` (see :meth:`Prediction.uncertainty`).
        spread: Spread the picks over different-looking photos: a photo whose 16×16 RGB
            thumbnail (values in [0, 1]) lies within this root-mean-square distance of
            a photo picked before it goes after every photo that does not (about 0.05
            catches near-duplicates such as burst shots or re-encoded copies); 0 ranks
            by score only.

    Returns:
        ``(photo, score)`` for every photo (a folder's as paths), most uncertain first.

    Raises:
        MissingFileError: If the folder does not exist.
        ConfigError: If ``method`` or ``spread`` is invalid.
        CatsegError: As :meth:`Segmenter.predict` raises for a photo.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> from catseg.predict import Segmenter
        >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2))
        >>> photos = [torch.zeros(3, 16, 16), torch.rand(3, 16, 16)]
        >>> ranked = rank_for_labelling(seg, photos)
        >>> len(ranked), ranked[0][1] >= ranked[1][1]
        (2, True)
    """
    distance = check_finite_float("spread", spread, low=0.0)
    if not isinstance(segmenter, Segmenter):
        raise ConfigError(f"segmenter must be a catseg Segmenter, got {short(segmenter)}")
    if not isinstance(images, str | os.PathLike | Iterable):
        raise ConfigError(f"images must be a folder or an iterable of images, got {short(images)}")
    if isinstance(images, (str, os.PathLike)):
        folder = check_path("images", images)
        if not folder.is_dir():
            raise MissingFileError(f"images must be a folder of photos, {folder} is not one")
        images = [folder / rel for rel in list_photos(folder)]
    scored = []
    for image in images:
        prediction = segmenter.predict(image, return_probabilities=True)
        shown = prediction.image if distance else None  # a 16x16 thumbnail in [0, 1]
        small = None if shown is None else shown.convert("RGB").resize((16, 16), _BOX)
        thumb = None if small is None else torch.from_numpy(np.asarray(small, np.float32) / 255)
        scored.append((image, float(prediction.uncertainty(method).mean()), thumb))
    picked: list[tuple[ImageInput, float]] = []
    later: list[tuple[ImageInput, float]] = []
    seen: list[torch.Tensor] = []
    for image, score, thumb in sorted(scored, key=lambda item: -item[1]):
        near = thumb is not None and any(((t - thumb) ** 2).mean() < distance**2 for t in seen)
        (later if near else picked).append((image, score))
        seen += [] if near or thumb is None else [thumb]
    return picked + later
