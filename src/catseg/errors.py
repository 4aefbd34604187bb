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
    "LabelmeError",
    "MissingFileError",
    "NonFiniteError",
    "OptionalDependencyError",
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
        >>> issubclass(ConfigError, ValueError)
        True
    """


class ShapeError(CatsegError, ValueError):
    """A tensor, array or image has a shape that does not fit the contract.

    The message names the offending shape and the expected one.

    Examples:
        >>> issubclass(ShapeError, ValueError)
        True
    """


class DTypeError(CatsegError, TypeError):
    """A tensor or array has a dtype the function does not accept.

    Examples:
        >>> issubclass(DTypeError, TypeError)
        True
    """


class DataError(CatsegError, ValueError):
    """A data file (image, mask, annotation) is unreadable or inconsistent.

    The message names the file and what is wrong with it.

    Examples:
        >>> issubclass(DataError, ValueError)
        True
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
        >>> issubclass(MissingFileError, FileNotFoundError)
        True
    """


class CheckpointError(CatsegError, ValueError):
    """A checkpoint file is truncated, tampered with, too new, or not a catseg file.

    Examples:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


class EncoderError(CatsegError, ValueError):
    """An encoder name is unknown, a plugin is broken, or an encoder breaks its contract.

    Examples:
        >>> issubclass(EncoderError, ValueError)
        True
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
        >>> issubclass(NonFiniteError, ArithmeticError)
        True
    """


class OptionalDependencyError(CatsegError, ImportError):
    """A feature needs an optional extra that is not installed.

    The message names the ``pip install "catseg[extra]"`` command to run.

    Examples:
        >>> issubclass(OptionalDependencyError, ImportError)
        True
    """
