"""Hostile checkpoint files: every load is refused fast, in bounded memory, with a clear error.

The acceptance test loads each crafted file in a child process whose address space is
capped (``RLIMIT_AS``) at what the imports need plus 1 GiB, and checks the CPU time of
every ``load_checkpoint(...).build_model()`` against 2 s. Before the bounds, the shared
list bomb hung the process in ``str()`` of the classes, the wide config allocated tens
of gigabytes, and sparse, quantized and complex weights were loaded (or failed deep in
``load_state_dict``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoint_builders import (
    RawStorage,
    RawTensor,
    deeply_nested_pickle,
    deflate_entries,
    good_payload,
    shared_list_bomb,
    shared_tuple_key_pickle,
    tiny,
    write_archive,
    write_raw,
)

import catseg
from catseg import _bounds
from catseg.checkpoint import _files, load_checkpoint, save_checkpoint
from catseg.errors import CheckpointError, ConfigError

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import torch
    torch.set_num_threads(1)
    from catseg.checkpoint import load_checkpoint
    from catseg.errors import CatsegError
    from catseg.models import UNet

    READERS = {  # the two readers of a torch.save file
        "checkpoint": lambda path: load_checkpoint(path).build_model(),
        "weights": lambda path: UNet(3, 1, init_features=4, depth=2, encoder_weights=path),
    }
    read = READERS[sys.argv[1]]

    def vm_bytes():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmSize")

    limit = vm_bytes() + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seconds = int(time.process_time()) + 60  # a hang is killed (SIGXCPU), not waited for
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    for path in sys.argv[2:]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            read(path)
            outcome, message = "loaded", ""
        except CatsegError as err:
            outcome, message = type(err).__name__, str(err)
        except BaseException as err:  # MemoryError, a bare torch error ...: a failure
            outcome, message = "escaped " + type(err).__name__, str(err)[:500]
        print(json.dumps({
            "file": os.path.basename(path), "outcome": outcome, "message": message[:2000],
            "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
        }), flush=True)
    print(json.dumps({"done": True, "limit": limit}), flush=True)
    """
)


def _tampered(**changes: Any) -> Callable[[Path, dict[str, Any]], dict[str, Any]]:
    def build(folder: Path, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, **changes}

    return build


def _with_state(key: str, value: torch.Tensor) -> Callable[[Path, dict[str, Any]], Any]:
    def build(folder: Path, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "state_dict": {**payload["state_dict"], key: value}}

    return build


def _config(**changes: Any) -> Callable[[Path, dict[str, Any]], Any]:
    def build(folder: Path, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "model_config": {**payload["model_config"], **changes}}

    return build


def _quantized() -> torch.Tensor:
    with warnings.catch_warnings():  # quantized tensors are deprecated in torch itself
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor(torch.zeros(1), 0.1, 0, torch.quint8)


# file name -> (payload builder, regex the CheckpointError message must match)
SAVED: dict[str, tuple[Callable[[Path, dict[str, Any]], Any], str]] = {
    "bomb-extra.pt": (
        _tampered(extra={"x": shared_list_bomb(40)}),
        r"field 'extra'\['x'\](\[1\])+ is nested more than 32 levels deep",
    ),
    "bomb-wide.pt": (  # 2**20 leaves per level, 20 deep: too many items before too deep
        _tampered(extra={"x": shared_list_bomb(18)}),
        r"field 'extra'(\['x'\]\S*)? holds more than 200000 items \(counting shared references",
    ),
    "bomb-classes.pt": (
        _config(classes=["_background_", shared_list_bomb(40)]),
        r"field 'model_config'\['classes'\]\[1\].* is nested more than 32 levels deep",
    ),
    "bomb-config.pt": (
        _config(dropout=shared_list_bomb(40)),
        r"field 'model_config'\['dropout'\].* is nested more than 32",
    ),
    "shared-strings.pt": (
        _tampered(extra={"log": ["x" * 400_000] * 50}),
        r"field 'extra' holds more than 4000000 characters of strings",
    ),
    "long-class-name.pt": (
        _config(classes=["_background_", "c" * 300_000]),
        r"long-class-name\.pt: invalid model record: classes has 2 names but a binary "
        r"\(1-logit\) model needs 2 names of at most 256 characters",
    ),
    "huge-int.pt": (
        _tampered(extra={"n": 1 << 70}),
        r"field 'extra'\['n'\] is an int of 71 bits \(at most 64\)",
    ),
    "oversized-metadata.pt": (
        _tampered(extra={"x": [[] for _ in range(200_000)]}),
        r"holds \d+ bytes of pickled metadata, more than the 524288",
    ),
    "config-depth-1000.pt": (
        _config(depth=1000),
        r"invalid model record: depth=1000 is over the limit of 12",
    ),
    "config-features-1e6.pt": (
        _config(init_features=1_000_000),
        r"invalid model record: init_features=1000000 is over the limit of 65536",
    ),
    "config-deepest-too-wide.pt": (
        _config(init_features=4096, depth=12),
        r"init_features=4096, depth=12 gives a deepest layer of 16777216 channels",
    ),
    # Within every limit, 77 GB of weights if built: refused on the meta device.
    "config-wide-vs-tiny-weights.pt": (
        _config(init_features=64, depth=10),
        r"weights do not match the model config: .*the config builds \d{12} weight values, "
        r"the file holds \d{4,5}\)",
    ),
    "sparse-weight.pt": (
        _with_state("head.bias", torch.zeros(1).to_sparse()),
        r"field 'state_dict'\['head.bias'\] is a sparse_coo tensor \(only dense tensors\)",
    ),
    "quantized-weight.pt": (
        _with_state("head.bias", _quantized()),
        r"field 'state_dict'\['head.bias'\] is a quantized tensor \(torch.quint8",
    ),
    "complex-weight.pt": (
        _with_state("head.bias", torch.zeros(1, dtype=torch.complex64)),
        r"state_dict\['head.bias'\] is a complex tensor \(torch.complex64\); model weights are",
    ),
    "integer-weight.pt": (
        _with_state("head.bias", torch.zeros(1, dtype=torch.int64)),
        r"weight 'head.bias' is torch.int64, but the model needs a floating-point tensor",
    ),
    "nan-weight.pt": (
        _with_state("head.bias", torch.tensor([float("nan")])),
        r"state_dict\['head.bias'\] holds NaN or infinite values",
    ),
    "expanded-2**40.pt": (
        _tampered(extra={"x": torch.zeros(1).expand(1 << 40)}),
        r"field 'extra'\['x'\] declares 1099511627776 elements over a storage of 1",
    ),
}


