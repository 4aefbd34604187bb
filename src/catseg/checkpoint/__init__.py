"""Safe, atomic checkpoint files: everything needed to rebuild a trained model.

Unlike ``torch.save(model)`` (a pickle that runs code when loaded and breaks when the
code moves), a catseg checkpoint holds only plain data and is read back with
``torch.load(..., weights_only=True)``: a tampered file fails with
:class:`~catseg.errors.CheckpointError` and runs nothing.

File layout (format version 1) — one ``torch.save`` zip archive holding a dict::

    format            "catseg.checkpoint"
    format_version    1
    catseg_version    version of catseg that wrote the file
    model_config      UNetConfig.to_dict(): the architecture and the model's record
                      (classes, mode, image size, threshold, normalisation)
    state_dict        the weights (CPU tensors)
    extra             user metadata (plain data)
    training_state    optimizer/scheduler/epoch/RNG state, or None

Writes are atomic: a crash during the save leaves the previous checkpoint intact.
Loading treats the file as untrusted (:mod:`catseg._bounds`): the archive and pickle are
checked before unpickling, every field is walked within a budget, weights must be dense,
real and finite, and :meth:`Checkpoint.build_model` checks the config against the
weights on the meta device.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from catseg.models import UNet
    >>> model = UNet(num_classes=1, init_features=4, depth=2)
    >>> _ = model.describe(classes=["_background_", "cat"], image_size=64)
    >>> path = Path(tempfile.mkdtemp()) / "cat.pt"
    >>> _ = save_checkpoint(path, model)
    >>> ckpt = load_checkpoint(path)
    >>> ckpt.config.classes, ckpt.config.image_size, ckpt.format_version
    (('_background_', 'cat'), (64, 64), 1)
    >>> rebuilt = ckpt.build_model()
    >>> rebuilt.num_classes
    1
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catseg._bounds import (
    MAX_NAME_CHARS,
    Budget,
    check_archive,
    short,
    walk_plain,
    weight_problem,
)
from catseg._files import atomic_write
from catseg._modules import unwrap_model
from catseg._validation import check_path
from catseg._version import catseg_version
from catseg.checkpoint._checks import check_weights_fit
from catseg.checkpoint._files import (
    check_map_location,
    describe,
    read_archive,
)
from catseg.errors import CatsegError, CheckpointError, ConfigError
from catseg.models import UNet
from catseg.models.config import UNetConfig, plugin_change, read_config

__all__ = ["FORMAT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
"""Version of the checkpoint layout this catseg writes (and the newest it reads)."""

_FORMAT_TAG = "catseg.checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a checkpoint file, as read by :func:`load_checkpoint`.

    Attributes:
        config: The model's config: its architecture and its record (classes, mode,
            image size, threshold, normalisation).
        state_dict: The weights, keyed like ``model.state_dict()``.
        extra: User metadata saved with ``extra=`` (empty dict if none).
        training_state: Optimizer/scheduler/epoch/RNG state for resuming, or ``None``.
        format_version: Layout version of the file.
        catseg_version: Version of catseg that wrote the file.
        path: The file read (named in :meth:`build_model`'s errors), or ``None``.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> net = UNet(num_classes=2, init_features=4, depth=2)
        >>> ckpt = Checkpoint(config=net.config, state_dict=net.state_dict(), extra={},
        ...                   training_state=None, format_version=1, catseg_version="0.1.0")
        >>> rebuilt = ckpt.build_model()
        >>> all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(),
        ...                                         net.state_dict().values()))
        True
    """

    config: UNetConfig
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any]
    training_state: dict[str, Any] | None
    format_version: int
    catseg_version: str
    path: Path | None = None

    def build_model(self) -> UNet:
        """Rebuild the model from its config and load the weights strictly.

        Returns:
            A new :class:`~catseg.models.UNet` in eval mode on the CPU, or on the
            device the tensors were mapped to by ``load_checkpoint(map_location=...)``.

        Raises:
            CheckpointError: If the config cannot be rebuilt (e.g. an encoder that is
                not registered here) or the weights do not fit the rebuilt model (the
                message names the first missing/unexpected keys and mismatched shapes).
                This is checked on the ``meta`` device, before any memory is allocated.
        """
        where = "the checkpoint" if self.path is None else f"{self.path}: the checkpoint"
        try:
            with torch.device("meta"):
                reference = UNet.from_config(self.config)
            note = plugin_change(self.config, reference.config)
            check_weights_fit(reference, self.state_dict, what=f"{where}'s weights{note}")
            for name, like in reference.state_dict().items():
                if (problem := weight_problem(self.state_dict[name], like)) is not None:
                    raise CheckpointError(f"{where}'s weight {name!r} {problem}")
        except CheckpointError:
            raise
        except CatsegError as err:
            raise CheckpointError(f"{where}'s model cannot be rebuilt: {err}") from err
        model = UNet.from_config(self.config)
        devices = {t.device for t in self.state_dict.values()}
        if len(devices) == 1:
            model = model.to(next(iter(devices)))
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    extra: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model, its record and optional metadata to one checkpoint file, atomically.

    The model's config holds everything needed to use it (classes, mode, input size,
    threshold, normalisation: see :meth:`~catseg.models.UNet.describe`); nothing is
    restated here. A model wrapped in ``DataParallel``/``DistributedDataParallel`` or
    ``torch.compile`` is unwrapped first. A model returned by ``fuse_for_inference()``
    is refused: its weights no longer fit its config.

    Args:
        path: Destination file; missing parent folders are created. An existing
            file is replaced only once the new one is completely on disk.
        model: A :class:`~catseg.models.UNet` built from a registered encoder name.
        extra: Optional user metadata: dicts/lists/tuples of numbers, strings,
            ``None`` and tensors.
        training_state: Optional state for resuming training (optimizer and scheduler
            state dicts, epoch, RNG states), same plain types as ``extra``.

    Returns:
        The path written, as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: If the model has no rebuildable config (built from an encoder
            instance), or ``extra``/``training_state`` hold objects a safe loader cannot
            read (the message names the key).
        CheckpointError: If the model's weights do not fit its config (e.g. a fused model).
        OSError: If the file cannot be written; the previous file is then untouched.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from catseg.models import UNet
        >>> net = UNet(num_classes=3, init_features=4, depth=2)
        >>> out = save_checkpoint(Path(tempfile.mkdtemp()) / "run" / "best.pt", net,
        ...                       extra={"epoch": 3})
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
    state = {k: v.detach().to("cpu", copy=True) for k, v in plain.state_dict().items()}
    payload: dict[str, Any] = {
        "format": _FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "catseg_version": catseg_version(),
        "model_config": plain.config.to_dict(),
        "state_dict": state,
    }
    for name, value in (("extra", extra), ("training_state", training_state)):
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a dict or None, got {type(value).__name__}")
        payload[name] = None if value is None else dict(value)
        walk_plain(payload[name], name, Budget(), ConfigError)
    payload["extra"] = payload["extra"] or {}
    return atomic_write(check_path("path", path), lambda tmp: _save(payload, tmp))


