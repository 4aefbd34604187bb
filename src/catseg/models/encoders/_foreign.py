"""One wording for a failure inside code catseg does not own (torchvision, timm, plugins)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from catseg.errors import CatsegError


@contextmanager
def foreign_errors(error: type[CatsegError], what: str, hint: str = "") -> Iterator[None]:
    """Turn an exception of the block into ``error("{what} ({type}: {message}); {hint}")``.

    A catseg error passes through unchanged; the original stays chained as ``__cause__``.

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
    except CatsegError:
        raise
    except Exception as err:
        hint = f"; {hint}" if hint else ""
        raise error(f"{what} ({type(err).__name__}: {err}){hint}") from err