def _write_crafted(folder: Path) -> dict[str, str]:
    """Files torch.save cannot write; returns name -> expected message regex."""
    declared = RawStorage(b"\0" * 16, 1 << 40)
    tag = {"format": "catseg.checkpoint", "format_version": 1}
    write_raw(
        folder / "declared-4TB.pt",
        {**tag, "extra": {"t": RawTensor(declared, (4,), (1,))}},
        [declared],
    )
    write_archive(folder / "nested-100000.pt", deeply_nested_pickle(100_000), [])
    torch.save({**good_payload(folder), "extra": {"x": [0] * 100_000}}, folder / "plain.pt")
    deflate_entries(folder / "plain.pt", folder / "deflated.pt")
    (folder / "plain.pt").unlink()
    write_archive(folder / "tuple-key-2**40.pt", shared_tuple_key_pickle(40), [])
    return {
        "tuple-key-2**40.pt": r"tuple-key-2\*\*40\.pt cannot be loaded safely: its pickle builds "
        r"a tuple of more than 200000 nested items",
        "declared-4TB.pt": r"is truncated or corrupt: record size \(16 bytes\) does not match",
        "nested-100000.pt": r"field 'extra'(\[0\])+ is nested more than 32 levels deep",
        "deflated.pt": r"archive entry '.*data.pkl' is compressed \(torch.save writes uncompressed",
    }


def test_hostile_files_are_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    payload = good_payload(tmp_path)
    expected: dict[str, str] = {}
    for name, (build, pattern) in SAVED.items():
        torch.save(build(tmp_path, payload), tmp_path / name)
        expected[name] = pattern
    expected.update(_write_crafted(tmp_path))
    # Loads fine: the largest metadata a file may hold, in the slowest opcodes to unpickle.
    torch.save({**payload, "extra": {"x": [[] for _ in range(70_000)]}}, tmp_path / "max.pt")
    assert 400_000 < _metadata_size(tmp_path / "max.pt") < _bounds.MAX_METADATA_BYTES
    expected["max.pt"] = "loaded"
    _check_in_child("checkpoint", tmp_path, expected)


