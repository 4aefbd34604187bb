"""Reading a model folder without running code from it, every field checked and bounded."""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch

from catseg._bounds import parse_json, read_json, short
from catseg._runtime import require
from catseg.checkpoint._checks import check_weights_fit
from catseg.errors import CatsegError, CheckpointError, MissingFileError
from catseg.hub._format import CONFIG_NAME, FORMAT_TAG, FORMAT_VERSION, WEIGHTS_NAME, FolderConfig
from catseg.models import UNet
from catseg.models.config import plugin_change, read_config

MAX_HEADER_BYTES = 1 << 24
"""Largest safetensors header (tensor names, shapes, offsets) a model folder may hold."""
_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOATS = {"F64", "F32", "F16", "BF16"}


class _Fields:
    """Typed access to the fields of ``config.json``; errors name the file and the field."""

    def __init__(self, file: Path, data: Mapping[str, Any]) -> None:
        self.file = file
        self.data = data

    def fail(self, key: str, found: object, expected: str) -> NoReturn:
        raise CheckpointError(f"{self.file}: field {key!r} is {short(found)}, expected {expected}")

    def get(self, key: str, kinds: tuple[type, ...], expected: str) -> Any:
        if key not in self.data:
            raise CheckpointError(f"{self.file}: the field {key!r} is missing")
        value = self.data[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            self.fail(key, value, expected)
        return value


def _version(fields: _Fields) -> tuple[int, str]:
    version = fields.get("format_version", (int,), "a positive int")
    writer = fields.data.get("catseg_version", "unknown")
    if not isinstance(writer, str) or len(writer) > 64:
        fields.fail("catseg_version", writer, "a version string")
    if version < 1:
        fields.fail("format_version", version, "a positive int")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{fields.file}: field 'format_version' is {version} (written by catseg {writer}); "
            f"this catseg reads model folders up to version {FORMAT_VERSION}: upgrade catseg"
        )
    return version, writer


def _palette(fields: _Fields, count: int) -> tuple[tuple[int, int, int], ...] | None:
    value = fields.data.get("palette")
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == count
    ok = ok and all(
        isinstance(c, list) and len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c)
        for c in value
    )
    if not ok:
        fields.fail("palette", value, f"null or {count} [r, g, b] colours of ints in 0..255")
    return tuple((c[0], c[1], c[2]) for c in value)


def read_folder(folder: Path, text: bytes | None = None) -> FolderConfig:
    """Read and check ``config.json`` of a model folder (or ``text``, its bytes read before)."""
    file = folder / CONFIG_NAME
    if text is None and not file.is_file():
        raise MissingFileError(f"{folder} is not a catseg model folder: {CONFIG_NAME} is missing")
    data = read_json(file) if text is None else parse_json(text, str(file), CheckpointError)
    if not isinstance(data, dict) or data.get("format") != FORMAT_TAG:
        found = short(data.get("format")) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{file} is not a catseg model config: field 'format' is {found}, expected "
            f"{FORMAT_TAG!r}"
        )
    fields = _Fields(file, data)
    version, writer = _version(fields)
    arch = fields.get("model", (dict,), "an object (UNetConfig.to_dict())")
    model = read_config(arch, file)
    training = data.get("training")
    if training is not None and not isinstance(training, dict):
        fields.fail("training", training, "null or an object")
    return FolderConfig(
        model=model,
        palette=_palette(fields, len(model.class_names)),
        fused=fields.get("fused", (bool,), "true or false"),
        training=training,
        catseg_version=writer,
        format_version=version,
    )


def _header(file: Path, data: bytes | None) -> dict[str, Any]:
    """The safetensors header (names, dtypes, shapes, offsets), read and checked with bounds."""
    with open(file, "rb") if data is None else io.BytesIO(data) as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{file} is not a safetensors file: it has {size} bytes")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{file} is not a usable safetensors file: its header claims {length} bytes "
                f"(file: {size} bytes, limit {MAX_HEADER_BYTES})"
            )
        header = parse_json(handle.read(length), f"{file} (header)", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{file} is not a safetensors file: its header is not an object")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    for name, entry in header.items():
        _check_entry(file, name, entry, data_bytes)
    return header


def _check_entry(file: Path, name: str, entry: object, data_bytes: int) -> None:
    fields: Any = entry if isinstance(entry, dict) else {}
    dtype, shape, offsets = fields.get("dtype"), fields.get("shape"), fields.get("data_offsets")
    size = _DTYPES.get(dtype) if isinstance(dtype, str) else None
    lists = isinstance(shape, list) and len(shape) <= 8 and isinstance(offsets, list)
    ints = lists and len(offsets) == 2 and all(type(v) is int and v >= 0 for v in shape + offsets)
    if size is None or not ints:
        raise CheckpointError(f"{file}: tensor {short(name)} has a malformed entry {short(entry)}")
    start, end = offsets
    span = math.prod(max(v, 1) for v in shape) * size  # torch's strides, in int64
    fits = start <= end <= data_bytes and end - start == math.prod(shape) * size
    if not fits or span >= 1 << 63:
        raise CheckpointError(
            f"{file}: tensor {short(name)} ({dtype} {short(shape)}, data offsets "
            f"{short(offsets)}) does not fit its data, the file, or 64-bit sizes"
        )


def read_weights(folder: Path, config: FolderConfig, data: bytes | None = None) -> UNet:
    """Build the model of ``config`` and load ``model.safetensors`` (or ``data``) into it."""
    file = folder / WEIGHTS_NAME
    if data is None and not file.is_file():
        raise MissingFileError(
            f"{folder} is not a complete catseg model folder: {WEIGHTS_NAME} is missing"
        )
    header = _header(file, data)
    try:
        with torch.device("meta"):
            reference = UNet.from_config(config.model)
            if config.fused:
                reference = reference.fuse_for_inference()
    except CatsegError as err:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: field 'model' cannot be built: {err}"
        ) from err
    meta = {k: torch.empty(v["shape"], device="meta") for k, v in header.items()}
    try:
        note = plugin_change(config.model, reference.config)
        check_weights_fit(reference, meta, what=f"the weights in {WEIGHTS_NAME}{note}")
    except CheckpointError as err:
        raise CheckpointError(f"{folder / CONFIG_NAME}: field 'model': {err}") from err
    for name, tensor in reference.state_dict().items():
        if tensor.is_floating_point() != (header[name]["dtype"] in _FLOATS):
            raise CheckpointError(
                f"{file}: tensor {name!r} is {header[name]['dtype']}, but the model needs a "
                f"{'floating-point' if tensor.is_floating_point() else 'integer'} tensor"
            )
    safetensors = require("safetensors.torch", "safetensors")
    try:
        state = safetensors.load_file(str(file)) if data is None else safetensors.load(data)
    except Exception as err:  # safetensors_rust.SafetensorError and friends
        raise CheckpointError(f"{file} is not a readable safetensors file: {err}") from err
    model = UNet.from_config(config.model)
    if config.fused:
        model = model.fuse_for_inference()
    model.load_state_dict(state, strict=True)
    return model.eval()