def _save(payload: dict[str, Any], tmp: Path) -> None:
    torch.save(payload, tmp)
    try:
        check_archive(tmp)
    except CheckpointError as err:  # what loading would refuse
        raise ConfigError(str(err).replace(str(tmp), "the checkpoint")) from None


@dataclass(frozen=True)
class _Reader:
    """Checks the fields of one loaded payload, each error naming the file and the field."""

    file: Path
    data: Mapping[str, Any]

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

    def state_dict(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = self.field("state_dict", (dict,))
        for key, tensor in state.items():
            if not isinstance(key, str) or not 0 < len(key) <= MAX_NAME_CHARS:
                raise self.corrupt(
                    f"state_dict keys holds {short(key)}; expected non-empty strings of at most "
                    f"{MAX_NAME_CHARS} characters"
                )
            if not isinstance(tensor, torch.Tensor):
                raise self.corrupt(f"state_dict holds non-tensors ({key!r} is {short(tensor)})")
            if (problem := weight_problem(tensor)) is not None:
                raise self.corrupt(f"state_dict[{key!r}] {problem}")
        return state

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

    Nothing but tensors and plain data is ever built (a file crafted to run code is
    refused before any of it runs), in time and memory proportional to the file.

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
            tensors that cannot be weights (sparse, complex, NaN); or was written
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
    file = check_path("path", path)
    data = read_archive(file, check_map_location(map_location))
    if not isinstance(data, dict) or data.get("format") != _FORMAT_TAG:
        raise CheckpointError(f"{file} is not a catseg checkpoint: it holds {describe(data)}")
    reader = _Reader(file, data)
    version, writer = reader.version()
    reader.walk()
    return Checkpoint(
        state_dict=reader.state_dict(),
        config=read_config(reader.field("model_config", (dict,)), file),
        training_state=reader.field("training_state", (dict, type(None))),
        extra=reader.field("extra", (dict,)),
        format_version=version,
        catseg_version=writer,
        path=file,
    )