def _check_in_child(reader: str, folder: Path, expected: dict[str, str]) -> None:
    """Read each file with ``reader`` in a child with 1 GiB of memory; 2 s of CPU each."""
    files = [str(folder / name) for name in expected]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, reader, *files],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "",
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            # the catseg under test, also when it is not installed (PYTHONPATH=src)
            "PYTHONPATH": str(Path(catseg.__file__).resolve().parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["done"]
    assert lines[-1]["limit"] < 4 << 30
    results = {row["file"]: row for row in lines[:-1]}
    assert set(results) == set(expected)
    for name, pattern in expected.items():
        row = results[name]
        if pattern == "loaded":
            assert row["outcome"] == "loaded", row
        else:
            assert row["outcome"] == "CheckpointError", row
            assert re.search(pattern, row["message"]), (pattern, row["message"])
        assert row["cpu"] < 2.0, row  # CPU seconds: the shared CI machine's wall time varies
        assert row["wall"] < 20.0, row


def test_hostile_weight_files_are_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    # UNet(encoder_weights=path) reads a torch.save file within the checkpoint's bounds.
    # Before, the tuple key hung, the bomb hung in building a message, and 60,000 tensors
    # were all read before their names were refused.
    payload = good_payload(tmp_path)
    encoder = {k: v for k, v in payload["state_dict"].items() if k.startswith("encoder.")}
    config = payload["model_config"]
    files: dict[str, tuple[Any, str]] = {
        "mean-bomb.pth": (
            {**payload, "mean": shared_list_bomb(40)},
            r"mean-bomb\.pth\['mean'\](\[1\])+ is nested more than 32 levels deep",
        ),
        "preprocessing-bomb.pth": (
            {
                **payload,
                "model_config": {**config, "preprocessing": {"mean": shared_list_bomb(40)}},
            },
            r"preprocessing-bomb\.pth\['model_config'\]\['preprocessing'\]\['mean'\].* is nested",
        ),
        "plain-bomb.pth": (
            {**encoder, "mean": shared_list_bomb(40)},
            r"plain-bomb\.pth\['mean'\](\[1\])+ is nested more than 32 levels deep",
        ),
        "many-tensors.pth": (
            {f"t{i}": torch.zeros(1) for i in range(60_000)},
            r"many-tensors\.pth is not a catseg checkpoint: its archive declares 6000\d entries "
            r"\(at most 50000\)",
        ),
    }
    expected = {name: pattern for name, (_, pattern) in files.items()}
    for name, (content, _) in files.items():
        torch.save(content, tmp_path / name)
    write_archive(tmp_path / "tuple-key.pt", shared_tuple_key_pickle(40), [])
    expected["tuple-key.pt"] = r"its pickle builds a tuple of more than 200000 nested items"
    _check_in_child("weights", tmp_path, expected)


def _metadata_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return next(i.file_size for i in archive.infolist() if i.filename.endswith("data.pkl"))


def test_file_device_tags_are_ignored_tensors_go_to_map_location(tmp_path: Path) -> None:
    # Storages tagged for a GPU this machine lacks (or an unknown device) still load on
    # the CPU: tensors go where map_location says, never where the file says.
    storages = [
        RawStorage(b"\0\0\x80?" * 2, 2, location=loc, key=str(i))
        for i, loc in enumerate(["cuda:3", "weird"])
    ]
    tag = {"format": "catseg.checkpoint", "format_version": 1}
    tensors = {f"t{i}": RawTensor(s, (2,), (1,)) for i, s in enumerate(storages)}
    write_raw(tmp_path / "gpu.pt", {**tag, "extra": tensors}, storages)
    data = _files.read_archive(tmp_path / "gpu.pt", torch.device("cpu"))
    assert [t.tolist() for t in data["extra"].values()] == [[1.0, 1.0], [1.0, 1.0]]
    assert {t.device.type for t in data["extra"].values()} == {"cpu"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpu", r"map_location 'gpu' is not a device name; expected e\.g\. 'cpu', 'cuda'"),
        (5, r"map_location must be None, a device name .* got 5 of type int"),
        ({"cuda:0": "cpu"}, r"map_location must be None, .* of type dict"),
        ("meta", r"map_location='meta' would load weights without values"),
    ],
)
def test_wrong_map_location_values(tmp_path: Path, value: Any, message: str) -> None:
    path = save_checkpoint(tmp_path / "ok.pt", tiny())
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, map_location=value)


def test_unknown_device_says_what_this_machine_has(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ok.pt", tiny())
    count = torch.accelerator.device_count() if torch.accelerator.is_available() else 0
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    absent = "mps" if accelerator is not None and accelerator.type != "mps" else "xpu"
    with pytest.raises(
        CheckpointError, match=rf"map_location='{absent}(:0)?': this machine has no"
    ):
        load_checkpoint(path, map_location=absent)
    if accelerator is not None:
        with pytest.raises(CheckpointError, match=rf"this machine has {count} {accelerator.type}"):
            load_checkpoint(path, map_location=f"{accelerator.type}:{count}")
        ckpt = load_checkpoint(path, map_location=accelerator.type)
        assert next(ckpt.build_model().parameters()).device.type == accelerator.type
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    assert {t.device.type for t in ckpt.state_dict.values()} == {"cpu"}


def test_too_many_archive_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "ok.pt", tiny())
    with zipfile.ZipFile(path) as archive:
        entries = len(archive.infolist())
    monkeypatch.setattr(_bounds, "MAX_RECORDS", entries - 1)
    with pytest.raises(CheckpointError, match=rf"its archive declares {entries} entries \(at most"):
        load_checkpoint(path)
    monkeypatch.setattr(_bounds, "MAX_RECORDS", entries)
    load_checkpoint(path)


def test_saving_refuses_what_loading_would_refuse(tmp_path: Path) -> None:
    model = tiny()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"extra": {"x": shared_list_bomb(40)}}, r"extra\['x'\](\[1\])+ is nested more than 32"),
        ({"extra": {"n": -(1 << 64)}}, r"extra\['n'\] is an int of 65 bits"),
        ({"extra": {"s": torch.zeros(2).to_sparse()}}, r"extra\['s'\] is a sparse_coo tensor"),
        (
            {"training_state": {"x": [[] for _ in range(100_000)]}},
            r"^the checkpoint holds \d+ bytes of pickled metadata, more than the 524288",
        ),
        ({"extra": [1, 2]}, r"extra must be a dict or None, got list"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=message):
            save_checkpoint(tmp_path / "x.pt", model, **changes)
        assert list(tmp_path.iterdir()) == []
