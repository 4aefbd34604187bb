"""Small file builders shared by the reliability tests (no test in here).

Everything is written into a test's ``tmp_path``; nothing large is ever allocated
(the decompression-bomb PNG only *claims* a huge size in its header).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from catseg.errors import CatsegError
from catseg.visualize import VOC_PALETTE

EXIF_ORIENTATION = 0x0112


@pytest.fixture(autouse=True)
def single_threaded_torch(one_thread: None) -> None:
    """Apply the shared ``one_thread`` fixture (tests/conftest.py) to each module importing this.

    Imported by each reliability test module (a second leaf ``conftest.py`` beside
    tests/models/conftest.py would clash when both folders are named on the command line).
    """


def png_header_only(path: Path, width: int, height: int) -> Path:
    """Write a valid-looking RGB PNG that claims ``width x height`` but holds ~nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def save_palette_mask(mask: npt.NDArray[np.uint8], path: Path) -> Path:
    """Save a label map as a VOC palette PNG (pixel = class id)."""
    image = Image.fromarray(mask)
    image.putpalette(VOC_PALETTE)
    image.save(path)
    return path


def write_voc(
    root: Path,
    items: Mapping[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
    class_names: tuple[str, ...] = ("_background_", "cat"),
) -> Path:
    """Write a lossless (PNG images) VOC folder holding ``items`` (id -> (image, mask))."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassPNG").mkdir()
    for stem, (image, mask) in items.items():
        Image.fromarray(image).save(root / "JPEGImages" / f"{stem}.png")
        save_palette_mask(mask, root / "SegmentationClassPNG" / f"{stem}.png")
    (root / "class_names.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
    return root


def random_sample(
    height: int, width: int, seed: int, num_classes: int = 2
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """A random RGB image and label map of the given size."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = rng.integers(0, num_classes, (height, width), dtype=np.uint8)
    return image, mask


def write_labelme(
    folder: Path, shapes: list[dict[str, Any]], *, size: tuple[int, int] = (8, 6), **fields: Any
) -> Path:
    """Write ``folder/a.png`` (``size`` = (width, height)) and ``folder/a.json``.

    ``fields`` override the document's top-level keys (e.g. ``imagePath=None``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 50, 60)).save(folder / "a.png")
    doc: dict[str, Any] = {"imagePath": "a.png", "imageData": None, "shapes": shapes}
    doc.update(fields)
    path = folder / "a.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_dist(
    site: Path,
    dist: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
    version: str = "0.1",
) -> None:
    """'Install' a distribution the way pip does: a dist-info folder plus its modules."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = ["[catseg.encoders]", *(f"{k} = {v}" for k, v in entry_points.items())]
    info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, source in modules.items():
        site.joinpath(f"{name}.py").write_text(source, encoding="utf-8")


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root`` (folders as empty markers)."""
    snapshot: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        snapshot[key + ("/" if path.is_dir() else "")] = b"" if path.is_dir() else path.read_bytes()
    return snapshot


@dataclass(frozen=True)
class Row:
    """One catalogue entry: an action and its expected outcome (a catseg error or a check).

    ``call`` (and ``after``, run whatever happens) gets the argument the catalogue's test
    passes to :func:`run_row`: its ``tmp_path``, or a context holding it. ``check`` gets
    the result and asserts (or returns ``False`` to fail).
    """

    id: str
    call: Callable[[Any], Any]
    outcome: str
    error: type[CatsegError] | None = None
    match: str | None = None
    check: Callable[[Any], object] | None = None
    after: Callable[[Any], None] | None = None


def check_rows(rows: Sequence[Row]) -> None:
    """Each row has a unique id and either an expected error (with a match) or a check."""
    assert len({row.id for row in rows}) == len(rows)
    for row in rows:
        assert (row.error is None) != (row.check is None), row.id
        assert (row.error is None) == (row.match is None), row.id


def run_row(row: Row, arg: Any) -> None:
    """Run one row on ``arg``: the catseg error it names (message matched), or its check."""
    try:
        if row.error is not None:
            with pytest.raises(row.error, match=row.match):
                row.call(arg)
        else:
            assert row.check is not None
            assert row.check(row.call(arg)) is not False, row.id
    finally:
        if row.after is not None:
            row.after(arg)
