"""Segmenter: the trained model plus its pre- and post-processing, on the fast path."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from catseg._runtime import Precision, require
from catseg._validation import check_bool, check_path
from catseg.checkpoint import load_checkpoint
from catseg.data._inputs import ImageInput
from catseg.errors import ConfigError
from catseg.export._runner import OnnxRunner
from catseg.models import UNet
from catseg.models.config import Mode, UNetConfig
from catseg.predict._folder import FolderSummary, OnError, predict_folder
from catseg.predict._pipeline import Backend, Pipeline, Postprocess, make_backend
from catseg.predict._prediction import Prediction

if TYPE_CHECKING:
    from catseg.metrics import IoUResult
    from catseg.training import History
    from catseg.visualize import PaletteName

Threshold = float | Sequence[float]


def _record(
    backend: Backend,
    classes: Sequence[str] | None,
    mode: Mode | None,
    image_size: int | tuple[int, int] | None,
    threshold: Threshold | None,
) -> UNetConfig:
    """The backend's record with the given facts, checked by :class:`UNetConfig` itself."""
    base = backend.config
    if base is None:  # a module without a record: fitted to its outputs on the first pass
        named = isinstance(classes, list | tuple) and mode != "binary"
        guess = len(classes) if named and classes else 1
        base = UNetConfig(backend.in_channels or 3, backend.num_outputs or guess)
    given = {"classes": classes, "mode": mode, "image_size": image_size, "threshold": threshold}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    record = dataclasses.replace(base, **changes)
    static = backend.static_size
    if static is not None and record.image_size not in (None, static):
        raise ConfigError(
            f"{backend.name} accepts only {static[0]}x{static[1]} (H x W) inputs, so "
            f"image_size must be {static}, got {record.image_size!r} (export with "
            "dynamic_size=True for any size)"
        )
    if static is not None:
        record = dataclasses.replace(record, image_size=static)
    if isinstance(backend.module, UNet):  # the Segmenter's copy carries the resolved record
        backend.module.describe(
            classes=record.classes,
            mode=record.mode,
            image_size=record.image_size,
            threshold=record.threshold,
        )
    return record


def _keywords(arguments: dict[str, Any]) -> dict[str, Any]:
    """The Segmenter keywords among a constructor's ``locals()`` (its other inputs dropped)."""
    return {k: v for k, v in arguments.items() if k in _KEYWORDS}


