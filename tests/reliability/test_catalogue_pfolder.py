"""Bad-input catalogue for folder prediction (issue 19): ``Segmenter.predict_folder``.

Each row is one thing a user may pass to ``predict_folder`` and the catseg error (class
and message) it gets, raised before any photo is read or any file written; and a
DataLoader worker killed mid-run (issue 27, class 5), after which a rerun resumes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)

from catseg.data._inputs import Loaded
from catseg.errors import ConfigError, DataError, MissingFileError
from catseg.models import UNet
from catseg.predict import Segmenter, _folder


def segmenter() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(
        UNet(3, 1, init_features=4, depth=2), classes=["_background_", "cat"], precision="fp32"
    )


def photos(tmp: Path) -> Path:
    src = tmp / "photos"
    src.mkdir(exist_ok=True)
    Image.new("RGB", (12, 10)).save(src / "a.jpg")
    (src / "b.jpg").write_bytes(b"\xff\xd8 not really")
    return src


def folder(tmp: Path, **kwargs: Any) -> Any:
    return segmenter().predict_folder(photos(tmp), tmp / "out", num_workers=0, **kwargs)


def _killed_worker(tmp: Path) -> Any:
    """A DataLoader worker killed on c.jpg, as the kernel's OOM killer does (issue 27)."""
    src = tmp / "s"
    src.mkdir()
    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]):
        Image.new("RGB", (20 + i, 16), (i * 40, 90, 30)).save(src / name)
    read = _folder.load_input

    def killed_on_c(path: Path, in_channels: int, size: tuple[int, int] | None) -> Loaded:
        if path.name == "c.jpg":
            os.kill(os.getpid(), signal.SIGKILL)
        return read(path, in_channels, size)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_folder, "load_input", killed_on_c)
        return segmenter().predict_folder(src, tmp / "o", num_workers=1)


def _rerun_resumes(tmp: Path) -> None:
    summary = segmenter().predict_folder(tmp / "s", tmp / "o", num_workers=0)
    assert summary.ok
    assert summary.written + summary.skipped == 4
    assert sorted(p.name for p in (tmp / "o").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]


# fmt: off
ROWS: list[Row] = [
    Row("folder-src-missing",
        lambda tmp: segmenter().predict_folder(tmp / "none", tmp / "out"),
        "MissingFileError", MissingFileError, r"src folder not found: .*none"),
    Row("folder-src-is-a-file",
        lambda tmp: segmenter().predict_folder(photos(tmp) / "a.jpg", tmp / "out"),
        "ConfigError", ConfigError, r"src must be a folder of photos, got the file .*a\.jpg"),
    Row("folder-dst-is-a-file",
        lambda tmp: segmenter().predict_folder(photos(tmp), photos(tmp) / "a.jpg"),
        "ConfigError", ConfigError, r"dst must be a folder"),
    Row("folder-dst-inside-src-matching-png",
        lambda tmp: segmenter().predict_folder(photos(tmp), tmp / "photos" / "masks"),
        "ConfigError", ConfigError,
        r"dst .*masks is inside src .*pattern matches the files written there"),
    Row("folder-pattern-not-a-string", lambda tmp: folder(tmp, pattern=3),
        "ConfigError", ConfigError, r"pattern must be a glob relative to src .*got 3"),
    Row("folder-pattern-absolute", lambda tmp: folder(tmp, pattern="/etc/*.jpg"),
        "ConfigError", ConfigError, r"pattern must be a glob relative to src"),
    Row("folder-on-error-unknown", lambda tmp: folder(tmp, on_error="warn"),
        "ConfigError", ConfigError, r"on_error"),
    Row("folder-num-workers-negative",
        lambda tmp: segmenter().predict_folder(photos(tmp), tmp / "out", num_workers=-2),
        "ConfigError", ConfigError, r"num_workers"),
    Row("folder-overlay-not-bool", lambda tmp: folder(tmp, overlay=1),
        "ConfigError", ConfigError, r"overlay"),
    Row("folder-files-one-path", lambda tmp: folder(tmp, files="a.jpg"),
        "ConfigError", ConfigError,
        r"files must be an iterable of paths, got the one path 'a\.jpg'"),
    Row("folder-files-outside-src", lambda tmp: folder(tmp, files=[tmp / "x.jpg"]),
        "ConfigError", ConfigError, r"files must lie under src"),
    Row("folder-broken-photo-raise", lambda tmp: folder(tmp, on_error="raise"),
        "DataError", DataError, r"b\.jpg"),
    Row("folder-worker-killed", _killed_worker,
        "DataError (was: a bare RuntimeError); a rerun then resumes and completes", DataError,
        r"decoding the photos stopped: DataLoader worker .*again", after=_rerun_resumes),
]
# fmt: on


def test_rows_are_distinct() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_pfolder(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
