"""Hostile checkpoint files, crafted byte by byte where ``torch.save`` cannot write them."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from catseg.checkpoint import save_checkpoint
from catseg.models import UNet

RECORD: dict[str, Any] = {
    "classes": ["_background_", "cat"],
    "image_size": (32, 32),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
}


def tiny() -> UNet:
    """A tiny binary UNet whose config records :data:`RECORD`."""
    torch.manual_seed(0)
    return UNet(3, 1, init_features=4, depth=2).describe(**RECORD).eval()


def good_payload(folder: Path) -> dict[str, Any]:
    """The payload dict of a valid checkpoint of :func:`tiny`, to tamper with."""
    path = save_checkpoint(folder / "good-source.pt", tiny())
    payload: dict[str, Any] = torch.load(path, weights_only=True)
    path.unlink()
    return payload


def shared_list_bomb(levels: int = 40) -> list[Any]:
    """A list that is ``levels`` lists in memory and 2**levels leaves to walk."""
    bomb: list[Any] = [0]
    for _ in range(levels):
        bomb = [bomb, bomb]
    return bomb


class RawStorage:
    """A storage record whose declared element count and device are chosen by the test."""

    def __init__(self, data: bytes, numel: int, *, location: str = "cpu", key: str = "0") -> None:
        self.data, self.numel, self.location, self.key = data, numel, location, key


class RawTensor:
    """A tensor over a :class:`RawStorage` with any size and stride."""

    def __init__(self, storage: RawStorage, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.size, self.stride = storage, size, stride


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, RawStorage):
            return ("storage", torch.FloatStorage, obj.key, obj.location, obj.numel)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, RawTensor):
            args = (obj.storage, 0, obj.size, obj.stride, False, OrderedDict())
            return (torch._utils._rebuild_tensor_v2, args)
        return NotImplemented


def write_archive(path: Path, pickled: bytes, storages: list[RawStorage]) -> Path:
    """Write a torch.save-style zip archive around raw pickle bytes."""
    writer = torch._C.PyTorchFileWriter(str(path))
    writer.write_record("data.pkl", pickled, len(pickled))
    writer.write_record("byteorder", b"little", 6)
    for storage in storages:
        writer.write_record(f"data/{storage.key}", storage.data, len(storage.data))
    writer.write_end_of_file()
    return path


def write_raw(path: Path, obj: Any, storages: list[RawStorage]) -> Path:
    """Pickle ``obj`` (which may hold :class:`RawTensor` s) into an archive."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return write_archive(path, buffer.getvalue(), storages)


def deeply_nested_pickle(depth: int) -> bytes:
    """A catseg-tagged payload whose ``extra`` is a list nested ``depth`` deep.

    Python's pickler recurses and cannot write this; the opcodes are written by hand:
    ``depth`` EMPTY_LISTs, then ``depth - 1`` APPENDs that put each into the one below.
    """

    def text(value: str) -> bytes:
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    body = b"\x80\x02}(" + text("format") + text("catseg.checkpoint")
    body += text("format_version") + b"K\x01" + text("extra")
    body += b"]" * depth + b"a" * (depth - 1)
    return body + b"u."


def shared_tuple_key_pickle(levels: int) -> bytes:
    """A catseg-tagged payload whose ``extra`` dict has as key a tuple of ``levels`` levels.

    Each level holds the level below twice: ``levels`` tuples in the file, ``2**levels``
    to hash when the unpickler puts the key into the dict (Python does not cache tuple
    hashes). The opcodes are written by hand: building the dict here would hash the key.
    """

    def text(value: str) -> bytes:
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    key: Any = (0,)
    for _ in range(levels):
        key = (key, key)
    body = b"\x80\x02}(" + text("format") + text("catseg.checkpoint")
    body += text("format_version") + b"K\x01" + text("extra") + b"}"
    return body + pickle.dumps(key, protocol=2)[2:-1] + b"K\x01su."


def deflate_entries(source: Path, target: Path) -> Path:
    """Copy an archive with every entry deflated (torch.load reads those too)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return target
