"""The result of segmenting one image."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from catseg._files import atomic_write
from catseg.data._inputs import display_image
from catseg.data._io import open_image
from catseg.errors import ConfigError, DataError
from catseg.visualize import PaletteName, colorize, colorize_layers, overlay, overlay_layers


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
