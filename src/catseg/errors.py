"""One exception tree for everything catseg raises on purpose.

Every error derives from :class:`CatsegError` *and* from the builtin exception a
Python user would expect, so ``except ValueError`` keeps working while
``except catseg.CatsegError`` catches everything the library raises deliberately.

Examples:
    >>> from catseg.errors import CatsegError, ShapeError
    >>> err = ShapeError("mask has shape (3, 4), expected (4, 4)")
    >>> isinstance(err, CatsegError), isinstance(err, ValueError)
    (True, True)
"""

from __future__ import annotations

__all__ = [
    "CatsegError",
    "CheckpointError",
    "ConfigError",
    "DTypeError",
    "DataError",
    "EncoderError",
    "ExportError",
    "IndexOutOfRangeError",
    "LabelmeError",
    "MissingFileError",
    "NonFiniteError",
    "OptionalDependencyError",
    "OutputExistsError",
    "ReadOnlyOptionError",
    "ShapeError",
]


class CatsegError(Exception):
    """Base class of every exception catseg raises deliberately.

    Examples:
        >>> try:
        ...     raise ConfigError("smooth must be >= 0, got -1.0")
        ... except CatsegError as err:
        ...     print(err)
        smooth must be >= 0, got -1.0
    """


class ConfigError(CatsegError, ValueError):
    """An argument has a value outside what the function accepts.

    The message names the argument, the value received and what was expected.

    Examples:
        >>> from catseg.losses import DiceLoss
        >>> DiceLoss(smooth=-1.0)
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: smooth must be a finite number in [0.0, 1e+30], got -1.0
    """


class ReadOnlyOptionError(CatsegError, AttributeError):
    """An option checked at construction was assigned afterwards.

    It is an :class:`AttributeError`, as :class:`dataclasses.FrozenInstanceError` is, so
    ``setattr``, ``hasattr`` and ``copy`` treat it as Python treats a read-only attribute.

    Examples:
        >>> from catseg.losses import DiceLoss
        >>> DiceLoss().smooth = 0.0
        Traceback (most recent call last):
        ...
        catseg.errors.ReadOnlyOptionError: DiceLoss.smooth is read-only (options are checked ...
    """


class ShapeError(CatsegError, ValueError):
    """A tensor, array or image has a shape that does not fit the contract.

    The message names the offending shape and the expected one.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> labels = torch.zeros(1, 2, 2, dtype=torch.long)
        >>> try:
        ...     mean_iou(labels, torch.zeros(1, 3, 3, dtype=torch.long), num_classes=2)
        ... except ValueError as err:  # a ShapeError is a ValueError
        ...     print(err)
        preds label map has shape (1, 2, 2), expected (1, 3, 3) to match target
    """


class DTypeError(CatsegError, TypeError):
    """A tensor or array has a dtype the function does not accept.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> mean_iou(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), 2)
        Traceback (most recent call last):
        ...
        catseg.errors.DTypeError: target must be an integer label map (N, H, W), got dtype ...
    """


class DataError(CatsegError, ValueError):
    """A data file (image, mask, annotation) is unreadable or inconsistent.

    The message names the file and what is wrong with it.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> labels = torch.zeros(1, 2, 2, dtype=torch.long)
        >>> mean_iou(labels, torch.full((1, 2, 2), 5), num_classes=2)
        Traceback (most recent call last):
        ...
        catseg.errors.DataError: target contains label(s) [5] outside [0, 1] that are not ...
    """


class IndexOutOfRangeError(CatsegError, IndexError):
    """An item index is outside a dataset's ``[-len, len)`` range.

    It is an :class:`IndexError`, so ``for sample in dataset`` still ends at the last item
    (Python's sequence protocol stops on it).

    Examples:
        >>> import tempfile
        >>> from catseg.data import VOCSegmentationDataset, make_synthetic_voc
        >>> root = make_synthetic_voc(tempfile.mkdtemp(), n=4, size=32)
        >>> VOCSegmentationDataset(root, "trainval")[4]
        Traceback (most recent call last):
        ...
        catseg.errors.IndexOutOfRangeError: index 4 out of range for a dataset of 4 items
    """


class LabelmeError(DataError):
    """A labelme JSON annotation breaks labelme's rules (unknown label, bad shape).

    Examples:
        >>> issubclass(LabelmeError, DataError)
        True
    """


class MissingFileError(CatsegError, FileNotFoundError):
    """A file or folder that the call needs does not exist.

    Examples:
        >>> from catseg.checkpoint import load_checkpoint
        >>> try:
        ...     load_checkpoint("no/such/model.pt")
        ... except FileNotFoundError as err:  # a MissingFileError is a FileNotFoundError
        ...     print(err)
        checkpoint not found: no/such/model.pt
    """


class OutputExistsError(CatsegError, FileExistsError):
    """An output file exists that catseg did not write; it is kept unless asked.

    Examples:
        >>> issubclass(OutputExistsError, FileExistsError)
        True
    """


class CheckpointError(CatsegError, ValueError):
    """A checkpoint file is truncated, tampered with, too new, or not a catseg file.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from catseg.checkpoint import load_checkpoint
        >>> junk = Path(tempfile.mkdtemp()) / "junk.pt"
        >>> _ = junk.write_bytes(b"not a checkpoint")
        >>> load_checkpoint(junk)
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: .../junk.pt is not a catseg checkpoint: ...
    """


class EncoderError(CatsegError, ValueError):
    """An encoder name is unknown, a plugin is broken, or an encoder breaks its contract.

    Examples:
        >>> from catseg.models import get_encoder
        >>> get_encoder("resnet19")
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: unknown encoder 'resnet19'; did you mean 'resnet18'? ...
    """


class ExportError(CatsegError, RuntimeError):
    """Exporting a model failed, or ONNX Runtime failed to run an exported model.

    Raised when the exported graph does not reproduce the PyTorch model (the export
    check) and when onnxruntime fails on an input. A model *file* that cannot be used
    at all (not loadable, malformed metadata) is a :class:`CheckpointError`, like a bad
    checkpoint.

    Examples:
        >>> issubclass(ExportError, RuntimeError)
        True
    """


class NonFiniteError(CatsegError, FloatingPointError):
    """A loss, score or model output contains NaN or infinity.

    Examples:
        >>> import torch
        >>> from catseg.metrics import mean_iou
        >>> scores = torch.full((1, 1, 2, 2), float("nan"))
        >>> mean_iou(scores, torch.zeros(1, 2, 2, dtype=torch.long), num_classes=2)
        Traceback (most recent call last):
        ...
        catseg.errors.NonFiniteError: preds of shape (1, 1, 2, 2) contain NaN scores (4 values)
    """


class OptionalDependencyError(CatsegError, ImportError):
    """A feature needs an optional extra that is not installed.

    The message names the ``pip install "catseg[extra]"`` command to run.

    Examples:
        >>> issubclass(OptionalDependencyError, ImportError)
        True
    """
