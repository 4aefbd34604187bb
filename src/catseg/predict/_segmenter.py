"""Segmenter: the trained model plus its pre- and post-processing, on the fast path."""

from __future__ import annotations

import copy
import enum
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from catseg._runtime import Precision, resolve_device, resolve_precision
from catseg.checkpoint import load_checkpoint
from catseg.errors import CheckpointError, ConfigError
from catseg.models.preprocessing import resolve_mean_std
from catseg.predict._inputs import ImageInput
from catseg.predict._pipeline import Pipeline, Postprocess
from catseg.predict._prediction import Prediction

__all__ = ["KEEP", "Segmenter"]


class _Keep(enum.Enum):
    KEEP = "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep.KEEP
"""Default of ``image_size`` in :meth:`Segmenter.from_checkpoint`: use the file's value."""


class Segmenter(Pipeline):
    """A trained segmentation model ready to segment images of any size.

    ``predict`` reads the image (file, PIL image, array or tensor), scales pixels to
    [0, 1], resizes to ``image_size`` if one is set (bilinear, antialiased), normalises
    with ``mean``/``std``, runs the model (optionally tiled and/or with the flip
    averaged), turns logits into probabilities in fp32 (sigmoid for a 1-logit binary
    model, softmax otherwise), resizes the probabilities back to the **original** size
    (bilinear), applies ``postprocess`` and takes the argmax (or ``p > threshold`` for
    a binary model).

    The fast path is on by default: eval mode, :func:`torch.inference_mode`,
    BatchNorm folded into the convolutions (``fuse=True``, for models with a
    ``fuse_for_inference`` method), ``channels_last`` memory format and, with
    ``precision="auto"``, bf16 autocast on CUDA GPUs with bf16 and on CPUs with native
    bf16 (plain fp32 elsewhere). ``precision="fp32", fuse=False, channels_last=False``
    is the plain reference path.

    The Segmenter works on its own copy of the model: the model passed in is never
    modified (not even switched to eval mode), and later changes to it are not seen.

    Args:
        model: A module mapping ``(N, C, H, W)`` float images to ``(N, K, H, W)`` logits,
            typically a :class:`~catseg.models.UNet`. ``K = 1`` is binary (sigmoid), ``K >= 2``
            multiclass (softmax).
        classes: Class names, label 0 first: ``K`` names, or two (background, foreground)
            for a binary model. Mask values index this list.
        image_size: ``(height, width)`` to resize every image to before the model (the
            training size), or ``None`` to run at the original size. Masks are always
            returned at the original size.
        mean: Per-channel mean subtracted from [0, 1] pixels; ``None`` means zeros
            (no normalisation, as in the cat tutorial).
        std: Per-channel standard deviation the pixels are divided by; ``None`` means ones.
        threshold: Foreground probability above which a pixel of a binary model is
            foreground. Ignored by multiclass models.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ... .
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        tta: Average the probabilities of the image and its horizontal mirror.
        tile: ``(size, overlap)`` to run on overlapping ``size × size`` tiles blended
            with linear weight ramps over the overlap, which bounds memory for very
            large images (e.g. ``(1024, 256)``); ``None`` runs the whole image at once.
            Tiles start at multiples of the model's ``stride`` attribute when it has one
            (a :class:`~catseg.models.UNet` does), so they share the whole image's
            pooling grid and differ from it only near their inner edges.
        postprocess: Optional callable on the class probabilities ``(K, H, W)`` at the
            original size, returning probabilities of the same shape (e.g. smoothing).
        channels_last: Run convolutions in channels-last memory format.
        fuse: Fold BatchNorm into convolutions (models with ``fuse_for_inference``).
        batch_size: Number of images (or tiles) per forward pass in
            :meth:`predict_batch` and tiled inference.

    Raises:
        ConfigError: If an argument is invalid (the message names it and the value):
            class count not matching the model, ``mean``/``std`` of the wrong length,
            ``threshold`` outside (0, 1), bad ``tile``, unknown device or precision.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> model = UNet(3, 1, init_features=4, depth=2)
        >>> seg = Segmenter(model, classes=["_background_", "cat"], precision="fp32")
        >>> pred = seg.predict(torch.rand(3, 50, 70))
        >>> pred.mask.shape, pred.mask.dtype
        (torch.Size([50, 70]), torch.uint8)
        >>> seg.predict(torch.rand(3, 20, 30), return_probabilities=True).probabilities.shape
        torch.Size([2, 20, 30])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        classes: Sequence[str],
        image_size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        channels_last: bool = True,
        fuse: bool = True,
        batch_size: int = 8,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__qualname__}")
        mean, std = resolve_mean_std(model, mean, std, what="the Segmenter's mean/std")
        in_channels = getattr(model, "in_channels", None)
        if not isinstance(in_channels, int):
            in_channels = len(mean) if mean is not None else 3
        num_outputs = getattr(model, "num_classes", None)
        resolved = resolve_device(device)
        dtype = resolve_precision(precision, resolved)
        self._configure(
            in_channels=in_channels,
            num_outputs=num_outputs if isinstance(num_outputs, int) else None,
            classes=classes,
            image_size=image_size,
            mean=mean,
            std=std,
            threshold=threshold,
            device=resolved,
            tta=tta,
            tile=tile,
            postprocess=postprocess,
            batch_size=batch_size,
        )
        self._autocast_dtype = dtype
        self._channels_last = bool(channels_last)
        stride = getattr(model, "stride", None)
        if isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1:
            self._tile_align = stride  # tiles share the whole image's pooling grid
        fuser = getattr(model, "fuse_for_inference", None)
        module: nn.Module = fuser() if fuse and callable(fuser) else model
        if module is model:
            module = copy.deepcopy(model)
        module = module.eval().requires_grad_(False).to(resolved)
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._module: nn.Module | None = module
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self._torch_forward

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        *,
        image_size: tuple[int, int] | _Keep | None = KEEP,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        channels_last: bool = True,
        fuse: bool = True,
        batch_size: int = 8,
    ) -> Segmenter:
        """Rebuild a Segmenter from a checkpoint file alone.

        Model, weights, class names, input size and normalisation come from the file
        (see :func:`catseg.checkpoint.load_checkpoint`, which never runs code from it).

        Args:
            path: A file written by :func:`catseg.checkpoint.save_checkpoint`.
            image_size: Leave out to use the checkpoint's training size; ``None`` runs at
                the original image size; ``(height, width)`` uses that size.
            threshold: As in :class:`Segmenter`.
            device: As in :class:`Segmenter`.
            precision: As in :class:`Segmenter`.
            tta: As in :class:`Segmenter`.
            tile: As in :class:`Segmenter`.
            postprocess: As in :class:`Segmenter`.
            channels_last: As in :class:`Segmenter`.
            fuse: As in :class:`Segmenter`.
            batch_size: As in :class:`Segmenter`.

        Returns:
            A ready Segmenter.

        Raises:
            MissingFileError: If the file does not exist.
            CheckpointError: If the file is not a valid catseg checkpoint or its weights
                do not fit its model config.
            ConfigError: If an override is invalid.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from catseg.checkpoint import save_checkpoint
            >>> from catseg.models import UNet
            >>> path = Path(tempfile.mkdtemp()) / "cat.pt"
            >>> _ = save_checkpoint(path, UNet(3, 1, init_features=4, depth=2),
            ...                     classes=["_background_", "cat"], image_size=(32, 32),
            ...                     mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> seg = Segmenter.from_checkpoint(path, precision="fp32")
            >>> seg.classes, seg.image_size
            (['_background_', 'cat'], (32, 32))
            >>> Segmenter.from_checkpoint(path, image_size=None).image_size is None
            True
        """
        ckpt = load_checkpoint(path, map_location="cpu")
        try:
            model = ckpt.build_model()
        except CheckpointError as err:
            raise CheckpointError(f"{os.fspath(path)}: {err}") from err
        return cls(
            model,
            classes=ckpt.classes,
            image_size=ckpt.image_size if image_size is KEEP else image_size,
            mean=ckpt.mean,
            std=ckpt.std,
            threshold=threshold,
            device=device,
            precision=precision,
            tta=tta,
            tile=tile,
            postprocess=postprocess,
            channels_last=channels_last,
            fuse=fuse,
            batch_size=batch_size,
        )

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        *,
        classes: Sequence[str] | None = None,
        image_size: tuple[int, int] | _Keep | None = KEEP,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        threshold: float | None = None,
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        batch_size: int = 8,
        providers: Sequence[str] | None = None,
    ) -> Segmenter:
        """Run an ONNX file (from :func:`catseg.export.to_onnx`) with onnxruntime.

        Pre- and post-processing are the same as for a PyTorch model; only the forward
        pass runs in onnxruntime (fp32; ``precision``, ``fuse`` and ``channels_last`` do
        not apply). Class names, input size, normalisation and threshold are read from
        the file's metadata when it was exported from a Segmenter; arguments given here
        take precedence.

        Args:
            path: The ``.onnx`` file.
            classes: Class names; needed when the file carries none (a bare UNet export).
            image_size: Leave out to use the file's; ``None`` or ``(height, width)`` as in
                :meth:`from_checkpoint`.
            mean: Normalisation mean; ``None`` takes the file's, else zeros.
            std: Normalisation std; ``None`` takes the file's, else ones.
            threshold: Binary threshold; ``None`` takes the file's, else 0.5.
            tta: As in :class:`Segmenter`.
            tile: As in :class:`Segmenter`.
            postprocess: As in :class:`Segmenter`.
            batch_size: As in :class:`Segmenter`.
            providers: onnxruntime execution providers (default: CUDA if present, CPU).

        Returns:
            A Segmenter whose forward pass runs in onnxruntime.

        Raises:
            OptionalDependencyError: If onnxruntime is not installed (extra ``onnx``).
            MissingFileError: If the file does not exist.
            CheckpointError: If the file is not a usable ONNX segmentation model.
            ConfigError: If the file has no class names and none are given, or an
                argument is invalid.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> import torch
            >>> from catseg.export import to_onnx
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["bg", "cat"],
            ...                 precision="fp32")
            >>> path = to_onnx(seg, Path(tempfile.mkdtemp()) / "cat.onnx")
            >>> onnx_seg = Segmenter.from_onnx(path)
            >>> x = torch.rand(3, 40, 52)
            >>> bool((onnx_seg.predict(x).mask == seg.predict(x).mask).all())
            True
        """
        from catseg.export import OnnxRunner  # onnxruntime is an optional extra

        runner = OnnxRunner(path, providers=providers)
        meta = runner.metadata
        if classes is None:
            classes = meta.get("classes")
            if classes is None:
                raise ConfigError(
                    f"{path} has no class names in its metadata (exported from a bare model?); "
                    "pass classes=[...], label 0 first"
                )
        if image_size is KEEP:
            stored = meta.get("image_size")
            image_size = (int(stored[0]), int(stored[1])) if stored is not None else None
        mean = mean if mean is not None else meta.get("mean")
        std = std if std is not None else meta.get("std")
        if threshold is None:
            threshold = float(meta.get("threshold", 0.5))
        in_channels = runner.in_channels
        if in_channels is None:
            in_channels = len(mean) if mean is not None else 3
        seg = cls.__new__(cls)
        seg._configure(
            in_channels=in_channels,
            num_outputs=runner.num_classes,
            classes=classes,
            image_size=image_size,
            mean=mean,
            std=std,
            threshold=threshold,
            device=torch.device("cpu"),
            tta=tta,
            tile=tile,
            postprocess=postprocess,
            batch_size=batch_size,
        )
        seg._autocast_dtype = None
        seg._channels_last = False
        seg._module = None
        seg._forward = runner
        return seg

    # ------------------------------------------------------------------ public API
    def predict(self, image: ImageInput, *, return_probabilities: bool = False) -> Prediction:
        """Segment one image.

        Args:
            image: A file path; a PIL image (any mode, EXIF orientation applied for
                files); a uint8 NumPy array ``(H, W)`` or ``(H, W, C)`` with C in 1, 3, 4
                (grey repeated, alpha dropped); or a tensor ``(C, H, W)``, uint8 or float in
                [0, 1]. Any size. The input is never modified.
            return_probabilities: Also return the class probabilities.

        Returns:
            A :class:`Prediction` whose mask has the input's height and width.

        Raises:
            MissingFileError: If the path does not exist.
            DataError: If the file is not a readable image, or a float tensor is
                outside [0, 1].
            ShapeError: If the image is empty (0 pixels) or has the wrong number of
                channels or dimensions.
            DTypeError: If an array is not uint8 or the input type is unsupported.
            NonFiniteError: If the input or the model's output contains NaN/inf.

        Shape:
            - image: ``(H, W, C)`` array or ``(C, H, W)`` tensor.
            - mask: ``(H, W)``.

        Examples:
            >>> import numpy as np
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 3, init_features=4, depth=2), classes=["a", "b", "c"],
            ...                 image_size=(32, 32))
            >>> seg.predict(np.zeros((45, 61, 3), dtype=np.uint8)).mask.shape
            torch.Size([45, 61])
        """
        return self.predict_batch([image], return_probabilities=return_probabilities)[0]

    def predict_batch(
        self, images: Iterable[ImageInput], *, return_probabilities: bool = False
    ) -> list[Prediction]:
        """Segment several images, ``batch_size`` at a time, in input order.

        Images are read ``batch_size`` at a time; within those, images that have the same
        size after preprocessing (all of them when ``image_size`` is set) share one
        forward pass, and the others run in smaller groups, so results equal
        ``predict`` on each image.

        Args:
            images: Any iterable of inputs accepted by :meth:`predict`.
            return_probabilities: Also return the class probabilities.

        Returns:
            One :class:`Prediction` per image, in order.

        Raises:
            MissingFileError: As in :meth:`predict`.
            DataError: As in :meth:`predict`.
            ShapeError: As in :meth:`predict`.
            DTypeError: As in :meth:`predict`.
            NonFiniteError: As in :meth:`predict`.

        Examples:
            >>> import torch
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["bg", "cat"])
            >>> preds = seg.predict_batch([torch.rand(3, 20, 30), torch.rand(3, 41, 17)])
            >>> [tuple(p.mask.shape) for p in preds]
            [(20, 30), (41, 17)]
        """
        results: list[Prediction] = []
        pending: list[Any] = []
        with torch.inference_mode():
            for image in images:
                pending.append(image)
                if len(pending) == self._batch_size:
                    results.extend(self._predict_chunk(pending, return_probabilities))
                    pending = []
            if pending:
                results.extend(self._predict_chunk(pending, return_probabilities))
        return results
