"""Reading and writing the checkpoint file itself: atomic saves, safe loads."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from catseg._bounds import check_archive, short
from catseg._runtime import quiet_warnings
from catseg.errors import CheckpointError, MissingFileError


def describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return (
                f"a plain state_dict ({len(keys)} tensors, first key {short(keys[0])}); load "
                "it with model.load_state_dict(torch.load(path, weights_only=True)) on a model you "
                "build yourself, or save it with catseg.checkpoint.save_checkpoint"
            )
        return f"a dict with keys {short(keys[:5])} but no 'format' tag"
    return f"a {type(obj).__qualname__}"


def check_map_location(value: object) -> torch.device:
    """The device ``map_location`` names, if this machine has it; ``None`` is the CPU."""
    if value is None:
        return torch.device("cpu")
    if not isinstance(value, (str, torch.device)):
        raise CheckpointError(
            f"map_location must be None, a device name such as 'cpu' or 'cuda:0', or a "
            f"torch.device; got {short(value)} of type {type(value).__name__}"
        )
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise CheckpointError(
            f"map_location {short(value)} is not a device name; expected e.g. 'cpu', 'cuda' "
            "or 'cuda:0'"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "meta":
        raise CheckpointError(
            "map_location='meta' would load weights without values; use 'cpu' or an accelerator"
        )
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    if accelerator is None or accelerator.type != device.type:
        found = f"only {accelerator.type!r} and 'cpu'" if accelerator is not None else "'cpu'"
        raise CheckpointError(
            f"map_location={str(device)!r}: this machine has no {device.type!r} device "
            f"({found} available); use map_location='cpu'"
        )
    count = torch.accelerator.device_count()
    if device.index is not None and device.index >= count:
        raise CheckpointError(
            f"map_location={str(device)!r}: this machine has {count} {device.type} "
            f"device(s) (indices 0..{count - 1})"
        )
    return device


def read_archive(path: Path, device: torch.device) -> Any:
    """``torch.load(weights_only=True)`` of a checked archive; every failure a CheckpointError."""
    if not path.exists():
        raise MissingFileError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file (expected a catseg checkpoint)")
    check_archive(path)
    try:
        # A hostile file may hold tensors (quantized ...) whose rebuilding warns; they are
        # refused right after loading with a message that says what they are.
        with quiet_warnings():
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} was refused by the safe loader (nothing in it was executed): it holds "
            f"objects other than tensors and plain data, so it is not a catseg checkpoint or "
            f"has been tampered with ({_first_line(err)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    _, marker, detail = text.partition("WeightsUnpickler error:")
    if marker:  # torch's own advice (weights_only=False ...) must not be followed here
        text = detail.strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= 300 else line[:300] + "..."
