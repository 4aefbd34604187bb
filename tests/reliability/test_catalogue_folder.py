"""Bad-input catalogue rows for model folders (issue 19, "Sharing": hostile folders).

Same contract as ``test_catalogue.py``: each row either returns the documented result,
checked against hand-worked values, or raises the listed catseg error whose message
names the file, field and what is wrong. Every hostile folder is refused in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from reliability_builders import (
    Row,
    check_rows,
    run_row,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
)

from catseg.errors import CheckpointError, ConfigError, MissingFileError
from catseg.hub import save_pretrained
from catseg.models import UNet
from catseg.predict import Segmenter

CLASSES = ["_background_", "cat"]


def tiny() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, init_features=4, depth=2).eval()


def _folder(tmp: Path) -> Path:
    return save_pretrained(tmp / "downloaded", tiny().describe(classes=CLASSES, image_size=32))


def _config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Any]:
    """Save a good folder, rewrite its config.json with ``edit``, load it as a user would."""

    def call(tmp: Path) -> Any:
        folder = _folder(tmp)
        data = json.loads((folder / "config.json").read_text())
        edited = edit(data)
        text = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
        (folder / "config.json").write_bytes(text)
        return Segmenter.from_pretrained(folder, precision="fp32")

    return call


def _drop(name: str) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        folder = _folder(tmp)
        (folder / name).unlink()
        return Segmenter.from_pretrained(folder)

    return call


def _round_trip(tmp: Path) -> Any:
    seg = Segmenter(tiny(), classes=CLASSES, image_size=(32, 32), precision="fp32")
    again = Segmenter.from_pretrained(seg.save_pretrained(tmp / "m"), precision="fp32")
    x = torch.rand(3, 45, 61)
    return bool(torch.equal(seg.predict(x).mask, again.predict(x).mask)), again.image_size


def _foreign(tmp: Path) -> Any:
    (tmp / "photos").mkdir()
    (tmp / "photos" / "cat.jpg").write_bytes(b"not mine to replace")
    return save_pretrained(tmp / "photos", tiny().describe(classes=CLASSES))


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


ROWS: list[Row] = [
    Row("folder-round-trip", _round_trip, "identical masks, the folder's image size",
        check=_equal((True, (32, 32)))),
    Row("folder-newer-format-version", _config(lambda d: {**d, "format_version": 7}),
        "CheckpointError naming the file and field", CheckpointError,
        r"downloaded/config\.json: field 'format_version' is 7 .* up to version 1"),
    Row("folder-missing-weights", _drop("model.safetensors"), "MissingFileError naming it",
        MissingFileError, r"model\.safetensors is missing"),
    Row("folder-missing-config", _drop("config.json"), "MissingFileError naming it",
        MissingFileError, r"config\.json is missing"),
    Row("folder-config-does-not-fit-weights",
        _config(lambda d: {**d, "model": {**d["model"], "depth": 3}}),
        "CheckpointError before any weight is read", CheckpointError,
        r"config\.json: field 'model': the weights in model\.safetensors do not match"),
    Row("folder-config-depth-1e6",
        _config(lambda d: {**d, "model": {**d["model"], "depth": 10**6}}),
        "CheckpointError before building", CheckpointError,
        r"config\.json: invalid model record: depth=1000000 is over the limit of 12"),
    Row("folder-deep-json", _config(lambda d: b"[" * 200_000),
        "CheckpointError in ms (no RecursionError traceback)", CheckpointError,
        r"config\.json is not valid JSON: it is nested too deeply"),
    Row("folder-huge-json", _config(lambda d: b" " * (3 << 20)),
        "CheckpointError before reading", CheckpointError, r"over the limit of 1048576 bytes"),
    Row("folder-classes-not-a-list",
        _config(lambda d: {**d, "model": {**d["model"], "classes": {"0": "bg"}}}),
        "CheckpointError naming the field", CheckpointError,
        r"config\.json: invalid model record: classes must be a list of class names, "
        r"got \{'0': 'bg'\}"),
    Row("folder-save-into-foreign-folder", _foreign, "ConfigError; nothing overwritten",
        ConfigError, r"photos is not empty and is not a catseg model folder"),
]  # fmt: skip


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_folder(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
