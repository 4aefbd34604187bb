"""The result of segmenting one image."""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from catseg._files import atomic_write
from catseg._validation import check_bool, check_choice, check_path
from catseg.data._inputs import display_image
from catseg.data._io import open_image
from catseg.errors import ConfigError, DataError
from catseg.visualize import PaletteName, colorize, colorize_layers, overlay, overlay_layers

Uncertainty = Literal["entropy", "margin"]  # Prediction.uncertainty: see there


@dataclass(frozen=True, eq=False, init=False)
class Prediction:
    """A segmentation of one image, at the image's original size.

    A multilabel prediction (``mode="multilabel"``) has no single label per pixel: its
    ``mask`` *is* the ``(K, H, W)`` boolean :attr:`layers`, and :meth:`colorize` and
    :meth:`overlay` blend the colours of every label present, so overlaps stay visible.

    Attributes:
        mask: Label map (``mask[y, x]`` indexes ``classes``); multilabel: the layers.
        probabilities: Per-class probabilities (binary: ``[1 - p, p]``), or ``None``
            unless asked for with ``return_probabilities=True``.
        classes: Class names, label 0 first.
        image: The input image as an RGB (or grayscale) PIL image, used by
            :meth:`overlay`; ``None`` if the input had neither 1 nor 3 channels. Given
            as a ``(C, H, W)`` tensor (uint8 or float in [0, 1]), it is copied and made
            into a PIL image on first use; given as a file path (a photo segmented from
            its file), the file is read again, upright and RGB, on first use.

    Shape:
        - mask: ``(H, W)`` uint8, on the CPU; multilabel: ``(K, H, W)`` bool.
        - probabilities: ``(len(classes), H, W)`` float32, on the CPU.

    Examples:
        >>> import torch
        >>> pred = Prediction(mask=torch.tensor([[0, 1]], dtype=torch.uint8),
        ...                   probabilities=None, classes=["_background_", "cat"], image=None)
        >>> pred.colorize().convert("RGB").getpixel((1, 0))
        (0, 128, 0)
    """

    mask: torch.Tensor
    probabilities: torch.Tensor | None
    classes: list[str]

    def __init__(
        self,
        mask: torch.Tensor,
        probabilities: torch.Tensor | None,
        classes: list[str],
        image: Image.Image | torch.Tensor | Path | None = None,
    ) -> None:
        pixels: torch.Tensor | Path | None = None
        if isinstance(image, torch.Tensor):  # made into a PIL image on first use
            pixels = image.detach().cpu() if image.shape[0] in (1, 3) else None
            image = None
        elif isinstance(image, Path):  # a file, read again if an overlay is asked for
            pixels, image = image, None
        values = {"mask": mask, "probabilities": probabilities, "classes": classes}
        self.__dict__.update(values, _image=image, _pixels=pixels)

    @property
    def image(self) -> Image.Image | None:
        """The input as a PIL image for overlays (see the class attributes)."""
        pixels = self.__dict__["_pixels"]
        if self.__dict__["_image"] is None and pixels is not None:
            shown = open_image(pixels) if isinstance(pixels, Path) else display_image(pixels)
            if shown is not None and (shown.height, shown.width) != self.size:
                raise DataError(
                    f"{pixels} changed since it was segmented: it is now {shown.width}x"
                    f"{shown.height}, the mask {self.size[1]}x{self.size[0]}"
                )
            object.__setattr__(self, "_image", shown)
            object.__setattr__(self, "_pixels", None)
        image: Image.Image | None = self.__dict__["_image"]
        return image

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the mask (the original image size)."""
        return int(self.mask.shape[-2]), int(self.mask.shape[-1])

    @property
    def multilabel(self) -> bool:
        """Whether this is a multilabel prediction (``mask`` holds ``(K, H, W)`` layers)."""
        return self.mask.ndim == 3

    @property
    def layers(self) -> torch.Tensor:
        """``(K, H, W)`` boolean layers, ``layers[k]`` = "the pixel carries ``classes[k]``".

        For a multilabel model this is :attr:`mask` itself, otherwise the one-hot split
        of the label map (``layers[k] = mask == k``), so such code works in every mode.

        Examples:
            >>> import torch
            >>> pred = Prediction(torch.tensor([[0, 2]], dtype=torch.uint8), None,
            ...                   ["bg", "cat", "dog"], None)
            >>> pred.layers[:, 0, 1].tolist()
            [False, False, True]
        """
        if self.multilabel:
            return self.mask
        ids = torch.arange(len(self.classes), dtype=self.mask.dtype).view(-1, 1, 1)
        return self.mask.unsqueeze(0) == ids

    def _palette(self, palette: PaletteName | Sequence[int] | None) -> PaletteName | Sequence[int]:
        if palette is not None:
            return palette
        return "binary" if len(self.classes) == 2 else "voc"

    def colorize(self, palette: PaletteName | Sequence[int] | None = None) -> Image.Image:
        """The mask as a palette-mode PIL image (see :func:`catseg.visualize.colorize`).

        Args:
            palette: ``"voc"``, ``"binary"``, a flat colour sequence, or ``None``: the
                tutorial's black/green with two classes, else VOC.

        Returns:
            A new ``"P"`` mode image whose pixel values are the labels.

        Raises:
            ConfigError: If the palette is malformed or lacks a colour for a label.
        """
        if self.multilabel:
            return colorize_layers(self.mask, palette="voc" if palette is None else palette)
        return colorize(self.mask, palette=self._palette(palette))

    def overlay(
        self, alpha: float = 0.3, palette: PaletteName | Sequence[int] | None = None
    ) -> Image.Image:
        """Blend the coloured mask over the input image (see :func:`catseg.visualize.overlay`).

        Args:
            alpha: Weight of the mask colour, 0 to 1; the tutorial used 0.3.
            palette: As in :meth:`colorize`.

        Returns:
            A new RGB image of the original size.

        Raises:
            ConfigError: If there is no image to draw on, or a bad ``alpha``/palette.

        Examples:
            >>> import torch
            >>> from PIL import Image
            >>> pred = Prediction(torch.tensor([[1]], dtype=torch.uint8), None, ["bg", "cat"],
            ...                   Image.new("RGB", (1, 1), (100, 100, 100)))
            >>> pred.overlay().getpixel((0, 0))
            (70, 108, 70)
        """
        if self.image is None:
            raise ConfigError(
                "this prediction has no RGB or grayscale image to draw on (the input had "
                "neither 1 nor 3 channels); use colorize() or catseg.visualize.overlay"
            )
        if self.multilabel:
            return overlay_layers(
                self.image, self.mask, alpha=alpha, palette="voc" if palette is None else palette
            )
        return overlay(self.image, self.mask, alpha=alpha, palette=self._palette(palette))

    def save(
        self, path: str | os.PathLike[str], palette: PaletteName | Sequence[int] | None = None
    ) -> Path:
        """Write the mask as a palette PNG (the Pascal-VOC ``SegmentationClassPNG`` format).

        The pixel values are the labels (read back with :func:`catseg.data.read_mask`);
        the file is written atomically.

        Args:
            path: Destination; must end in ``.png`` (a lossy format would corrupt labels).
            palette: As in :meth:`colorize`.

        Returns:
            The path written.

        Raises:
            ConfigError: If the path does not end in ``.png`` or the mask is multilabel.
            OSError: If the file cannot be written.

        Examples:
            >>> import tempfile, torch
            >>> pred = Prediction(torch.tensor([[0, 1]], dtype=torch.uint8), None, ["bg", "cat"])
            >>> pred.save(Path(tempfile.mkdtemp()) / "cat.png").suffix
            '.png'
        """
        if self.multilabel:
            raise ConfigError(
                "a multilabel prediction has no single label map to save as one PNG; save "
                "each of pred.layers as its own mask (the SegmentationLabels/<label>/<id>.png "
                "layout of catseg.data.VOCMultilabelDataset), or pred.colorize() as a picture"
            )
        target = Path(path)
        if target.suffix.lower() != ".png":
            raise ConfigError(
                f"masks are saved as PNG so that labels survive; got {target.name!r}, "
                "use a '.png' file name"
            )
        return atomic_write(target, functools.partial(self.colorize(palette).save, format="PNG"))

    def uncertainty(self, method: Uncertainty = "entropy") -> torch.Tensor:
        """How unsure the model is of each pixel: 0 (certain) to 1 (no idea).

        With class probabilities ``p`` (binary: ``[1 - p, p]``), ``"entropy"`` is
        ``-sum(p * log p) / log(len(classes))`` and ``"margin"`` is ``1 - (p1 - p2)``,
        ``p1 >= p2`` the two largest. Multilabel: the mean over labels of the same
        measures of each label's ``[1 - p, p]``. The map's mean is the image's score in
        :func:`~catseg.predict.rank_for_labelling`.

        Args:
            method: ``"entropy"`` (normalised Shannon entropy) or ``"margin"``.

        Returns:
            A new ``(H, W)`` float32 map in [0, 1].

        Raises:
            ConfigError: If the prediction has no probabilities, or ``method`` is unknown.

        Examples:
            >>> import torch
            >>> probs = torch.tensor([[[0.5, 0.9]], [[0.5, 0.1]]])
            >>> pred = Prediction(torch.tensor([[0, 0]], dtype=torch.uint8), probs, ["bg", "cat"])
            >>> [round(u, 3) for u in pred.uncertainty().flatten().tolist()]
            [1.0, 0.469]
            >>> [round(u, 3) for u in pred.uncertainty("margin").flatten().tolist()]
            [1.0, 0.2]
        """
        check_choice("method", method, ("entropy", "margin"))
        p = self.probabilities
        if p is None:
            raise ConfigError("no probabilities to measure; predict with return_probabilities=True")
        p = torch.stack([1 - p, p]) if self.multilabel else p.unsqueeze(1)  # (C, layers, H, W)
        if method == "entropy":
            doubt: torch.Tensor = -torch.special.xlogy(p, p).sum(0) / math.log(p.shape[0])
        else:
            top = p.topk(2, dim=0).values
            doubt = 1 - (top[0] - top[1])
        return doubt.mean(0).clamp_(0.0, 1.0).float()

    def to_labelme(
        self,
        path: str | os.PathLike[str],
        *,
        image_path: str | os.PathLike[str] | None = None,
        shapes: Literal["polygon", "mask"] = "polygon",
        tolerance: float = 1.0,
        min_area: int = 10,
        overwrite: bool = False,
    ) -> Path:
        """Write the prediction as a labelme 5.x JSON file: a pre-annotation to correct.

        Each connected region (8-connected) of each class but label 0 becomes one shape
        labelled with the class name (255: ``"__ignore__"``); a multilabel prediction
        writes one set of shapes per label (overlaps kept). Polygons follow the region's
        outline through its edge pixels, simplified with ``tolerance``. labelme draws
        shapes in order, a later one over an earlier one, so larger shapes come first
        and a hole (a background region enclosed by others) is a later ``classes[0]``
        polygon; multilabel polygons keep their holes filled (no labelme shape removes
        one label only; ``shapes="mask"`` keeps them). Regions (and holes) smaller than
        ``min_area`` pixels are left out. Read back with
        :func:`catseg.data.read_labelme`, the cats' val masks come back on >= 99.5 % of
        pixels (default tolerance), exactly with ``tolerance=0`` or ``shapes="mask"``.

        Args:
            path: The ``.json`` file to write (atomically).
            image_path: The photo; stored as ``imagePath`` relative to the JSON's folder.
                ``None``: the prediction's image is embedded as ``imageData`` (PNG).
            shapes: ``"polygon"`` or ``"mask"`` (labelme's bitmap shape: the region's
                bounding box and its pixels as a base64 PNG, an exact copy).
            tolerance: Greatest distance in pixels of a dropped point from the
                polygon (``cv2.approxPolyDP``); 0 keeps every corner.
            min_area: Smallest region kept, in pixels.
            overwrite: Replace an existing file (a human's work, maybe); otherwise
                :class:`~catseg.errors.OutputExistsError`.

        Returns:
            The path written.

        Raises:
            OptionalDependencyError: If OpenCV is missing (``pip install "catseg[labelme]"``).
            ConfigError: If an argument is invalid or the path does not end in ``.json``.
            MissingFileError: If ``image_path`` does not exist.
            OutputExistsError: If the file exists and ``overwrite`` is false.

        Examples:
            >>> import json, tempfile, torch
            >>> mask = torch.zeros(20, 20, dtype=torch.uint8)
            >>> mask[5:15, 5:15] = 1
            >>> pred = Prediction(mask, None, ["_background_", "cat"], torch.zeros(3, 20, 20))
            >>> doc = json.loads(pred.to_labelme(Path(tempfile.mkdtemp()) / "a.json").read_text())
            >>> [(s["label"], s["points"]) for s in doc["shapes"]]
            [('cat', [[5, 5], [5, 14], [14, 14], [14, 5]])]
        """
        from catseg.predict._annotate import labelme_document  # _annotate imports _folder

        target = check_path("path", path)
        if target.suffix.lower() != ".json":
            raise ConfigError(f"labelme files end in '.json', got {target.name!r}")
        replace = check_bool("overwrite", overwrite)
        doc = labelme_document(self, target, image_path, shapes, tolerance, min_area)
        text = json.dumps(doc, ensure_ascii=False, indent=2)
        return atomic_write(target, lambda tmp: tmp.write_text(text, "utf-8"), replace=replace)
