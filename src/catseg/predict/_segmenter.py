"""Segmenter: the trained model plus its pre- and post-processing, on the fast path."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from catseg._runtime import Precision
from catseg.checkpoint import load_checkpoint
from catseg.data._inputs import ImageInput
from catseg.errors import CheckpointError, ConfigError
from catseg.export._runner import OnnxRunner
from catseg.models.preprocessing import resolve_mean_std
from catseg.predict._backend import Backend, onnx_backend, torch_backend
from catseg.predict._folder import FolderRequest, FolderSummary, OnError, predict_folder
from catseg.predict._options import (
    KEEP,
    Keep,
    Postprocess,
    SegmenterMode,
    SegmenterOptions,
    merge_options,
)
from catseg.predict._pipeline import Pipeline, check_class_count
from catseg.predict._prediction import Prediction

if TYPE_CHECKING:
    from catseg.metrics import IoUResult
    from catseg.training import History
    from catseg.visualize import PaletteName

__all__ = ["Segmenter"]

_MOVED_TO_OPTIONS = ("batch_size", "channels_last", "fuse")


def _take_deprecated(options: SegmenterOptions, given: dict[str, Any]) -> SegmenterOptions:
    """Fold the keywords that moved to SegmenterOptions into ``options``, with a warning."""
    unknown = sorted(set(given) - set(_MOVED_TO_OPTIONS))
    if unknown:
        raise ConfigError(
            f"Segmenter got unexpected keyword argument(s) {unknown}; the settings are the "
            f"fields of SegmenterOptions: {[f.name for f in dataclasses.fields(options)]}"
        )
    if not given:
        return options
    changed = dataclasses.replace(options, **given)  # validates them first
    names = ", ".join(sorted(given))
    warnings.warn(
        f"the Segmenter keyword argument(s) {names} are deprecated and will be removed in "
        f"catseg 1.0; set them in options=SegmenterOptions(...) instead "
        "(Segmenter.from_checkpoint keeps these keywords)",
        DeprecationWarning,
        stacklevel=3,
    )
    return changed


def _tile_hint(size: int, stride: int) -> int:
    """The multiple of ``stride`` nearest to ``size`` (at least ``stride``)."""
    return max(stride, round(size / stride) * stride)


def _resolve(options: SegmenterOptions, backend: Backend) -> SegmenterOptions:
    """``options`` with the "from the source" fields filled in and checked against the model."""
    stored = backend.stored
    classes = options.classes if options.classes is not None else stored.get("classes")
    if classes is None:
        where = (
            f"{backend.name} has no class names in its metadata (exported from a bare model?); "
            if backend.module is None
            else ""
        )
        raise ConfigError(f"{where}pass classes=[...], label 0 first")
    image_size = stored.get("image_size") if options.image_size is KEEP else options.image_size
    mean = options.mean if options.mean is not None else stored.get("mean")
    std = options.std if options.std is not None else stored.get("std")
    channels = backend.in_channels or len(mean or std or (0.0,) * 3)
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) != channels:
            raise ConfigError(
                f"{name} must hold {channels} numbers (one per input channel), got "
                f"{tuple(values)!r}"
            )
    threshold = options.threshold
    mode = _resolve_mode(options, backend)
    resolved = dataclasses.replace(
        options,
        mode=mode,
        classes=classes,
        image_size=image_size,
        mean=mean if mean is not None else (0.0,) * channels,
        std=std if std is not None else (1.0,) * channels,
        threshold=threshold if threshold is not None else stored.get("threshold", 0.5),
    )
    assert resolved.classes is not None
    if backend.num_outputs is not None:
        check_class_count(resolved.classes, backend.num_outputs, resolved.mode)
    if isinstance(resolved.threshold, tuple) and len(resolved.threshold) != len(resolved.classes):
        raise ConfigError(
            f"threshold holds {len(resolved.threshold)} values but the model has "
            f"{len(resolved.classes)} labels {list(resolved.classes)!r}; give one per label "
            "or a single number"
        )
    _check_geometry(resolved, backend)
    return resolved


def _resolve_mode(options: SegmenterOptions, backend: Backend) -> SegmenterMode | None:
    """The options' mode, else the file's; ``None`` when neither says (binary/multiclass)."""
    mode: SegmenterMode | None = options.mode or backend.stored.get("mode")
    outputs = backend.num_outputs
    if mode is None:
        if isinstance(options.threshold, tuple):
            raise ConfigError(
                "one threshold per label applies to mode='multilabel' only; pass "
                "SegmenterOptions(mode='multilabel', ...) or a single threshold"
            )
        return None
    if outputs is not None and (
        (mode == "binary" and outputs != 1) or (mode == "multiclass" and outputs < 2)
    ):
        raise ConfigError(
            f"mode={mode!r} does not fit {backend.name}, which has {outputs} output "
            "channel(s): binary needs 1, multiclass at least 2 (use mode='multilabel' for "
            "independent sigmoid channels)"
        )
    return mode


def _check_geometry(options: SegmenterOptions, backend: Backend) -> None:
    """Tiles of at least one stride; a fixed-size ONNX file gets exactly its size."""
    if options.tile is not None and options.tile[0] < backend.stride:
        size, overlap = options.tile
        hint = _tile_hint(size, backend.stride)
        raise ConfigError(
            f"tile size {size} is smaller than the model's stride {backend.stride}: a tile "
            f"must span at least one cell of the model's pooling grid; use a multiple of "
            f"{backend.stride}, e.g. tile=({hint}, {min(overlap, hint // 2)})"
        )
    if backend.static_size is not None:
        if options.image_size != backend.static_size:
            raise ConfigError(
                f"{backend.name} accepts only {backend.static_size[0]}x{backend.static_size[1]} "
                f"(H x W) inputs, so image_size must be {backend.static_size}, got "
                f"{options.image_size!r} (export with dynamic_size=True for any size)"
            )
        if options.tile is not None:
            raise ConfigError(
                f"{backend.name} accepts only one input size, so it cannot run on tiles; "
                f"pass tile=None (export with dynamic_size=True to tile)"
            )


class Segmenter:
    """A trained segmentation model ready to segment images of any size.

    ``predict`` reads the image (file, PIL image, array or tensor), scales pixels to
    [0, 1], resizes to ``image_size`` if one is set (bilinear, antialiased), normalises
    with ``mean``/``std``, runs the model (optionally tiled and/or with the flip
    averaged), turns logits into probabilities in fp32 (sigmoid for a 1-logit binary
    model, softmax otherwise), resizes the probabilities back to the **original** size
    (bilinear), applies ``postprocess`` and takes the argmax (or ``p > threshold`` for
    a binary model). Everything after reading runs on the model's device, a group of
    same-size images at a time: uint8 pixels are uploaded as they are and only the
    uint8 masks come back.

    The fast path is on by default: eval mode, :func:`torch.inference_mode`,
    BatchNorm folded into the convolutions (``fuse=True``, for models with a
    ``fuse_for_inference`` method), ``channels_last`` memory format and, with
    ``precision="auto"``, bf16 autocast on CUDA GPUs with bf16 and on CPUs with native
    bf16 (plain fp32 elsewhere). ``SegmenterOptions(precision="fp32", fuse=False,
    channels_last=False)`` is the plain reference path.

    A Segmenter is built from a forward **backend** and one :class:`SegmenterOptions`:
    the backend is a PyTorch module, or an :class:`~catseg.export.OnnxRunner` (whose
    file's metadata supplies class names, input size and normalisation). The keyword
    arguments override single fields of ``options``; :meth:`from_checkpoint` and
    :meth:`from_onnx` build the backend from a file. The Segmenter works on its own copy
    of a module: the model passed in is never modified (not even switched to eval
    mode), and later changes to it are not seen.

    Args:
        backend: A module mapping ``(N, C, H, W)`` float images to ``(N, K, H, W)``
            logits, typically a :class:`~catseg.models.UNet` (``K = 1`` is binary,
            sigmoid; ``K >= 2`` multiclass, softmax), or an
            :class:`~catseg.export.OnnxRunner`.
        options: All settings (see :class:`SegmenterOptions` for each field); ``None``
            means the defaults.
        classes: Class names, label 0 first (``K`` names, or two for a binary model);
            needed unless the backend's file stores them.
        image_size: ``(height, width)`` to resize every image to before the model (the
            training size), or ``None`` for the original size.
        mean: Per-channel mean subtracted from [0, 1] pixels (default zeros).
        std: Per-channel standard deviation the pixels are divided by (default ones).
        threshold: Foreground probability threshold of a binary model (default 0.5).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ... .
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        tta: Average the probabilities of the image and its horizontal mirror.
        tile: ``(size, overlap)`` for tiled inference of very large images (e.g.
            ``(1024, 256)``); tiles start at multiples of the model's ``stride``.
        postprocess: Callable on the class probabilities ``(K, H, W)`` at the original
            size, returning probabilities of the same shape (e.g. smoothing).
        **moved: ``batch_size``, ``channels_last`` and ``fuse`` are still accepted here
            but deprecated: set them in ``options``.

    A keyword left at ``None`` (``KEEP`` for ``image_size``) keeps the value in
    ``options``; to clear a field that ``options`` sets, use
    :func:`dataclasses.replace` on the options.

    Raises:
        ConfigError: If an argument is invalid (the message names it and the value):
            class count not matching the model, ``mean``/``std`` of the wrong length,
            ``threshold`` outside (0, 1), a tile smaller than the model's stride,
            unknown device or precision, a backend of another type.

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

        One options object describes the whole set-up and can be reused:

        >>> from catseg.predict import SegmenterOptions
        >>> plain = SegmenterOptions(classes=["_background_", "cat"], precision="fp32",
        ...                          fuse=False, channels_last=False, batch_size=4)
        >>> reference = Segmenter(model, plain)
        >>> reference.options.batch_size, reference.options.mean
        (4, (0.0, 0.0, 0.0))
        >>> bool((reference.predict(torch.rand(3, 9, 9)).mask <= 1).all())
        True
    """

    def __init__(
        self,
        backend: nn.Module | OnnxRunner,
        options: SegmenterOptions | None = None,
        *,
        classes: Sequence[str] | None = None,
        image_size: tuple[int, int] | Keep | None = KEEP,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        threshold: float | None = None,
        device: str | torch.device | None = None,
        precision: Precision | None = None,
        tta: bool | None = None,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        **moved: Any,
    ) -> None:
        merged = merge_options(
            options,
            {
                "classes": classes,
                "image_size": image_size,
                "mean": mean,
                "std": std,
                "threshold": threshold,
                "device": device,
                "precision": precision,
                "tta": tta,
                "tile": tile,
                "postprocess": postprocess,
            },
        )
        merged = _take_deprecated(merged, moved)
        if isinstance(backend, nn.Module):
            # the model's recorded normalisation wins; a different one given here is an error
            mean_r, std_r = resolve_mean_std(
                backend, merged.mean, merged.std, what="the Segmenter's mean/std"
            )
            merged = dataclasses.replace(
                merged,
                mean=None if mean_r is None else tuple(float(v) for v in mean_r),
                std=None if std_r is None else tuple(float(v) for v in std_r),
            )
            self._backend = torch_backend(backend, merged)
        elif isinstance(backend, OnnxRunner):
            self._backend = onnx_backend(backend, merged)
        else:
            raise ConfigError(
                "backend must be a torch.nn.Module or a catseg.export.OnnxRunner, got "
                f"{type(backend).__qualname__}"
            )
        self._options = _resolve(merged, self._backend)
        self._pipeline = Pipeline(self._backend, self._options)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        options: SegmenterOptions | None = None,
        *,
        image_size: tuple[int, int] | Keep | None = KEEP,
        threshold: float | None = None,
        device: str | torch.device | None = None,
        precision: Precision | None = None,
        tta: bool | None = None,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        channels_last: bool | None = None,
        fuse: bool | None = None,
        batch_size: int | None = None,
    ) -> Segmenter:
        """Rebuild a Segmenter from a checkpoint file alone.

        Model, weights, class names, input size and normalisation come from the file
        (see :func:`catseg.checkpoint.load_checkpoint`, which never runs code from it),
        unless ``options`` sets them.

        Args:
            path: A file written by :func:`catseg.checkpoint.save_checkpoint`.
            options: Settings, as in :class:`Segmenter`; its ``classes``, ``image_size``,
                ``mean`` and ``std`` default to the file's.
            image_size: Leave out to use the checkpoint's training size (or the one in
                ``options``); ``None`` runs at the original image size;
                ``(height, width)`` uses that size.
            threshold: As in :class:`Segmenter`.
            device: As in :class:`Segmenter`.
            precision: As in :class:`Segmenter`.
            tta: As in :class:`Segmenter`.
            tile: As in :class:`Segmenter`.
            postprocess: As in :class:`Segmenter`.
            channels_last: As in :class:`SegmenterOptions`.
            fuse: As in :class:`SegmenterOptions`.
            batch_size: As in :class:`SegmenterOptions`.

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
        # the options filled in from the file; the keywords go to the constructor
        merged = merge_options(
            options, {"channels_last": channels_last, "fuse": fuse, "batch_size": batch_size}
        )
        ckpt = load_checkpoint(path, map_location="cpu")
        try:
            model = ckpt.build_model()
        except CheckpointError as err:
            raise CheckpointError(f"{os.fspath(path)}: {err}") from err
        merged = dataclasses.replace(
            merged,
            classes=merged.classes if merged.classes is not None else ckpt.classes,
            image_size=ckpt.image_size if merged.image_size is KEEP else merged.image_size,
            mean=merged.mean if merged.mean is not None else ckpt.mean,
            std=merged.std if merged.std is not None else ckpt.std,
            mode=merged.mode if merged.mode is not None else ckpt.mode,  # type: ignore[arg-type]
        )
        return cls(
            model,
            merged,
            image_size=image_size,
            threshold=threshold,
            device=device,
            precision=precision,
            tta=tta,
            tile=tile,
            postprocess=postprocess,
        )

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        options: SegmenterOptions | None = None,
        *,
        classes: Sequence[str] | None = None,
        image_size: tuple[int, int] | Keep | None = KEEP,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        threshold: float | None = None,
        tta: bool | None = None,
        tile: tuple[int, int] | None = None,
        postprocess: Postprocess | None = None,
        batch_size: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> Segmenter:
        """Run an ONNX file (from :func:`catseg.export.to_onnx`) with onnxruntime.

        The same as ``Segmenter(OnnxRunner(path, providers=providers), options, ...)``.
        Pre- and post-processing are the same as for a PyTorch model; only the forward
        pass runs in onnxruntime (fp32 on the CPU; ``precision``, ``fuse`` and
        ``channels_last`` do not apply). Class names, input size, normalisation and
        threshold are read from the file's metadata when it was exported from a
        Segmenter; arguments (and ``options``) take precedence. A file exported with
        ``dynamic_size=False`` runs one image at a time at its one size.

        Args:
            path: The ``.onnx`` file.
            options: Settings, as in :class:`Segmenter`.
            classes: Class names; needed when the file carries none (a bare UNet export).
            image_size: Leave out to use the file's; ``None`` or ``(height, width)`` as in
                :meth:`from_checkpoint`.
            mean: Normalisation mean; ``None`` takes the file's, else zeros.
            std: Normalisation std; ``None`` takes the file's, else ones.
            threshold: Binary threshold; ``None`` takes the file's, else 0.5.
            tta: As in :class:`Segmenter`.
            tile: As in :class:`Segmenter`.
            postprocess: As in :class:`Segmenter`.
            batch_size: As in :class:`SegmenterOptions`.
            providers: onnxruntime execution providers (default: CUDA if present, CPU).

        Returns:
            A Segmenter whose forward pass runs in onnxruntime.

        Raises:
            OptionalDependencyError: If onnxruntime is not installed (extra ``onnx``).
            MissingFileError: If the file does not exist.
            CheckpointError: If the file is not a usable ONNX segmentation model or its
                metadata is malformed (naming the key and the value).
            ConfigError: If the file has no class names and none are given, or an
                argument is invalid (e.g. an ``image_size`` other than a fixed-size
                file's).

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
        runner = OnnxRunner(path, providers=providers)
        options = merge_options(options, {"batch_size": batch_size})
        return cls(
            runner,
            options,
            classes=classes,
            image_size=image_size,
            mean=mean,
            std=std,
            threshold=threshold,
            tta=tta,
            tile=tile,
            postprocess=postprocess,
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        options: SegmenterOptions | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        precision: Precision | None = None,
    ) -> Segmenter:
        """Load a model folder written by :meth:`save_pretrained`, or a hub repo id.

        Model, weights, classes, input size, normalisation and threshold come from the
        folder (see :func:`catseg.hub.load_pretrained`, which never runs code from it),
        unless ``options`` sets them.

        Args:
            source: A model folder, or a Hugging Face Hub repo id ``"user/name"``
                (needs the ``hub`` extra; downloaded into the hub's cache).
            options: Settings, as in :class:`Segmenter`; its ``classes``, ``image_size``,
                ``mean``, ``std`` and ``threshold`` default to the folder's.
            revision: Hub branch, tag or commit (repo ids only).
            cache_dir: Hub cache folder (repo ids only).
            device: As in :class:`Segmenter`.
            precision: As in :class:`Segmenter`.

        Returns:
            A ready Segmenter.

        Raises:
            MissingFileError: If the folder or one of its files is missing.
            CheckpointError: If a file is malformed, newer than this catseg, or the
                config does not match the weights (the file and field are named).
            OptionalDependencyError: If safetensors (extra ``safetensors``) or
                huggingface_hub (extra ``hub``, repo ids) is not installed.
            ConfigError: If an override is invalid.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> import torch
            >>> from catseg.models import UNet
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2),
            ...                 classes=["_background_", "cat"], image_size=(32, 32))
            >>> folder = seg.save_pretrained(Path(tempfile.mkdtemp()) / "cat-unet")
            >>> again = Segmenter.from_pretrained(folder)
            >>> x = torch.rand(3, 40, 52)
            >>> again.classes, bool((again.predict(x).mask == seg.predict(x).mask).all())
            (['_background_', 'cat'], True)
        """
        from catseg.hub import load_pretrained

        merged = merge_options(options, {"device": device, "precision": precision})
        loaded = load_pretrained(source, revision=revision, cache_dir=cache_dir)
        if loaded.mode == "multilabel" and "mode" not in {
            f.name for f in dataclasses.fields(merged)
        }:
            raise ConfigError(
                f"{loaded.folder} holds a multilabel model, which this catseg's Segmenter "
                "does not run; upgrade catseg"
            )
        threshold = loaded.threshold if isinstance(loaded.threshold, float) else None
        fill: dict[str, Any] = {
            "classes": merged.classes if merged.classes is not None else loaded.classes,
            "image_size": loaded.image_size if merged.image_size is KEEP else merged.image_size,
            "mean": merged.mean if merged.mean is not None else loaded.mean,
            "std": merged.std if merged.std is not None else loaded.std,
            "threshold": merged.threshold if merged.threshold is not None else threshold,
        }
        if loaded.mode == "multilabel":  # the multilabel Segmenter's fields
            fill["mode"] = "multilabel"
            if merged.threshold is None:
                fill["threshold"] = loaded.threshold
        return cls(loaded.model, dataclasses.replace(merged, **fill))

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        *,
        history: History | None = None,
        evaluation: IoUResult | None = None,
        palette: PaletteName | Sequence[int] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write this Segmenter's model and settings as a model folder.

        The short form of :func:`catseg.hub.save_pretrained` with the Segmenter's
        classes, mode, threshold, input size and normalisation. A Segmenter with
        ``fuse=True`` (the default) holds a fused copy of its model, which is saved
        fused (for inference); build it with ``fuse=False``, or call
        :func:`catseg.hub.save_pretrained` on the original model, for a folder that can
        be fine-tuned. An ONNX-backed Segmenter cannot be saved this way.

        Args:
            folder: Destination folder (see :func:`catseg.hub.save_pretrained`).
            history: Training history summarised in the config and on the card.
            evaluation: Validation :class:`~catseg.metrics.IoUResult` (per-class IoU on
                the card).
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

        model = self._backend.module
        if model is None:
            raise ConfigError(
                "save_pretrained needs a PyTorch model; this Segmenter runs an ONNX file"
            )
        mode = getattr(self._options, "mode", None)
        return save_pretrained(
            folder,
            model,
            classes=self.classes,
            palette=palette,
            mode=mode if mode in ("binary", "multiclass", "multilabel") else None,
            threshold=self._options.threshold if self._options.threshold is not None else 0.5,
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            history=history,
            evaluation=evaluation,
            overwrite=overwrite,
        )

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

        :meth:`save_pretrained` into a temporary folder (removed afterwards), then
        :func:`catseg.hub.push_to_hub`: the repo is created if needed and the folder's
        three files (``config.json``, ``model.safetensors``, ``README.md``) are
        uploaded. To edit the model card first, call :meth:`save_pretrained`, edit
        ``README.md`` and upload the folder with :func:`catseg.hub.push_to_hub`.

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
            ConfigError: If ``repo_id`` is not ``"user/name"``, the Segmenter runs ONNX,
                or as in :meth:`save_pretrained`.
        """
        from catseg.hub import _deps, push_to_hub

        _deps.import_hub()  # fail before saving when the extra is missing
        with tempfile.TemporaryDirectory(prefix="catseg-push-") as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "model", history=history, evaluation=evaluation, palette=palette
            )
            return push_to_hub(
                folder,
                repo_id,
                token=token,
                private=private,
                commit_message=commit_message,
                revision=revision,
            )

    # ------------------------------------------------------------------ properties
    @property
    def options(self) -> SegmenterOptions:
        """The settings in use, every field resolved (the file's values filled in).

        ``Segmenter(model, seg.options)`` builds an equal Segmenter;
        ``dataclasses.replace(seg.options, tta=True)`` a variant.
        """
        return self._options

    @property
    def classes(self) -> list[str]:
        """Class names, label 0 first (a copy)."""
        return list(self._pipeline.classes)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` images are resized to before the model, or ``None``."""
        return self._pipeline.image_size

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel normalisation mean."""
        assert self._options.mean is not None
        return tuple(self._options.mean)

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel normalisation standard deviation."""
        assert self._options.std is not None
        return tuple(self._options.std)

    @property
    def threshold(self) -> float | tuple[float, ...]:
        """Foreground probability threshold (one per label for a multilabel model, if set)."""
        assert self._options.threshold is not None
        threshold = self._options.threshold
        return threshold if isinstance(threshold, float) else tuple(threshold)

    @property
    def mode(self) -> SegmenterMode | None:
        """``"binary"``, ``"multiclass"`` or ``"multilabel"``.

        ``None`` until the first prediction for a module without ``num_classes``.
        """
        return self._options.mode or self._pipeline.mode

    @property
    def device(self) -> torch.device:
        """The device the model (and the pre- and post-processing) runs on."""
        return self._backend.device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype ``precision`` resolved to, ``None`` for plain fp32."""
        return self._backend.autocast_dtype

    @property
    def model(self) -> nn.Module | None:
        """The Segmenter's own (possibly fused) copy of the model; ``None`` for ONNX."""
        return self._backend.module

    def __repr__(self) -> str:
        dtype = self._backend.autocast_dtype
        precision = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
        precision = {"bfloat16": "bf16", "float16": "fp16"}.get(precision, precision)
        return (
            f"Segmenter(classes={self.classes!r}, image_size={self.image_size}, "
            f"device={str(self.device)!r}, precision={precision!r}, tta={self._options.tta}, "
            f"tile={self._options.tile})"
        )

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
                if len(pending) == self._options.batch_size:
                    results.extend(self._pipeline.run(pending, return_probabilities))
                    pending = []
            if pending:
                results.extend(self._pipeline.run(pending, return_probabilities))
        return results

    def predict_folder(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        pattern: str | Sequence[str] | None = None,
        files: Iterable[str | os.PathLike[str]] | None = None,
        overlay: bool = False,
        on_error: OnError = "skip",
        num_workers: int | None = None,
        progress: bool = False,
    ) -> FolderSummary:
        """Segment every photo under a folder into a palette PNG under ``dst``.

        Photos are decoded by ``num_workers`` :class:`~torch.utils.data.DataLoader`
        processes while the model runs, segmented ``batch_size`` at a time (photos of
        one size together) exactly as :meth:`predict` reads a file, and each mask is
        written as soon as its batch is done to ``dst`` under the photo's relative path
        with a ``.png`` extension (``src/a/b.jpg`` -> ``dst/a/b.png``), so memory does
        not grow with the number of photos. Writes are atomic (temporary file, then
        rename); photos whose outputs already exist are skipped, so an interrupted run
        resumes where it stopped. Under ``torchrun`` each process takes the shard
        ``sorted_paths[rank::world_size]`` and returns its own summary. See
        :mod:`catseg.predict._folder` and the inference guide.

        Args:
            src: The folder of photos. Nothing outside it is read: symbolic links to
                folders are not followed, and links to files outside it are reported
                in ``failed``.
            dst: The output folder (created when missing). It may lie inside ``src``
                only if ``pattern`` does not match the files written there.
            pattern: A glob relative to ``src`` (``"**/*.jpg"``: any depth), or a tuple
                of them, matched case-insensitively; default JPEG and PNG files
                (``*.jpg``, ``*.jpeg``, ``*.png``) at any depth.
            files: Instead of ``pattern``, the photos to segment (any iterable of paths
                under ``src``, absolute or relative to it), e.g. read from a manifest.
            overlay: Also write the mask blended over the photo (alpha 0.3) as
                ``<name>.overlay.jpg`` beside the mask.
            on_error: ``"skip"`` records an unreadable photo in the summary and goes
                on; ``"raise"`` stops with its :class:`~catseg.errors.DataError`.
            num_workers: Decoding processes (0 decodes in this process, between forward
                passes); ``None`` uses the logical cores the model leaves free (on the
                CPU ``cpu_count - torch.get_num_threads()``, on a GPU ``cpu_count - 1``),
                at most 4. On a CPU whose cores all run torch's threads that is 0, the
                fastest there: workers take cores from the forward pass. The masks are
                encoded and written on up to 2 background threads when free cores exist,
                else between forward passes.
            progress: Show a tqdm bar (``progress`` extra; rank 0 only).

        Returns:
            A :class:`FolderSummary`: counts of written and skipped photos, and each
            failed photo with its reason.

        Raises:
            MissingFileError: If ``src`` does not exist.
            ConfigError: If an argument is invalid, or ``dst`` lies inside ``src`` and
                ``pattern`` matches the masks (or overlays) written there.
            DataError: With ``on_error="raise"``, for the first unreadable photo.
            OSError: If an output cannot be written.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from PIL import Image
            >>> from catseg.models import UNet
            >>> src, dst = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
            >>> Image.new("RGB", (40, 30)).save(src / "cat.jpg")
            >>> (src / "broken.jpg").write_bytes(b"not a jpeg")
            10
            >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["bg", "cat"])
            >>> summary = seg.predict_folder(src, dst, num_workers=0)
            >>> summary.written, summary.skipped, [p.name for p, _ in summary.failed]
            (1, 0, ['broken.jpg'])
            >>> sorted(p.name for p in dst.iterdir())
            ['cat.png']
            >>> seg.predict_folder(src, dst, num_workers=0).skipped
            1
        """
        request = FolderRequest(
            src, dst, pattern, files, overlay, on_error, num_workers, progress
        )  # positional: the fields are this signature's, in its order
        return predict_folder(self._pipeline, request)
