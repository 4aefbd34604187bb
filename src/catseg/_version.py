"""The installed catseg version, read one way everywhere."""

from __future__ import annotations

from importlib import metadata

__all__ = ["catseg_version"]


def catseg_version() -> str:
    """The catseg version: the installed distribution's, else the package's ``__version__``.

    Examples:
        >>> catseg_version() != ""
        True
    """
    try:
        return metadata.version("catseg")
    except metadata.PackageNotFoundError:
        from catseg import __version__

        return __version__
