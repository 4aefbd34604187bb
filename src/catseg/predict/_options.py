"""SegmenterOptions: every setting of a Segmenter in one frozen, validated object."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch

from catseg._runtime import PRECISIONS, Precision
from catseg._validation import (
    check_bool,
    check_choice,
    check_class_names,
    check_finite_float,
    check_int,
    check_positive_int,
    check_probability,
    check_size,
)
from catseg.errors import ConfigError

__all__ = [
    "KEEP",
    "MODES",
    "Keep",
    "Postprocess",
    "SegmenterMode",
    "SegmenterOptions",
    "merge_options",
]

SegmenterMode: TypeAlias = Literal["binary", "multiclass", "multilabel"]
"""How logits become labels: one sigmoid map, a softmax over classes, or K sigmoid maps."""

MODES: tuple[str, ...] = ("binary", "multiclass", "multilabel")

Postprocess = Callable[[torch.Tensor], torch.Tensor]
"""Hook on the class probabilities ``(K, H, W)`` returning new ones of the same shape."""


class Keep(enum.Enum):
    """Type of :data:`KEEP`, the "take it from where it is already set" marker."""

    KEEP = "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep.KEEP
"""Marker for ``image_size``: keep the value of the options or of the model file.

In :class:`SegmenterOptions` (the default) it means "the source's value": the training
size stored in a checkpoint or an ONNX file, or the original image size for a bare
module. As a keyword of :class:`Segmenter` and its ``from_*`` constructors it means
"as in ``options``".
"""

_MIN_CLASSES, _MAX_CLASSES = 2, 256


def _check_classes(value: object, multilabel: bool = False) -> tuple[str, ...]:
    names = check_class_names("classes", value)
    if multilabel and not 1 <= len(names) <= _MAX_CLASSES:
        raise ConfigError(
            f"classes of a multilabel model must name between 1 and {_MAX_CLASSES} labels "
            f"(one per output channel, no background entry), got {len(names)}"
        )
    if not multilabel and not _MIN_CLASSES <= len(names) <= _MAX_CLASSES:
        raise ConfigError(
            f"classes must name between {_MIN_CLASSES} and {_MAX_CLASSES} labels (background "
            f"first; a binary model has two, e.g. ['_background_', 'cat']), got {len(names)}: "
            f"{names!r}"
        )
    return tuple(names)


def _check_norm(name: str, value: object) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ConfigError(
            f"{name} must be None or a non-empty sequence of numbers (one per input "
            f"channel), got {value!r}"
        )
    low = 0.0 if name == "std" else None
    return tuple(
        check_finite_float(f"{name}[{i}]", v, low=low, low_open=low is not None)
        for i, v in enumerate(value)
    )


def _check_tile(value: object) -> tuple[int, int]:
    expected = (
        "tile must be None or (size, overlap): two ints with size >= 1 and "
        f"0 <= overlap < size, got {value!r}"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(expected)
    try:
        size = check_int("tile size", value[0], minimum=1)
        overlap = check_int("tile overlap", value[1], minimum=0)
    except ConfigError as err:
        raise ConfigError(expected) from err
    if overlap >= size:
        raise ConfigError(expected)
    return size, overlap


def _check_threshold(value: object) -> float | tuple[float, ...]:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise ConfigError("threshold must be a probability or a non-empty sequence of them")
        return tuple(check_probability(f"threshold[{i}]", v) for i, v in enumerate(value))
    return check_probability("threshold", value)


def _check_device(value: object) -> str | torch.device:
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str) and value:
        return value
    raise ConfigError(
        f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {value!r}"
    )


@dataclass(frozen=True, kw_only=True)
class SegmenterOptions:
    """Every setting of a :class:`Segmenter` except the model, validated once.

    One options object is shared by :class:`Segmenter`, :meth:`Segmenter.from_checkpoint`
    and :meth:`Segmenter.from_onnx`; their keyword arguments override single fields.
    Values are checked and normalised when the object is made (sequences become tuples,
    ints stay ints), so a bad value fails here, naming the field. Fields that describe the
    model's training (``classes``, ``image_size``, ``mean``, ``std``, ``threshold``)
    default to "the source's": what a checkpoint or an ONNX file stores.
    :attr:`Segmenter.options` returns the options with every field resolved, ready to
    be changed with :func:`dataclasses.replace` and used again.

    Attributes:
        classes: Class names, label 0 first: ``K`` names for a ``K``-logit model, or two
            (background, foreground) for a binary one-logit model; ``None`` takes the
            file's (a bare module needs them).
        image_size: ``(height, width)`` (or one int for a square) to resize every image
            to before the model; ``None`` runs at the original size; :data:`KEEP` takes
            the file's training size (original size for a bare module). Masks are always
            returned at the original size.
        mean: Per-channel mean subtracted from [0, 1] pixels; ``None`` takes the file's,
            else zeros (no normalisation, as in the cat tutorial).
        std: Per-channel standard deviation (> 0) the pixels are divided by; ``None``
            takes the file's, else ones.
        threshold: Foreground probability in (0, 1) above which a pixel of a binary
            model is foreground; ``None`` takes the ONNX file's, else 0.5. Ignored by
            multiclass models. A multilabel model takes one threshold for every label or
            a sequence of one per label.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ... .
            Images are resized, normalised and thresholded on this device too.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        tta: Average the probabilities of the image and its horizontal mirror.
        tile: ``(size, overlap)`` to run on overlapping ``size × size`` tiles blended
            with linear weight ramps over the overlap, which bounds memory for very
            large images (e.g. ``(1024, 256)``); ``None`` runs the whole image at once.
            ``size`` must be at least the model's ``stride``.
        postprocess: Optional callable on the class probabilities ``(K, H, W)`` at the
            original size, returning probabilities of the same shape (e.g. smoothing).
        channels_last: Run convolutions in channels-last memory format.
        fuse: Fold BatchNorm into convolutions (models with ``fuse_for_inference``).
        batch_size: Number of images (or tiles) per forward pass.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``; ``None`` takes the
            file's (checkpoint ``extra["mode"]``, ONNX ``mode`` metadata), else infers
            binary (one logit: sigmoid and threshold) or multiclass (K >= 2 logits:
            softmax and arg-max) as before. ``"multilabel"`` must be asked for (or
            stored): K independent sigmoid maps, ``classes`` names the K labels (no
            background entry), and each :class:`Prediction` holds ``(K, H, W)`` boolean
            layers.

    Raises:
        ConfigError: If a field has a value outside what it accepts (the message names
            the field, the value and what is expected).

    Examples:
        >>> import dataclasses
        >>> options = SegmenterOptions(classes=["_background_", "cat"], image_size=256)
        >>> options.classes, options.image_size, options.threshold
        (('_background_', 'cat'), (256, 256), None)
        >>> dataclasses.replace(options, tta=True).tta
        True
        >>> SegmenterOptions(batch_size=2.5)
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: batch_size must be a positive int, got 2.5
    """

    classes: Sequence[str] | None = None
    image_size: tuple[int, int] | int | Keep | None = KEEP
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    threshold: float | Sequence[float] | None = None
    device: str | torch.device = "auto"
    precision: Precision = "auto"
    tta: bool = False
    tile: tuple[int, int] | None = None
    postprocess: Postprocess | None = None
    channels_last: bool = True
    fuse: bool = True
    batch_size: int = 8
    mode: SegmenterMode | None = None

    def __post_init__(self) -> None:
        mode = None if self.mode is None else check_choice("mode", self.mode, MODES)
        multilabel = mode == "multilabel"
        checked: dict[str, object] = {
            "mode": mode,
            "classes": (None if self.classes is None else _check_classes(self.classes, multilabel)),
            "image_size": (
                self.image_size
                if self.image_size is None or self.image_size is KEEP
                else check_size("image_size", self.image_size)
            ),
            "mean": None if self.mean is None else _check_norm("mean", self.mean),
            "std": None if self.std is None else _check_norm("std", self.std),
            "threshold": None if self.threshold is None else _check_threshold(self.threshold),
            "device": _check_device(self.device),
            "precision": check_choice("precision", self.precision, PRECISIONS),
            "tta": check_bool("tta", self.tta),
            "tile": None if self.tile is None else _check_tile(self.tile),
            "channels_last": check_bool("channels_last", self.channels_last),
            "fuse": check_bool("fuse", self.fuse),
            "batch_size": check_positive_int("batch_size", self.batch_size),
        }
        if self.postprocess is not None and not callable(self.postprocess):
            raise ConfigError(
                f"postprocess must be None or a callable, got {type(self.postprocess).__name__}"
            )
        if (
            self.mean is not None
            and self.std is not None
            and len(checked["mean"]) != len(checked["std"])  # type: ignore[arg-type]
        ):
            raise ConfigError(
                f"mean and std must have the same length, got {self.mean!r} and {self.std!r}"
            )
        if isinstance(checked["threshold"], tuple) and mode not in (None, "multilabel"):
            raise ConfigError(
                f"one threshold per label applies to mode='multilabel' only, got "
                f"threshold={self.threshold!r} with mode={mode!r}"
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def merge_options(
    options: SegmenterOptions | None, overrides: Mapping[str, object]
) -> SegmenterOptions:
    """``options`` (default: ``SegmenterOptions()``) with the given keyword overrides.

    An override of ``None`` means "not given", except for ``image_size``, where ``None``
    is a value (the original size) and :data:`KEEP` means "not given".

    Examples:
        >>> merge_options(None, {"tta": True, "tile": None}).tta
        True
    """
    if options is None:
        options = SegmenterOptions()
    elif not isinstance(options, SegmenterOptions):
        raise ConfigError(
            f"options must be a SegmenterOptions or None, got {type(options).__name__}"
        )
    given = {
        name: value
        for name, value in overrides.items()
        if (value is not KEEP if name == "image_size" else value is not None)
    }
    return dataclasses.replace(options, **given) if given else options  # type: ignore[arg-type]
