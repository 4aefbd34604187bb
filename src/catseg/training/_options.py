"""The option groups of :func:`~catseg.training.fit` and its deprecated flat keywords."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import torch

from catseg._runtime import PRECISIONS, Precision
from catseg._validation import check_bool, check_choice, check_finite_float, check_int
from catseg.errors import ConfigError
from catseg.training._state import CheckpointMeta

__all__ = ["CheckpointOptions", "DeprecatedFitKeywords", "RunOptions"]

SCHEDULER_INTERVALS = ("epoch", "step")


@dataclass(frozen=True)
class CheckpointOptions:
    """Where and how :func:`~catseg.training.fit` writes ``last.pt`` and ``best.pt``.

    Attributes:
        directory: Folder for ``last.pt`` (after every epoch, with the training state)
            and ``best.pt`` (whenever the validation score improves); created if missing.
        resume: Continue from ``directory/last.pt`` when it exists. ``False`` starts over
            and overwrites both files.
        meta: Class names, image size and normalisation saved beside the weights;
            ``None`` reads them from the training dataset
            (:meth:`CheckpointMeta.from_dataset`).

    Raises:
        ConfigError: If an attribute has the wrong type.

    Examples:
        >>> CheckpointOptions("runs/toy").resume
        True
        >>> CheckpointOptions("runs/toy", resume="no")
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: resume must be True or False, got 'no'
    """

    directory: str | os.PathLike[str]
    resume: bool = True
    meta: CheckpointMeta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.directory, (str, os.PathLike)) or str(self.directory) == "":
            raise ConfigError(
                f"directory must be a folder path (str or os.PathLike), got {self.directory!r}"
            )
        check_bool("resume", self.resume)
        if self.meta is not None and not isinstance(self.meta, CheckpointMeta):
            raise ConfigError(f"meta must be a CheckpointMeta or None, got {self.meta!r}")


@dataclass(frozen=True)
class RunOptions:
    """How :func:`~catseg.training.fit` runs each step: device, precision, clipping, seed.

    Attributes:
        device: ``"auto"`` (this process's GPU under torchrun, else CUDA if available,
            else CPU), ``"cpu"``, ``"cuda:N"`` or a :class:`torch.device`.
        precision: ``"auto"`` (bf16 autocast where the hardware has native bf16, fp32
            elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        channels_last: Use the channels-last memory format (``False`` keeps NCHW).
        grad_clip: Clip the gradient norm to this finite value > 0; ``None`` disables it.
        seed: Seeds Python, NumPy and torch (plus ``rank`` under torch.distributed) and
            the loader's own generator, for a repeatable run; ``None`` leaves them alone.
        scheduler_interval: ``"epoch"`` steps the scheduler after each epoch, ``"step"``
            after each optimizer step (OneCycleLR and other per-batch schedules).

    Raises:
        ConfigError: If an attribute is invalid (the device's availability is checked
            when ``fit`` starts).

    Examples:
        >>> RunOptions(seed=0, scheduler_interval="step").precision
        'auto'
        >>> RunOptions(grad_clip=0.0)
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: grad_clip must be a finite number in (0.0, inf], got 0.0
    """

    device: str | torch.device = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    grad_clip: float | None = None
    seed: int | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"

    def __post_init__(self) -> None:
        _check_device(self.device)
        check_choice("precision", self.precision, PRECISIONS)
        check_bool("channels_last", self.channels_last)
        if self.grad_clip is not None:
            grad_clip = check_finite_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
            object.__setattr__(self, "grad_clip", grad_clip)
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int("seed", self.seed))
        check_choice("scheduler_interval", self.scheduler_interval, SCHEDULER_INTERVALS)


def _check_device(device: object) -> None:
    if isinstance(device, torch.device) or device == "auto":
        return
    if not isinstance(device, str):
        raise ConfigError(f"device must be 'auto', a device name or a torch.device, got {device!r}")
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device, "
            f"got {device!r}"
        ) from None


class DeprecatedFitKeywords(TypedDict, total=False):
    """The flat keywords ``fit`` took before the option groups; each warns ``FutureWarning``.

    ``checkpoint_dir``, ``resume`` and ``checkpoint_meta`` became
    ``checkpoint=CheckpointOptions(directory, resume=..., meta=...)``; ``device``,
    ``precision``, ``channels_last``, ``grad_clip``, ``seed`` and ``scheduler_interval``
    became the fields of ``run=RunOptions(...)``.
    """

    checkpoint_dir: str | os.PathLike[str] | None
    resume: bool
    checkpoint_meta: CheckpointMeta | None
    device: str | torch.device
    precision: Precision
    channels_last: bool
    grad_clip: float | None
    seed: int | None
    scheduler_interval: Literal["epoch", "step"]


_CHECKPOINT_KEYS = {"checkpoint_dir": "directory", "resume": "resume", "checkpoint_meta": "meta"}
_RUN_KEYS = ("device", "precision", "channels_last", "grad_clip", "seed", "scheduler_interval")


def _spelling(cls: str, values: Mapping[str, object]) -> str:
    return f"{cls}(" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"


def merge_deprecated(
    checkpoint: CheckpointOptions | None,
    run: RunOptions | None,
    deprecated: Mapping[str, Any],
) -> tuple[CheckpointOptions | None, RunOptions]:
    """Fold the deprecated flat keywords of ``fit`` into its option groups.

    Warns one ``FutureWarning`` that shows the new spelling of exactly what was passed.

    Raises:
        ConfigError: If a keyword is unknown, or one group is given both ways.
    """
    for name in deprecated:
        if name not in _CHECKPOINT_KEYS and name not in _RUN_KEYS:
            raise ConfigError(f"fit() got an unexpected keyword argument {name!r}")
    if checkpoint is not None and not isinstance(checkpoint, CheckpointOptions):
        raise ConfigError(
            f"checkpoint must be a CheckpointOptions or None, got {checkpoint!r}; "
            f"write checkpoint=CheckpointOptions({checkpoint!r})"
        )
    if run is not None and not isinstance(run, RunOptions):
        raise ConfigError(f"run must be a RunOptions or None, got {run!r}")
    if not deprecated:
        return checkpoint, run or RunOptions()
    ckpt_part = {new: deprecated[old] for old, new in _CHECKPOINT_KEYS.items() if old in deprecated}
    run_part = {key: deprecated[key] for key in _RUN_KEYS if key in deprecated}
    for part, given, spelled in ((ckpt_part, checkpoint, "checkpoint"), (run_part, run, "run")):
        if part and given is not None:
            raise ConfigError(
                f"fit() got {spelled}= and the deprecated keywords "
                f"{', '.join(sorted(part))} for the same options; pass them all in {spelled}="
            )
    new: list[str] = []
    if ckpt_part:
        checkpoint = (
            None
            if ckpt_part.get("directory") is None
            else CheckpointOptions(**ckpt_part)  # validated by the dataclass
        )
        new.append("checkpoint=" + _spelling("CheckpointOptions", ckpt_part))
    if run_part:
        run = RunOptions(**run_part)
        new.append("run=" + _spelling("RunOptions", run_part))
    warnings.warn(
        f"fit() keywords {', '.join(deprecated)} are deprecated and will be removed in "
        f"catseg 0.3; write fit(..., {', '.join(new)}) instead",
        FutureWarning,
        stacklevel=3,
    )
    return checkpoint, run or RunOptions()
