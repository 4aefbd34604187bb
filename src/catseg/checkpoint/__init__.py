"""Safe, atomic checkpoint files: everything needed to rebuild a trained model.

The cat tutorial saved the whole model with ``torch.save(model)``: a pickle that
runs arbitrary code when loaded and breaks as soon as the code moves. A catseg
checkpoint instead holds only plain data — the model's constructor config (a
JSON-like dict), its weights, the class names, the input size and the
normalisation used in training — and is read back with
``torch.load(..., weights_only=True)``, which refuses to build any object outside a
small allow-list, so a tampered file fails with :class:`~catseg.errors.CheckpointError`
and runs nothing.

File layout (format version 1) — one ``torch.save`` zip archive holding a dict::

    format            "catseg.checkpoint"
    format_version    1
    catseg_version    version of catseg that wrote the file
    model_config      UNetConfig.to_dict()
    state_dict        the weights (CPU tensors)
    classes           class names, label 0 first
    image_size        [height, width] or None
    mean, std         per-channel normalisation
    extra             user metadata (plain data)
    training_state    optimizer/scheduler/epoch/RNG state, or None

Files written by catseg before 0.2 also hold ``model_class`` ("UNet"); it is ignored.

Writes are atomic: the file is written to a temporary file in the same folder,
flushed to disk and renamed over the destination, so a crash or a kill during the
save leaves the previous checkpoint intact.

Loading treats the file as untrusted input and bounds the work it may cause: the
archive is checked before unpickling (no compressed entries, at most 512 KiB of pickled
metadata beside the weights), every field is walked once within a budget of items,
nesting and characters (so shared-reference "list bombs" are refused in milliseconds),
tensors must be dense, non-quantized and (for weights) real, and
:meth:`Checkpoint.build_model` bounds the model a config may build and checks it
against the weights present before allocating anything.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from catseg.models import UNet
    >>> model = UNet(num_classes=1, init_features=4, depth=2)
    >>> path = Path(tempfile.mkdtemp()) / "cat.pt"
    >>> _ = save_checkpoint(path, model, classes=["_background_", "cat"],
    ...                     image_size=(64, 64), mean=(0.5,) * 3, std=(0.25,) * 3)
    >>> ckpt = load_checkpoint(path)
    >>> ckpt.classes, ckpt.image_size, ckpt.format_version
    (['_background_', 'cat'], (64, 64), 1)
    >>> rebuilt = ckpt.build_model()
    >>> rebuilt.num_classes
    1
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catseg._modules import unwrap_model
from catseg._version import catseg_version
from catseg.checkpoint._bounds import MAX_NAME_CHARS, Budget, short, walk_plain
from catseg.checkpoint._checks import (
    check_config_bounds,
    check_meta,
    check_plain,
    check_weights_fit,
    weight_problem,
)
from catseg.checkpoint._files import atomic_save, describe, read_archive
from catseg.errors import CatsegError, CheckpointError, ConfigError
from catseg.models import UNet
from catseg.models.preprocessing import merge_preprocessing, resolve_mean_std

__all__ = ["FORMAT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
"""Version of the checkpoint layout this catseg writes (and the newest it reads)."""

_FORMAT_TAG = "catseg.checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a checkpoint file, as read by :func:`load_checkpoint`.

    Attributes:
        model_config: The model's constructor config (``UNetConfig.to_dict()``).
        state_dict: The weights, keyed like ``model.state_dict()``.
        classes: Class names; ``classes[i]`` is the name of mask label ``i``.
        image_size: ``(height, width)`` the model was trained at, or ``None``.
        mean: Per-channel mean subtracted from [0, 1] pixels before the model.
        std: Per-channel standard deviation the pixels are divided by.
        extra: User metadata saved with ``extra=`` (empty dict if none).
        training_state: Optimizer/scheduler/epoch/RNG state for resuming, or ``None``.
        format_version: Layout version of the file.
        catseg_version: Version of catseg that wrote the file.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> net = UNet(num_classes=2, init_features=4, depth=2)
        >>> ckpt = Checkpoint(model_config=net.config.to_dict(), state_dict=net.state_dict(),
        ...                   classes=["bg", "cat"], image_size=None, mean=(0.0,) * 3,
        ...                   std=(1.0,) * 3, extra={}, training_state=None,
        ...                   format_version=1, catseg_version="0.1.0")
        >>> rebuilt = ckpt.build_model()
        >>> all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(),
        ...                                         net.state_dict().values()))
        True
    """

    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    image_size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict[str, Any]
    training_state: dict[str, Any] | None
    format_version: int
    catseg_version: str

    @property
    def mode(self) -> str:
        """``"binary"``, ``"multiclass"`` or ``"multilabel"``.

        Read from ``extra["mode"]`` (written by :func:`~catseg.training.fit` and by
        ``save_checkpoint(..., extra={"mode": ...})``); files without it are binary for a
        one-logit model and multiclass otherwise.

        Examples:
            >>> from catseg.models import UNet
            >>> net = UNet(num_classes=2, init_features=4, depth=2)
            >>> ckpt = Checkpoint(model_config=net.config.to_dict(), state_dict={},
            ...                   classes=["disc", "bar"], image_size=None, mean=(0.0,) * 3,
            ...                   std=(1.0,) * 3, extra={"mode": "multilabel"},
            ...                   training_state=None, format_version=1, catseg_version="0")
            >>> ckpt.mode
            'multilabel'
        """
        stored = self.extra.get("mode")
        if stored in ("binary", "multiclass", "multilabel"):
            return str(stored)
        if stored is not None:
            raise CheckpointError(
                f"the checkpoint's extra['mode'] is {stored!r}, expected 'binary', "
                "'multiclass' or 'multilabel'"
            )
        return "binary" if self.model_config.get("num_classes") == 1 else "multiclass"

    def build_model(self) -> UNet:
        """Rebuild the model from its config and load the weights strictly.

        Pretrained-encoder downloads are switched off (``pretrained=False``): the
        weights come from the checkpoint.

        Returns:
            A new :class:`~catseg.models.UNet` in eval mode on the CPU, or on the
            device the tensors were mapped to by ``load_checkpoint(map_location=...)``.

        Raises:
            CheckpointError: If the config cannot be rebuilt (e.g. an encoder that is
                not registered here), asks for a model over catseg's size limits, or the
                weights do not fit the rebuilt model (the message names the first
                missing/unexpected keys and mismatched shapes). All of this is checked on
                the ``meta`` device, before any memory is allocated for the model.
        """
        config = dict(self.model_config)
        check_config_bounds(config, _config_error)
        if "pretrained" in config:
            config["pretrained"] = False
        try:
            config = merge_preprocessing(config, self.mean, self.std, what="the file's mean/std")
            with torch.device("meta"):
                reference = UNet.from_config(config)
        except CatsegError as err:
            raise CheckpointError(
                f"the checkpoint's model config cannot be rebuilt by this catseg: {err}"
            ) from err
        check_weights_fit(reference, self.state_dict, what="the checkpoint's weights")
        _check_weight_kinds(reference, self.state_dict)
        model = UNet.from_config(config)
        devices = {t.device for t in self.state_dict.values()}
        if len(devices) == 1:
            model = model.to(next(iter(devices)))
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    classes: Sequence[str],
    image_size: int | tuple[int, int] | None,
    mean: Sequence[float],
    std: Sequence[float],
    extra: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model and its metadata to one checkpoint file, atomically.

    A model wrapped in ``DataParallel``/``DistributedDataParallel`` or
    ``torch.compile`` is unwrapped first. A model returned by
    ``UNet.fuse_for_inference()`` is refused: its BatchNorm layers are folded
    away, so its weights no longer fit its config — save the original model.

    Args:
        path: Destination file; missing parent folders are created. An existing
            file is replaced only once the new one is completely on disk.
        model: A :class:`~catseg.models.UNet` built from a registered encoder name.
        classes: Class names, label 0 first. ``num_classes`` names for a multiclass
            model; two names (background, foreground) for a binary 1-logit model;
            ``num_classes`` label names for a multilabel one (``extra={"mode":
            "multilabel"}``).
        image_size: ``(height, width)`` the model was trained at (an int for a square),
            or ``None``.
        mean: Per-input-channel mean used to normalise [0, 1] pixels in training.
        std: Per-input-channel standard deviation (all > 0).
        extra: Optional user metadata: dicts/lists/tuples of numbers, strings,
            ``None`` and tensors. The key ``"mode"`` is reserved: ``"binary"``,
            ``"multiclass"`` or ``"multilabel"`` (see :attr:`Checkpoint.mode`).
        training_state: Optional state for resuming training (optimizer and scheduler
            state dicts, epoch, RNG states), same plain types as ``extra``.

    Returns:
        The path written, as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: If the model has no rebuildable config (built from an encoder
            instance), the metadata is invalid, or ``extra``/``training_state`` hold
            objects a safe loader cannot read (the message names the key).
        CheckpointError: If the model's weights do not fit its config (e.g. a fused model).
        OSError: If the file cannot be written; the previous file is then untouched.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from catseg.models import UNet
        >>> net = UNet(num_classes=3, init_features=4, depth=2)
        >>> out = save_checkpoint(Path(tempfile.mkdtemp()) / "run" / "best.pt", net,
        ...                       classes=["bg", "cat", "dog"], image_size=None,
        ...                       mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), extra={"epoch": 3})
        >>> out.name, out.is_file()
        ('best.pt', True)
    """
    plain = unwrap_model(model)
    if not isinstance(plain, UNet):
        raise ConfigError(
            f"save_checkpoint saves catseg.models.UNet models, got {type(plain).__qualname__}"
        )
    if plain.is_fused:
        raise CheckpointError(
            "this model was returned by fuse_for_inference(): its BatchNorm layers are folded "
            "into the convolutions, so its weights no longer fit its config; save the "
            "original (unfused) model instead"
        )
    config = plain.config.to_dict()
    with torch.device("meta"):
        reference = UNet.from_config({**config, "pretrained": False})
    state = {k: v.detach().to("cpu", copy=True) for k, v in plain.state_dict().items()}
    try:
        check_weights_fit(reference, state, what="the model's weights")
    except CheckpointError as err:
        raise CheckpointError(
            f"{err}; a model returned by fuse_for_inference() cannot be saved because its "
            "BatchNorm layers are folded into the convolutions — save the original model"
        ) from None
    mode = None if extra is None or not isinstance(extra, Mapping) else extra.get("mode")
    if mode is not None and mode not in ("binary", "multiclass", "multilabel"):
        raise ConfigError(
            f"extra['mode'] must be 'binary', 'multiclass' or 'multilabel', got {mode!r}"
        )
    names, size, mean_t, std_t = check_meta(
        classes,
        image_size,
        mean,
        std,
        plain.num_classes,
        plain.in_channels,
        multilabel=mode == "multilabel",
    )
    resolve_mean_std(plain, mean_t, std_t, what="save_checkpoint's mean/std")
    for name, value in (("extra", extra), ("training_state", training_state)):
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a dict or None, got {type(value).__name__}")
    extra_d = dict(extra) if extra is not None else {}
    check_plain(extra_d, "extra")
    train_d = dict(training_state) if training_state is not None else None
    check_plain(train_d, "training_state")
    payload: dict[str, Any] = {
        "format": _FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "catseg_version": catseg_version(),
        "model_config": config,
        "state_dict": state,
        "classes": names,
        "image_size": list(size) if size is not None else None,
        "mean": list(mean_t),
        "std": list(std_t),
        "extra": extra_d,
        "training_state": train_d,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(payload, target)
    return target


def _config_error(message: str) -> CheckpointError:
    return CheckpointError(f"the checkpoint's {message}")


def _check_weight_kinds(reference: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights of another kind (float vs integer) than the model's, naming the first."""
    for name, expected in reference.state_dict().items():
        given = state[name]
        problem = weight_problem(given)
        if problem is None and expected.is_floating_point() != given.is_floating_point():
            kind = "floating-point" if expected.is_floating_point() else "integer"
            problem = f"is {given.dtype}, but the model needs a {kind} tensor"
        if problem is not None:
            raise CheckpointError(f"the checkpoint's weight {name!r} {problem}")


