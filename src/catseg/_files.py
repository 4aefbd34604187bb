"""The one atomic-write helper: every file catseg writes goes through :func:`atomic_write`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from catseg.errors import ConfigError, OutputExistsError


def atomic_write(target: Path, write: Callable[[Path], object], *, replace: bool = True) -> Path:
    """Write ``target`` through a temporary file beside it, then move it into place.

    ``write`` fills the temporary file (it gets its path). The file is created like
    ``open()`` does, so its permissions follow the umask; its name is short whatever
    ``target``'s length. A crash leaves ``target`` as it was. With ``replace=False`` an
    existing ``target`` is never replaced (:class:`~catseg.errors.OutputExistsError`).

    Examples:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write(out, lambda p: p.write_text("cat")).read_text()
        'cat'
        >>> atomic_write(out, lambda p: p.write_text("dog"), replace=False)
        Traceback (most recent call last):
        ...
        catseg.errors.OutputExistsError: ...a.txt exists and was not written by this call...
    """
    target = Path(target)
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; give a file name")
    if not replace and target.exists():
        raise _exists(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".catseg-{secrets.token_hex(8)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if target appeared meanwhile: never replaced
            except FileExistsError:
                raise _exists(target) from None
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def _exists(target: Path) -> OutputExistsError:
    return OutputExistsError(
        f"{target} exists and was not written by this call; pass overwrite=True to replace it"
    )
