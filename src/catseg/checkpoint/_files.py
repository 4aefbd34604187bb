"""Reading and writing the checkpoint file itself: atomic saves, safe loads."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from catseg.errors import CheckpointError, ConfigError, MissingFileError

__all__ = ["ZIP_MAGIC", "atomic_save", "describe", "read_archive"]

ZIP_MAGIC = b"PK\x03\x04"


def atomic_save(payload: Any, target: Path) -> None:
    if target.is_dir():
        raise ConfigError(f"checkpoint path {target} is a folder; give a file name")
    mode = (target.stat().st_mode & 0o777) if target.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
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


def describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return (
                f"a plain state_dict ({len(keys)} tensors, first key {keys[0]!r}); load it with "
                "model.load_state_dict(torch.load(path, weights_only=True)) on a model you "
                "build yourself, or save it with catseg.checkpoint.save_checkpoint"
            )
        return f"a dict with keys {[str(k) for k in keys[:5]]} but no 'format' tag"
    return f"a {type(obj).__qualname__}"


def read_archive(path: Path, map_location: str | torch.device | None) -> Any:
    if not path.exists():
        raise MissingFileError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file (expected a catseg checkpoint)")
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes), not a catseg checkpoint")
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a catseg checkpoint: it is not a torch.save zip archive "
            f"(it starts with bytes {head!r})"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} was refused by the safe loader (nothing in it was executed): it holds "
            f"objects other than tensors and plain data, so it is not a catseg checkpoint or "
            f"has been tampered with ({first_line})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is truncated or corrupt: {first_line}") from err
