"""One wording for a failure inside a third-party library (torchvision, timm)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from catseg.errors import CatsegError

__all__ = ["foreign_errors"]


@contextmanager
def foreign_errors(error: type[CatsegError], what: str, hint: str) -> Iterator[None]:
    """Turn any exception raised in the block into ``error``: what failed, why, what to do.

    A third-party library (or its compiled extension) can fail in any way, so every
    ``Exception`` is caught; the message is ``"{what} ({type}: {message}); {hint}"``
    and the original stays chained as ``__cause__``.

    Args:
        error: The catseg error to raise.
        what: What failed, e.g. ``"timm cannot build 'x'"``.
        hint: What the user can do about it.

    Yields:
        Nothing; the block runs inside.

    Raises:
        CatsegError: ``error``, if the block raised.

    Examples:
        >>> from catseg.errors import EncoderError
        >>> with foreign_errors(EncoderError, "the library failed", "try again"):
        ...     raise OSError("disk full")
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: the library failed (OSError: disk full); try again
    """
    try:
        yield
    except Exception as err:
        raise error(f"{what} ({type(err).__name__}: {err}); {hint}") from err