class Segmenter:
    """A trained segmentation model ready to segment images of any size.

    ``predict`` reads the image, scales pixels to [0, 1], resizes to ``image_size``
    (bilinear, antialiased), normalises with the record's mean/std, runs the model
    (optionally tiled and/or flip-averaged), turns logits into fp32 probabilities
    (softmax for multiclass, else sigmoid), resizes them back to the **original** size,
    applies ``postprocess`` and takes the arg-max (or ``p > threshold``), on the
    model's device. The model's record (``model.config``, see
    :meth:`~catseg.models.UNet.describe`; an ONNX file's metadata) supplies classes,
    mode, input size, threshold and mean/std: a keyword left at ``None`` takes the
    record's value, one given replaces it (checked by :class:`~catseg.models.UNetConfig`).
    A module without a record gets default names and the identity normalisation.

    The fast path is the default: :func:`torch.inference_mode`, BatchNorm folded into
    the convolutions, ``channels_last`` and, with ``precision="auto"``, bf16 where the
    hardware has it natively; ``precision="fp32", fuse=False, channels_last=False`` is
    the plain reference path. The Segmenter runs its own copy of a module (carrying the
    resolved record): the model passed in is never modified.

    Args:
        model: A module mapping ``(N, C, H, W)`` images to ``(N, K, H, W)`` logits,
            typically a :class:`~catseg.models.UNet`, or an
            :class:`~catseg.export.OnnxRunner`.
        classes: Class names, label 0 first (two for a binary model, the K labels of a
            multilabel one).
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` (K sigmoid maps: each
            :class:`Prediction` holds ``(K, H, W)`` boolean layers).
        image_size: ``(height, width)`` (an int for a square) images are resized to
            before the model; the original size if neither it nor the record says.
        threshold: Foreground probability in (0, 1); one per label for multilabel.
        tta: Average the probabilities of the image and its horizontal mirror.
        tile: ``(size, overlap)``: run on overlapping tiles, blended, to bound memory
            for very large images (e.g. ``(1024, 256)``).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ... .
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        batch_size: Images (or tiles) per forward pass.
        postprocess: Callable on the class probabilities ``(K, H, W)`` at the original
            size, returning probabilities of the same shape (e.g. smoothing).
        channels_last: Run convolutions in channels-last memory format.
        fuse: Fold BatchNorm into convolutions (models with ``fuse_for_inference``).

    Raises:
        ConfigError: If an argument is invalid (named with its value), e.g. a class
            count that does not fit the model or a tile smaller than its stride.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> model = UNet(3, 1, init_features=4, depth=2)
        >>> seg = Segmenter(model, classes=["_background_", "cat"], precision="fp32")
        >>> pred = seg.predict(torch.rand(3, 50, 70))
        >>> pred.mask.shape, pred.mask.dtype
        (torch.Size([50, 70]), torch.uint8)
        >>> layers = Segmenter(UNet(3, 3, init_features=4, depth=2), classes=["sky", "tree", "car"],
        ...                    mode="multilabel").predict(torch.rand(3, 20, 30)).mask
        >>> layers.shape, layers.dtype
        (torch.Size([3, 20, 30]), torch.bool)
    """

    def __init__(  # noqa: PLR0913 (one keyword per setting)
        self,
        model: nn.Module | OnnxRunner,
        *,
        classes: Sequence[str] | None = None,
        mode: Mode | None = None,
        image_size: int | tuple[int, int] | None = None,
        threshold: Threshold | None = None,
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        batch_size: int = 8,
        postprocess: Postprocess | None = None,
        channels_last: bool = True,
        fuse: bool = True,
    ) -> None:
        backend = make_backend(model, device, precision, channels_last, fuse)
        self._pipeline = Pipeline(
            backend,
            _record(backend, classes, mode, image_size, threshold),
            mode=mode,
            tta=tta,
            tile=tile,
            batch_size=batch_size,
            postprocess=postprocess,
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_checkpoint(  # noqa: PLR0913 (one keyword per setting)
        cls,
        path: str | os.PathLike[str],
        *,
        classes: Sequence[str] | None = None,
        mode: Mode | None = None,
        image_size: int | tuple[int, int] | None = None,
        threshold: Threshold | None = None,
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        batch_size: int = 8,
        postprocess: Postprocess | None = None,
        channels_last: bool = True,
        fuse: bool = True,
    ) -> Segmenter:
        """Rebuild a Segmenter from a checkpoint file alone.

        ``Segmenter(load_checkpoint(path).build_model(), ...)``: the model, its weights
        and its record come from ``path``, a file written by
        :func:`~catseg.checkpoint.save_checkpoint` (loading never runs code from it); the
        keywords are :class:`Segmenter`'s.

        Returns:
            A ready Segmenter.

        Raises:
            MissingFileError: If the file does not exist.
            CheckpointError: If the file is not a valid catseg checkpoint.
            ConfigError: If a keyword is invalid.

        Examples:
            >>> import tempfile
            >>> from catseg.checkpoint import save_checkpoint
            >>> from catseg.models import UNet
            >>> model = UNet(3, 1, init_features=4, depth=2).describe(classes=["bg", "cat"])
            >>> path = save_checkpoint(Path(tempfile.mkdtemp()) / "cat.pt", model)
            >>> Segmenter.from_checkpoint(path, precision="fp32").classes
            ['bg', 'cat']
        """
        model = load_checkpoint(path, map_location="cpu").build_model()
        return cls(model, **_keywords(locals()))

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        *,
        classes: Sequence[str] | None = None,
        mode: Mode | None = None,
        image_size: int | tuple[int, int] | None = None,
        threshold: Threshold | None = None,
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        batch_size: int = 8,
        postprocess: Postprocess | None = None,
        providers: Sequence[str] | None = None,
    ) -> Segmenter:
        """Run an ONNX file (from :func:`catseg.export.to_onnx`) with onnxruntime.

        ``Segmenter(OnnxRunner(path, providers=providers), ...)``: the record comes from
        the file's metadata; the keywords are :class:`Segmenter`'s. Pre- and
        post-processing are those of a PyTorch model; the forward pass runs in
        onnxruntime, in the file's precision, with the execution ``providers`` (default:
        CUDA if present, then the CPU), so ``device`` and ``precision`` stay ``"auto"``.
        A file exported with ``dynamic_size=False`` runs at its one size.

        Returns:
            A Segmenter whose forward pass runs in onnxruntime.

        Raises:
            OptionalDependencyError: If onnxruntime is not installed (extra ``onnx``).
            MissingFileError: If the file does not exist.
            CheckpointError: If the file is not a usable model or its record is invalid.
            ConfigError: If a keyword is invalid.

        Examples:
            >>> import tempfile
            >>> from catseg.export import to_onnx
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["bg", "cat"])
            >>> Segmenter.from_onnx(to_onnx(seg, Path(tempfile.mkdtemp()) / "c.onnx")).classes
            ['bg', 'cat']
        """
        return cls(OnnxRunner(path, providers=providers), **_keywords(locals()))

    @classmethod
    def from_pretrained(  # noqa: PLR0913 (one keyword per setting)
        cls,
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        classes: Sequence[str] | None = None,
        mode: Mode | None = None,
        image_size: int | tuple[int, int] | None = None,
        threshold: Threshold | None = None,
        tta: bool = False,
        tile: tuple[int, int] | None = None,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        batch_size: int = 8,
        postprocess: Postprocess | None = None,
        channels_last: bool = True,
        fuse: bool = True,
    ) -> Segmenter:
        """Load a model folder written by :meth:`save_pretrained`, or a hub repo id.

        ``Segmenter(load_pretrained(source, ...).model, ...)``: the model and its record
        come from ``source``, a model folder or a Hugging Face Hub repo id ``"user/name"``
        (the ``hub`` extra; ``revision`` and ``cache_dir`` as in
        :func:`catseg.hub.load_pretrained`, which never runs code from it); the keywords
        are :class:`Segmenter`'s.

        Returns:
            A ready Segmenter.

        Raises:
            MissingFileError: If the folder or one of its files is missing.
            CheckpointError: If a file is malformed or does not fit the weights.
            OptionalDependencyError: If safetensors (extra ``safetensors``) or
                huggingface_hub (extra ``hub``, repo ids) is not installed.
            ConfigError: If a keyword is invalid.

        Examples:
            >>> import tempfile
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), image_size=32)
            >>> folder = seg.save_pretrained(Path(tempfile.mkdtemp()) / "cat-unet")
            >>> Segmenter.from_pretrained(folder).image_size
            (32, 32)
        """
        from catseg.hub import load_pretrained

        model = load_pretrained(source, revision=revision, cache_dir=cache_dir).model
        return cls(model, **_keywords(locals()))

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        *,
        history: History | None = None,
        evaluation: IoUResult | None = None,
        palette: PaletteName | Sequence[int] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write this Segmenter's model, whose record holds its resolved facts, as a model folder.

        :func:`catseg.hub.save_pretrained` on the Segmenter's own copy of the model,
        fused (for inference only) unless it was built with ``fuse=False``.

        Args:
            folder: Destination folder (see :func:`catseg.hub.save_pretrained`).
            history: Training history summarised in the config and on the card.
            evaluation: Validation :class:`~catseg.metrics.IoUResult` (on the card).
            palette: Class colours recorded in the config and shown on the card.
            overwrite: Write into a non-empty folder that is not a model folder.

        Returns:
            The folder, as a :class:`~pathlib.Path`.

        Raises:
            ConfigError: If the Segmenter runs ONNX, or as in
                :func:`catseg.hub.save_pretrained`.
            OptionalDependencyError: If safetensors is not installed.
        """
        from catseg.hub import save_pretrained

        if not isinstance(self.model, UNet):
            raise ConfigError("save_pretrained needs a UNet; this Segmenter runs an ONNX file")
        card: dict[str, Any] = {"palette": palette, "history": history, "evaluation": evaluation}
        return save_pretrained(folder, self.model, overwrite=overwrite, **card)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        commit_message: str = "Upload catseg model",
        revision: str | None = None,
        history: History | None = None,
        evaluation: IoUResult | None = None,
        palette: PaletteName | Sequence[int] | None = None,
    ) -> str:
        """Upload this Segmenter to the Hugging Face Hub as a model folder.

        :meth:`save_pretrained` into a temporary folder, then
        :func:`catseg.hub.push_to_hub` (to edit the card first, call them yourself).

        Args:
            repo_id: ``"user/name"`` of the model repo.
            token: Hub token (default: the one ``huggingface-cli login`` stored).
            private: Make a newly created repo private (``None``: the hub's default).
            commit_message: Message of the upload commit.
            revision: Branch to commit to (default ``main``).
            history: As in :meth:`save_pretrained`.
            evaluation: As in :meth:`save_pretrained`.
            palette: As in :meth:`save_pretrained`.

        Returns:
            The URL of the commit.

        Raises:
            OptionalDependencyError: If huggingface_hub (extra ``hub``) or safetensors is
                not installed; checked before anything is written.
            ConfigError: As in :meth:`save_pretrained`, or a bad ``repo_id``.
            CheckpointError: If the hub refuses or cannot be reached (its error chained).
        """
        from catseg.hub import push_to_hub

        require("huggingface_hub", "hub")  # fail before saving when the extra is missing
        hub: dict[str, Any] = {"token": token, "private": private, "commit_message": commit_message}
        card: dict[str, Any] = {"palette": palette, "history": history, "evaluation": evaluation}
        with tempfile.TemporaryDirectory(prefix="catseg-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", **card)
            return push_to_hub(folder, repo_id, revision=revision, **hub)

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> UNetConfig:
        """The resolved record: classes, mode, image size, threshold, preprocessing."""
        return self._pipeline.record

    @property
    def classes(self) -> list[str]:
        """Class names, label 0 first (a copy)."""
        return list(self.config.class_names)

    @property
    def mode(self) -> Mode:
        """``"binary"``, ``"multiclass"`` or ``"multilabel"``."""
        return self.config.mode  # type: ignore[return-value]  # resolved: never None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` images are resized to before the model, or ``None``."""
        return self.config.image_size

    @property
    def threshold(self) -> float | tuple[float, ...]:
        """Foreground probability threshold (one per label, if given so)."""
        return self.config.threshold

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel normalisation mean (the record's; zeros without one)."""
        return self._pipeline.norm.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel normalisation standard deviation (the record's; ones without one)."""
        return self._pipeline.norm.std

    @property
    def device(self) -> torch.device:
        """The device the model (and the pre- and post-processing) runs on."""
        return self._pipeline.backend.device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype ``precision`` resolved to, ``None`` for plain fp32."""
        return self._pipeline.backend.autocast_dtype

    @property
    def model(self) -> nn.Module | None:
        """The Segmenter's own (possibly fused) copy of the model; ``None`` for ONNX."""
        return self._pipeline.backend.module

    def __repr__(self) -> str:
        p = self._pipeline
        precision = {None: "fp32", torch.bfloat16: "bf16"}.get(p.backend.autocast_dtype, "fp16")
        return (
            f"Segmenter(classes={self.classes!r}, mode={self.mode!r}, "
            f"image_size={self.image_size}, device={str(self.device)!r}, "
            f"precision={precision!r}, tta={p.tta}, tile={p.tile})"
        )

    # ------------------------------------------------------------------ public API
    def predict(self, image: ImageInput, *, return_probabilities: bool = False) -> Prediction:
        """Segment one image.

        Args:
            image: A file path, a PIL image, a uint8 array ``(H, W)`` or ``(H, W, C)``
                (C in 1, 3, 4) or a ``(C, H, W)`` tensor, uint8 or float in [0, 1]; any
                size; never modified.
            return_probabilities: Also return the class probabilities.

        Returns:
            A :class:`Prediction` whose mask has the input's height and width.

        Raises:
            MissingFileError: If the path does not exist.
            DataError: If the file is not a readable image, or a float tensor is
                outside [0, 1].
            ShapeError: If the image is empty or has the wrong channels or dimensions.
            DTypeError: If an array is not uint8 or the input type is unsupported.
            NonFiniteError: If the input or the model's output contains NaN/inf.

        Examples:
            >>> import numpy as np
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 3, init_features=4, depth=2), image_size=(32, 32))
            >>> seg.predict(np.zeros((45, 61, 3), dtype=np.uint8)).mask.shape
            torch.Size([45, 61])
        """
        return self.predict_batch([image], return_probabilities=return_probabilities)[0]

    def predict_batch(
        self, images: Iterable[ImageInput], *, return_probabilities: bool = False
    ) -> list[Prediction]:
        """Segment several images, ``batch_size`` at a time, in input order.

        Images of the same size after preprocessing share a forward pass, so results
        equal :meth:`predict` on each image.

        Args:
            images: Any iterable of inputs accepted by :meth:`predict`.
            return_probabilities: Also return the class probabilities.

        Returns:
            One :class:`Prediction` per image, in order.

        Raises:
            CatsegError: As :meth:`predict` raises for an image.

        Examples:
            >>> import torch
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["bg", "cat"])
            >>> preds = seg.predict_batch([torch.rand(3, 20, 30), torch.rand(3, 41, 17)])
            >>> [tuple(p.mask.shape) for p in preds]
            [(20, 30), (41, 17)]
        """
        results: list[Prediction] = []
        probabilities = check_bool("return_probabilities", return_probabilities)
        remaining = iter(images)
        with torch.inference_mode():
            while chunk := list(itertools.islice(remaining, self._pipeline.batch_size)):
                results.extend(self._pipeline.run(chunk, probabilities))
        return results

    def predict_folder(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        pattern: str | Sequence[str] | None = None,
        files: Iterable[str | os.PathLike[str]] | None = None,
        overlay: bool = False,
        labelme: bool = False,
        overwrite: bool = False,
        on_error: OnError = "skip",
        num_workers: int | None = None,
        progress: bool = False,
    ) -> FolderSummary:
        """Segment every photo under a folder into a palette PNG under ``dst``.

        Photos are decoded by DataLoader workers while the model runs, segmented as
        :meth:`predict` would, and each mask is written atomically as soon as its batch
        is done, under the photo's relative path (``src/a/b.jpg`` -> ``dst/a/b.png``).
        A file already in ``dst`` is never replaced unless ``overwrite=True``: photos
        whose outputs all exist are skipped (an interrupted run resumes), of the others
        only the missing outputs are written. Under ``torchrun`` each process takes the
        shard ``sorted_paths[rank::world_size]`` (see the inference guide).

        Args:
            src: The folder of photos; nothing outside it is read (links leaving it
                are reported in ``failed``).
            dst: The output folder, created when missing; inside ``src`` only if
                ``pattern`` does not match what is written there.
            pattern: A glob relative to ``src`` (``"**/*.jpg"``: any depth) or a tuple
                of them, case-insensitive; default ``*.jpg``, ``*.jpeg``, ``*.png``.
            files: Instead of ``pattern``, the photos (paths under ``src``).
            overlay: Also write ``<name>.overlay.jpg``, the mask over the photo.
            labelme: Also write ``<name>.json``, a labelme pre-annotation of the photo
                (:meth:`Prediction.to_labelme` with its defaults; ``imagePath`` leads
                back to the photo, so read it with ``image_root=`` a common parent).
            overwrite: Segment every photo again and replace existing outputs.
            on_error: ``"skip"`` records an unreadable photo in the summary;
                ``"raise"`` stops with its :class:`~catseg.errors.DataError`.
            num_workers: Decoding processes (0: in this process); ``None``: the cores
                the model leaves free, at most 4.
            progress: Show a tqdm bar (``progress`` extra; rank 0 only).

        Returns:
            A :class:`FolderSummary` of written, skipped and failed photos.

        Raises:
            MissingFileError: If ``src`` does not exist.
            ConfigError: If an argument is invalid, or ``dst`` lies inside ``src`` and
                ``pattern`` matches the outputs.
            DataError: With ``on_error="raise"``, for the first unreadable photo.
            OSError: If an output cannot be written.

        Examples:
            >>> import tempfile
            >>> from PIL import Image
            >>> from catseg.models import UNet
            >>> src, dst = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
            >>> Image.new("RGB", (40, 30)).save(src / "cat.jpg")
            >>> (src / "broken.jpg").write_bytes(b"not a jpeg")
            10
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2))
            >>> summary, again = (seg.predict_folder(src, dst, num_workers=0) for _ in "12")
            >>> summary.written, [p.name for p, _ in summary.failed], again.skipped
            (1, ['broken.jpg'], 1)
        """
        settings = {k: v for k, v in locals().items() if k not in ("self", "src", "dst")}
        for name in ("overlay", "labelme", "overwrite", "progress"):
            check_bool(name, settings[name])
        source, target = check_path("src", src), check_path("dst", dst)
        return predict_folder(self._pipeline, source, target, **settings)


_KEYWORDS = frozenset(inspect.signature(Segmenter).parameters) - {"model"}
