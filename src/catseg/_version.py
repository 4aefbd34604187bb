"""Private: the version of catseg, one way for every room (checkpoints, ONNX metadata).

Examples:
    >>> import catseg
    >>> catseg_version() == catseg.__version__
    True
"""

from __future__ import annotations

import importlib.metadata
import sys


def catseg_version() -> str:
    """The version of the catseg code that is running, installed or from a source checkout.

    ``catseg.__version__`` of the imported package comes first: it is the code that
    runs, also from a source checkout on ``sys.path`` with no installed metadata, or
    an editable install whose metadata went stale after a version bump. The installed
    distribution's metadata (``importlib.metadata``) is the fallback, and ``"unknown"``
    is returned only if neither exists.

    Returns:
        A version string such as ``"0.1.0"``.

    Examples:
        >>> isinstance(catseg_version(), str)
        True
    """
    package = sys.modules.get("catseg")
    version = getattr(package, "__version__", None)
    if isinstance(version, str) and version:
        return version
    try:
        return importlib.metadata.version("catseg")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
