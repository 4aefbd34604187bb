"""Catalogue rows for data files and data options (issue 21): silent wrong answers and
hostile files become catseg errors or correct results.

Same contract as ``test_catalogue.py``: a row either returns the documented result
(checked against hand-worked values) or raises the listed catseg error whose message
names the file, field or value.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_builders import (
    EXIF_ORIENTATION,
    Row,
    check_rows,
    run_row,
    save_palette_mask,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
)

from catseg.data import VOCSegmentationDataset, labelme_to_voc, open_image, read_labelme, read_mask
from catseg.data import transforms as tfm
from catseg.errors import ConfigError, DataError, LabelmeError
from catseg.models import UNet
from catseg.predict import Segmenter

LABELS = ["__ignore__", "_background_", "cat"]
NAN, INF = float("nan"), float("inf")


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


def _voc(tmp: Path) -> Path:
    (tmp / "voc" / "JPEGImages").mkdir(parents=True)
    (tmp / "voc" / "SegmentationClassPNG").mkdir()
    (tmp / "voc" / "class_names.txt").write_text("_background_\ncat\n")
    return tmp / "voc"


def _jpeg_named_png(tmp: Path) -> Any:
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(tmp / "mask.png", "JPEG")
    return read_mask(tmp / "mask.png")


def _alpha_only_object(tmp: Path) -> Any:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0, 3] = 255  # the cat exists only as opaque pixels on black
    Image.fromarray(rgba).save(tmp / "cutout.png")
    return read_mask(tmp / "cutout.png")


def _rgb16_mask(tmp: Path) -> Any:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"\x00" + struct.pack(">3H", 300, 0, 0)  # id 300 would be read as 1
    header = struct.pack(">IIBBBBB", 1, 1, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    (tmp / "deep.png").write_bytes(data + chunk(b"IEND", b""))
    return read_mask(tmp / "deep.png")


def _float_mask(values: list[float]) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        Image.fromarray(np.array([values], np.float32)).save(tmp / "ids.tif")
        return read_mask(tmp / "ids.tif").tolist()

    return call


def _phone(tmp: Path, size: tuple[int, int], orientation: int, mask_hw: tuple[int, int]) -> Any:
    root = _voc(tmp)
    stored = np.zeros((*size, 3), np.uint8)
    stored[: size[0] // 2, : size[1] // 4] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    image.save(root / "JPEGImages" / "phone.jpg", exif=exif, quality=100)
    mask = (stored[..., 0] > 0).astype(np.uint8)
    if mask.shape != mask_hw:  # drawn on the photo as displayed: turned 90° clockwise
        mask = np.rot90(mask, -1).copy()
    save_palette_mask(mask, root / "SegmentationClassPNG" / "phone.png")
    image_t, mask_t = VOCSegmentationDataset(root)[0]
    return bool(torch.equal(mask_t, (image_t.mean(0) > 0.5).to(torch.int64))), tuple(mask_t.shape)


def _pil_with_exif_in_predict(tmp: Path) -> Any:
    image = Image.new("RGB", (12, 5), (90, 90, 90))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    image.info["exif"] = exif.tobytes()
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2).eval()
    mask = Segmenter(model, classes=["_background_", "cat"], precision="fp32").predict(image).mask
    return tuple(mask.shape), image.size


def _corrupt_exif(tmp: Path) -> Any:
    return open_image(_write_corrupt_exif(tmp))


def _write_corrupt_exif(tmp: Path) -> Path:
    image = Image.new("RGB", (8, 6))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    data = buffer.getvalue()
    start = data.index(b"Exif\x00\x00") + 6
    (tmp / "IMG_2040.jpg").write_bytes(data[:start] + b"MM**" + data[start + 4 :])
    return tmp / "IMG_2040.jpg"


def _corrupt_exif_skipped(tmp: Path) -> Any:
    root = _voc(tmp)
    _write_corrupt_exif(root / "JPEGImages")
    save_palette_mask(np.zeros((8, 6), np.uint8), root / "SegmentationClassPNG" / "IMG_2040.png")
    Image.new("RGB", (2, 1)).save(root / "JPEGImages" / "ok.png")
    save_palette_mask(np.ones((1, 2), np.uint8), root / "SegmentationClassPNG" / "ok.png")
    dataset = VOCSegmentationDataset(root, on_error="skip")
    return dataset[0][1].tolist(), dataset.skipped_ids


def _labelme(tmp: Path, doc: dict[str, Any], **options: Any) -> Any:
    (tmp / "labels").mkdir()
    Image.new("RGB", (4, 3)).save(tmp / "labels" / "a.png")
    full = {"imagePath": "a.png", "imageData": None, "shapes": []} | doc
    (tmp / "labels" / "a.json").write_text(json.dumps(full))
    return read_labelme(tmp / "labels" / "a.json", LABELS, **options)[1].shape


def _outside(tmp: Path) -> Any:
    Image.new("RGB", (2, 2)).save(tmp / "elsewhere.png")
    return _labelme(tmp, {"imagePath": "../elsewhere.png"})


def _outside_opted_in(tmp: Path) -> Any:
    Image.new("RGB", (5, 2)).save(tmp / "elsewhere.png")
    return _labelme(tmp, {"imagePath": "../elsewhere.png"}, image_root=tmp)


def _case_collision(tmp: Path) -> Any:
    (tmp / "labels").mkdir()
    Image.new("RGB", (2, 2)).save(tmp / "labels" / "a.png")
    for name in ("a.json", "A.JSON"):
        (tmp / "labels" / name).write_text('{"imagePath": "a.png", "shapes": []}')
    return labelme_to_voc(tmp / "labels", tmp / "out", LABELS)


def _deep(tmp: Path) -> Any:
    (tmp / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    return read_labelme(tmp / "deep.json", LABELS)


def _rect(points: list[list[Any]]) -> dict[str, Any]:
    return {"shapes": [{"label": "cat", "points": points, "shape_type": "rectangle"}]}


ROWS: list[Row] = [
    # --- masks: exact class ids or a DataError ----------------------------------------------
    Row("mask-jpeg-data-named-png", _jpeg_named_png, "DataError: lossy", DataError,
        r"mask\.png holds JPEG data \(lossy compression\)"),
    Row("mask-object-only-in-alpha", _alpha_only_object, "DataError naming file and alpha",
        DataError, r"cutout\.png has an alpha channel that varies inside class id\(s\) \[0\]"),
    Row("mask-16-bit-rgb", _rgb16_mask, "DataError: Pillow keeps the high byte", DataError,
        r"deep\.png is a 16-bit RGB image"),
    Row("mask-float-exact-ids", _float_mask([0.0, 1.0, 255.0]), "ids 0, 1, 255",
        check=_equal([[0, 1, 255]])),
    Row("mask-float-fractional", _float_mask([0.0, 0.6]), "DataError: no rounding", DataError,
        r"ids\.tif is a 32-bit float mask \(mode 'F', values in \[0, 0\.6\]\)"),
    # --- EXIF: one rule for every photo shape --------------------------------------------
    Row("exif-mask-on-stored-pixels-wide", lambda t: _phone(t, (8, 16), 6, (8, 16)),
        "turned with the photo: aligned, (16, 8)", check=_equal((True, (16, 8)))),
    Row("exif-mask-on-upright-photo-wide", lambda t: _phone(t, (8, 16), 6, (16, 8)),
        "used as is: aligned, (16, 8)", check=_equal((True, (16, 8)))),
    Row("exif-square-photo-ambiguous", lambda t: _phone(t, (8, 8), 6, (8, 8)),
        "DataError, not a guess", DataError,
        r"phone\.jpg has EXIF orientation 6, which turns it .*cannot tell"),
    Row("predict-PIL-image-with-exif", _pil_with_exif_in_predict,
        "mask (5, 12) = the PIL image's size", check=_equal(((5, 12), (12, 5)))),
    # --- hostile image files ------------------------------------------------------------
    Row("image-corrupt-exif-block", _corrupt_exif, "DataError naming the file", DataError,
        r"IMG_2040\.jpg has a corrupt EXIF block \(SyntaxError"),
    Row("dataset-corrupt-exif-skipped", _corrupt_exif_skipped, "next item; id recorded",
        check=_equal(([[1, 1]], ("IMG_2040",)))),
    # --- labelme --------------------------------------------------------------------------
    Row("labelme-imagePath-outside-folder", _outside, "LabelmeError naming file and path",
        LabelmeError, r"a\.json: imagePath '\.\./elsewhere\.png' resolves to .* outside"),
    Row("labelme-imagePath-outside-opted-in", _outside_opted_in, "read: mask (2, 5)",
        check=_equal((2, 5))),
    Row("labelme-ids-differ-only-in-case", _case_collision, "DataError naming both files",
        DataError, r"A\.JSON and .*a\.json give ids that differ only in case"),
    Row("labelme-1e308-coordinate", lambda t: _labelme(t, _rect([[0, 0], [1e308, 2]])),
        "LabelmeError naming the field", LabelmeError, r"a\.json: shape 0 \(rectangle\): "
        r"points\[1\]\[0\] = 1e\+308 lies more than 100000 pixels outside"),
    Row("labelme-label-of-wrong-type",
        lambda t: _labelme(t, {"shapes": [{"label": 7, "points": [[0, 0], [1, 1]]}]}),
        "LabelmeError naming the field", LabelmeError, r"shape 0 has label 7; a label must be"),
    Row("labelme-points-of-wrong-type", lambda t: _labelme(t, _rect([[0, 0], [None, 2]])),
        "LabelmeError naming the field", LabelmeError,
        r"points\[1\]\[0\] must be a JSON number, got None"),
    Row("labelme-deep-nesting", _deep, "LabelmeError, not RecursionError", LabelmeError,
        r"deep\.json is nested too deeply"),
    # a 5,000-character imagePath: a bare OSError (File name too long) and a 5,000-character
    # message before (issue 27, class 5); the shortened name is at most 2 × 30 characters
    Row("labelme-imagePath-5000-chars", lambda t: _labelme(t, {"imagePath": "a" * 5000}),
        "LabelmeError naming the file, a shortened path", LabelmeError,
        r"a\.json: imagePath 'a{1,30}\.\.\.a{1,30}' cannot be resolved: File name too long$"),
    Row("labelme-imagePath-2500-folders",
        lambda t: _labelme(t, {"imagePath": "a/" * 2500 + "a.png"}),
        "LabelmeError naming the file", LabelmeError, r"a\.json: imagePath .*File name too long$"),
    Row("labelme-imagePath-5000-chars-outside",
        lambda t: _labelme(t, {"imagePath": "../" + "a" * 5000}),
        "LabelmeError naming the file", LabelmeError,
        r"a\.json: imagePath .*resolves to a file outside"),
    # --- transform options: finite numbers and whole ints only ------------------------------
    Row("rotation-nan-degrees", lambda t: tfm.RandomRotation(NAN), "ConfigError", ConfigError,
        r"degrees must be a finite number in \[0\.0, inf\], got nan"),
    Row("rotation-inf-range", lambda t: tfm.RandomRotation((0.0, INF)), "ConfigError",
        ConfigError, r"degrees\[1\] must be a finite number, got inf"),
    Row("rotation-nan-image-fill", lambda t: tfm.RandomRotation(5, image_fill=NAN),
        "ConfigError", ConfigError, r"image_fill must be a finite number, got nan"),
    Row("pad-fractional-mask-fill", lambda t: tfm.PadToMultiple(8, mask_fill=254.5),
        "ConfigError (not truncated to 254)", ConfigError, r"mask_fill must be an int, got 254\.5"),
    Row("flip-nan-probability", lambda t: tfm.RandomHorizontalFlip(NAN), "ConfigError",
        ConfigError, r"p must be a finite number in \[0\.0, 1\.0\], got nan"),
    Row("crop-inf-ratio", lambda t: tfm.RandomResizedCrop(8, ratio=(0.5, INF)), "ConfigError",
        ConfigError, r"ratio\[1\] must be a finite number in \[0\.0, inf\], got inf"),
    Row("resize-fractional-size", lambda t: tfm.Resize((8, 8.5)), "ConfigError", ConfigError,
        r"size must be an int or \(height, width\) of positive ints, got \(8, 8\.5\)"),
    Row("normalize-nan-mean", lambda t: tfm.Normalize([NAN], [1.0]), "ConfigError",
        ConfigError, r"mean\[0\] must be a finite number, got nan"),
    Row("jitter-inf-brightness", lambda t: tfm.ColorJitter(brightness=INF), "ConfigError",
        ConfigError, r"brightness must be a finite number in \[0\.0, 1\.0\], got inf"),
]  # fmt: skip


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_data(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