class _Reader:
    """Checks the fields of one loaded payload, each error naming the file and the field."""

    def __init__(self, file: Path, data: Mapping[str, Any]) -> None:
        self.file = file
        self.data = data

    def corrupt(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.file} is a corrupt catseg checkpoint: {message}")

    def unsafe(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.file} cannot be loaded safely: {message}")

    def field(self, key: str, kinds: tuple[type, ...]) -> Any:
        value = self.data.get(key)
        if not isinstance(value, kinds):
            raise self.corrupt(
                f"field {key!r} is {type(value).__name__}, expected "
                f"{' or '.join(k.__name__ for k in kinds)}"
            )
        return value

    def walk(self) -> None:
        if len(self.data) > 64:
            raise self.unsafe(f"it has {len(self.data)} top-level fields (a checkpoint has 12)")
        budget = Budget()
        for key, value in self.data.items():
            if not isinstance(key, str) or len(key) > MAX_NAME_CHARS:
                raise self.corrupt(f"it has a top-level key {short(key)}")
            walk_plain(value, f"field {key!r}", budget, self.unsafe)

    def names(self, key: str, values: Any, check: Callable[[str], bool]) -> list[str]:
        for item in values:
            if not isinstance(item, str) or not 0 < len(item) <= MAX_NAME_CHARS or not check(item):
                raise self.corrupt(
                    f"{key} holds {short(item)}; expected non-empty strings of at most "
                    f"{MAX_NAME_CHARS} characters"
                )
        return list(values)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.field("state_dict", (dict,))
        self.names("state_dict keys", list(state), lambda _: True)
        for key, tensor in state.items():
            if not isinstance(tensor, torch.Tensor):
                raise self.corrupt(f"state_dict holds non-tensors ({key!r} is {short(tensor)})")
            problem = weight_problem(tensor)
            if problem is not None:
                raise self.corrupt(f"state_dict[{key!r}] {problem}")
        return dict(state)

    def image_size(self) -> tuple[int, int] | None:
        size = self.data.get("image_size")
        if size is None:
            return None
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 20 for v in size
            )
        ):
            raise self.corrupt(
                f"image_size is {short(size)}, expected None or [height, width] positive ints"
            )
        return (int(size[0]), int(size[1]))

    def numbers(self, key: str, positive: bool) -> tuple[float, ...]:
        values = self.field(key, (list, tuple))
        ok = all(
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and (v > 0 or not positive)
            for v in values
        )
        if not ok or not values:
            wanted = "positive finite numbers" if positive else "finite numbers"
            raise self.corrupt(f"field {key!r} is {short(values)}, expected a list of {wanted}")
        return tuple(float(v) for v in values)

    def version(self) -> tuple[int, str]:
        version = self.data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(f"{self.file} has an invalid format_version {short(version)}")
        writer = self.data.get("catseg_version", "unknown")
        if not isinstance(writer, str) or len(writer) > 64:
            raise self.corrupt(f"catseg_version is {short(writer)}, expected a version string")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{self.file} has checkpoint format version {version} (written by catseg "
                f"{writer}); this catseg reads versions up to {FORMAT_VERSION}: upgrade catseg "
                "to load it"
            )
        return version, writer


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = None
) -> Checkpoint:
    """Read a checkpoint file written by :func:`save_checkpoint`, safely.

    The file is read with ``torch.load(weights_only=True)``: nothing but tensors and
    plain Python data is ever built, so a file crafted to run code is refused
    before any of it runs. The file is also treated as hostile in size: loading takes
    time and memory proportional to the file, never more (see the module's notes).

    Args:
        path: The checkpoint file.
        map_location: The device to put the tensors on: ``"cpu"`` (or ``None``, the
            default), ``"cuda"``, ``"cuda:1"`` or a :class:`torch.device` that this
            machine has. Tensors never go where the file says; they go here.

    Returns:
        The file's contents as a :class:`Checkpoint`.

    Raises:
        MissingFileError: If the file does not exist.
        CheckpointError: If ``map_location`` is not a device of this machine; the file
            is empty, truncated or corrupt; not a catseg checkpoint (e.g. a plain
            state_dict or another kind of file); holds pickled objects outside the safe
            set; holds more than a checkpoint may (nesting, items, metadata size) or
            tensors that cannot be weights (sparse, quantized, complex); or was written
            with a newer format version than this catseg reads. The message says what
            was found.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> bad = Path(tempfile.mkdtemp()) / "notes.pt"
        >>> _ = bad.write_bytes(b"hello")
        >>> load_checkpoint(bad)
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: ...notes.pt is not a catseg checkpoint: ...
    """
    file = Path(path)
    data = read_archive(file, map_location)
    if not isinstance(data, dict) or data.get("format") != _FORMAT_TAG:
        raise CheckpointError(f"{file} is not a catseg checkpoint: it holds {describe(data)}")
    reader = _Reader(file, data)
    version, writer = reader.version()
    reader.walk()
    state = reader.state_dict()
    config = dict(reader.field("model_config", (dict,)))
    reader.names("model_config keys", list(config), str.isidentifier)
    check_config_bounds(config, reader.unsafe)
    training = data.get("training_state")
    if training is not None and not isinstance(training, dict):
        raise reader.corrupt(f"field 'training_state' is {type(training).__name__}, expected dict")
    return Checkpoint(
        model_config=config,
        state_dict=state,
        classes=reader.names("classes", reader.field("classes", (list, tuple)), lambda _: True),
        image_size=reader.image_size(),
        mean=reader.numbers("mean", positive=False),
        std=reader.numbers("std", positive=True),
        extra=dict(reader.field("extra", (dict,))),
        training_state=dict(training) if training is not None else None,
        format_version=version,
        catseg_version=writer,
    )
