"""Issue 26: one record of a trained model, the same in a checkpoint, a model folder and ONNX.

The model states its facts once (``describe``); each file stores them once, and each
reader checks them through ``read_config``, so a tampered value gives the same message,
after the file's name, whichever file holds it. Every file is written through the one
atomic-write helper, with the permissions ``open()`` would give.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

import catseg
from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.errors import CheckpointError
from catseg.export import OnnxRunner, quantize_onnx, to_onnx
from catseg.hub import load_pretrained, save_pretrained
from catseg.models import UNet
from catseg.models.config import UNetConfig


def described() -> UNet:
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2)
    return model.describe(
        classes=["_background_", "cat"],
        image_size=(40, 56),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        threshold=0.3,
    ).eval()


@dataclass(frozen=True)
class Files:
    model: UNet
    checkpoint: Path
    folder: Path
    onnx: Path
    int8: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    """The same model written four ways, under umask 022 (the usual default)."""
    root = tmp_path_factory.mktemp("record")
    model = described()
    previous = os.umask(0o022)
    try:
        fp32 = to_onnx(model, root / "cat.onnx")
        images = [torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
        yield Files(
            model,
            save_checkpoint(root / "cat.pt", model),
            save_pretrained(root / "cat-unet", model),
            fp32,
            quantize_onnx(fp32, root / "cat-int8.onnx", calibration_images=images),
        )
    finally:
        os.umask(previous)


def test_the_three_files_reload_the_same_record(files: Files) -> None:
    records = {
        "checkpoint": load_checkpoint(files.checkpoint).config,
        "folder": load_pretrained(files.folder).model.config,
        "onnx": OnnxRunner(files.onnx).config,
        "int8": OnnxRunner(files.int8).config,
    }
    for name, record in records.items():
        assert record == files.model.config, name
        assert record.classes == ("_background_", "cat"), name
        assert record.mode == "binary", name
        assert record.image_size == (40, 56), name
        assert record.threshold == 0.3, name
        assert record.preprocessing is not None
        assert record.preprocessing.mean == (0.485, 0.456, 0.406), name
        assert record.preprocessing.std == (0.229, 0.224, 0.225), name


# Each tampering edits the stored record (UNetConfig.to_dict()) the way an attacker would.
TAMPERED: dict[str, Callable[[dict[str, Any]], None]] = {
    "threshold-1.5": lambda r: r.update(threshold=1.5),
    "classes-wrong-count": lambda r: r.update(classes=["_background_", "cat", "dog"]),
    "mean-of-2": lambda r: r["preprocessing"].update(mean=[0.5, 0.5]),
    "unknown-mode": lambda r: r.update(mode="panoptic"),
}


def _tampered_checkpoint(files: Files, out: Path, edit: Callable[[dict[str, Any]], None]) -> Any:
    payload = torch.load(files.checkpoint, weights_only=True)
    edit(payload["model_config"])
    torch.save(payload, out / "cat.pt")
    return out / "cat.pt", lambda: load_checkpoint(out / "cat.pt")


def _tampered_folder(files: Files, out: Path, edit: Callable[[dict[str, Any]], None]) -> Any:
    folder = Path(shutil.copytree(files.folder, out / "cat-unet"))
    config = folder / "config.json"
    data = json.loads(config.read_text())
    edit(data["model"])
    config.write_text(json.dumps(data))
    return config, lambda: load_pretrained(folder)


def _tampered_onnx(files: Files, out: Path, edit: Callable[[dict[str, Any]], None]) -> Any:
    proto = onnx.load(str(files.onnx))
    (entry,) = (p for p in proto.metadata_props if p.key == "model_config")
    record = json.loads(entry.value)
    edit(record)
    entry.value = json.dumps(record)
    onnx.save(proto, str(out / "cat.onnx"))
    return out / "cat.onnx", lambda: OnnxRunner(out / "cat.onnx")


@pytest.mark.parametrize("tampering", list(TAMPERED))
def test_a_tampered_value_gives_the_same_message_in_every_file(
    files: Files, tmp_path: Path, tampering: str
) -> None:
    messages = {}
    for kind, craft in (
        ("checkpoint", _tampered_checkpoint),
        ("folder", _tampered_folder),
        ("onnx", _tampered_onnx),
    ):
        out = tmp_path / kind
        out.mkdir()
        file, load = craft(files, out, TAMPERED[tampering])
        with pytest.raises(CheckpointError) as info:
            load()
        message = str(info.value)
        assert message.startswith(f"{file}: invalid model record: "), message
        messages[kind] = message.removeprefix(str(file))
    assert len(set(messages.values())) == 1, messages


def test_files_are_readable_by_group_and_others_under_umask_022(files: Files) -> None:
    written = [
        files.checkpoint,
        files.folder / "config.json",
        files.folder / "model.safetensors",
        files.folder / "README.md",
        files.onnx,
        files.int8,
    ]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in written}
    assert modes == {path.name: "0o644" for path in written}
    assert not [p for p in files.onnx.parent.rglob("*") if p.name.endswith(".tmp")]


def test_permissions_follow_a_stricter_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        paths = [
            save_checkpoint(tmp_path / "private.pt", described()),
            *save_pretrained(tmp_path / "private", described()).iterdir(),
        ]
    finally:
        os.umask(previous)
    assert {oct(p.stat().st_mode & 0o777) for p in paths} == {"0o600"}


def test_one_function_in_src_calls_os_replace() -> None:
    """Every file catseg writes goes through one atomic-write helper."""
    src = Path(catseg.__file__).parent
    callers = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("replace", "rename")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "os"
                ):
                    callers.append(f"{path.relative_to(src)}:{function.name}")
        text = path.read_text(encoding="utf-8")
        assert "from os import" not in text, path  # no way around the check above
    assert callers == ["_files.py:atomic_write"]


def test_the_record_is_stored_once_in_each_file(files: Files) -> None:
    payload = torch.load(files.checkpoint, weights_only=True)
    assert UNetConfig.from_dict(payload["model_config"]) == files.model.config
    assert not {"classes", "image_size", "mean", "std", "mode"} & set(payload)
    config = json.loads((files.folder / "config.json").read_text())
    assert not {"classes", "image_size", "mean", "std", "mode", "architecture"} & set(config)
    props = {p.key for p in onnx.load(str(files.onnx)).metadata_props}
    assert props == {"model_config", "dynamic_size", "stride", "catseg_version"}
