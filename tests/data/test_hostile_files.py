"""Masks that cannot hold exact ids, EXIF-turned photos, and decoders fed hostile bytes."""

from __future__ import annotations

import io
import random
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.data import VOCSegmentationDataset, open_image, read_mask, to_rgb
from catseg.errors import CatsegError, DataError
from catseg.visualize import VOC_PALETTE

EXIF_ORIENTATION = 0x0112


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour PNGs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def save_palette(mask: np.ndarray, path: Path) -> Path:
    image = Image.fromarray(mask.astype(np.uint8))
    image.putpalette(VOC_PALETTE)
    image.save(path)
    return path


def make_voc(root: Path) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassPNG").mkdir()
    (root / "class_names.txt").write_text("_background_\ncat\n")
    return root


# --- masks: exact ids or a DataError ------------------------------------------------------


def test_jpeg_data_under_a_png_name_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(tmp_path / "m.png", "JPEG")
    with pytest.raises(DataError, match=r"m\.png holds JPEG data \(lossy compression\)"):
        read_mask(tmp_path / "m.png")


def test_rgba_mask_with_object_only_in_alpha_is_refused(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), np.uint8)  # every colour black (class 0) ...
    rgba[0, 1, 3] = 255  # ... and the object exists only as opaque pixels
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with pytest.raises(DataError, match=r"alpha\.png has an alpha channel that varies inside"):
        read_mask(tmp_path / "alpha.png")
    la = np.zeros((2, 3, 2), np.uint8)
    la[1, 2, 1] = 200
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    with pytest.raises(DataError, match=r"la\.png has an alpha channel"):
        read_mask(tmp_path / "la.png")


def test_rgba_mask_with_transparent_background_reads_by_colour(tmp_path: Path) -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)  # transparent black background
    rgba[0, 1] = (128, 0, 0, 255)  # opaque class 1
    rgba[0, 2] = (224, 224, 192, 255)  # opaque "ignore"
    Image.fromarray(rgba).save(tmp_path / "objects.png")
    assert read_mask(tmp_path / "objects.png").tolist() == [[0, 1, 255]]


@pytest.mark.parametrize(
    ("colour_type", "samples"), [(2, (1, 2, 3, 300, 0, 65535)), (4, (1, 65535, 300, 0))]
)
def test_sixteen_bit_colour_mask_is_refused(
    tmp_path: Path, colour_type: int, samples: tuple[int, ...]
) -> None:
    raw = b"\x00" + struct.pack(f">{len(samples)}H", *samples)
    (tmp_path / "deep.png").write_bytes(png_bytes(2, 1, 16, colour_type, raw))
    with pytest.raises(DataError, match=r"deep\.png is a 16-bit .* only the high byte"):
        read_mask(tmp_path / "deep.png")


def test_float_mask_exact_ids_read_others_refused(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.0, 1.0, 255.0]], np.float32)).save(tmp_path / "ok.tif")
    assert read_mask(tmp_path / "ok.tif").tolist() == [[0, 1, 255]]
    for name, values in (("half", [0.0, 1.5]), ("nan", [0.0, np.nan]), ("big", [0.0, 256.0])):
        Image.fromarray(np.array([values], np.float32)).save(tmp_path / f"{name}.tif")
        with pytest.raises(DataError, match=rf"{name}\.tif is a 32-bit float mask"):
            read_mask(tmp_path / f"{name}.tif")


# --- EXIF orientation ---------------------------------------------------------------------


def phone_photo(path: Path, stored: np.ndarray, orientation: int) -> Path:
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    image.save(path, exif=exif, quality=100)
    return path


def stored_pattern(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric white L-shape on black, and its mask (1 = white) on the stored grid."""
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 2, : width // 4] = 1
    mask[: height // 4, : width // 2] = 1
    return np.repeat(mask[..., None] * 255, 3, axis=2), mask


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_mask_drawn_on_stored_pixels_is_turned_with_the_photo(
    tmp_path: Path, orientation: int
) -> None:
    root = make_voc(tmp_path / "voc")
    pixels, mask = stored_pattern(16, 32)
    phone_photo(root / "JPEGImages" / "p.jpg", pixels, orientation)
    save_palette(mask, root / "SegmentationClassPNG" / "p.png")
    image, labels = VOCSegmentationDataset(root)[0]
    assert tuple(image.shape) == (3, 32, 16)  # upright
    assert torch.equal(labels, (image.mean(0) > 0.5).to(torch.int64))  # aligned, exactly


@pytest.mark.parametrize(("size", "orientation"), [((16, 16), 6), ((16, 32), 3), ((16, 32), 2)])
def test_ambiguous_mask_grid_is_refused_not_guessed(
    tmp_path: Path, size: tuple[int, int], orientation: int
) -> None:
    root = make_voc(tmp_path / "voc")
    pixels, mask = stored_pattern(*size)
    phone_photo(root / "JPEGImages" / "sq.jpg", pixels, orientation)
    save_palette(mask, root / "SegmentationClassPNG" / "sq.png")
    with pytest.raises(
        DataError, match=rf"sq\.jpg has EXIF orientation {orientation}.*cannot tell"
    ):
        VOCSegmentationDataset(root)[0]


def test_in_memory_image_keeps_its_stored_orientation() -> None:
    image = Image.new("RGB", (9, 4), (1, 2, 3))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    image.info["exif"] = exif.tobytes()
    assert to_rgb(image).size == (9, 4)  # the size the caller holds, not the turned one


# --- any decoder failure is a DataError naming the file -----------------------------------


def jpeg_with_exif(tmp_path: Path) -> bytes:
    image = Image.new("RGB", (8, 6), (200, 10, 10))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_corrupt_exif_block_is_a_data_error_and_skippable(tmp_path: Path) -> None:
    data = jpeg_with_exif(tmp_path)
    header = data.index(b"Exif\x00\x00") + 6
    broken = data[:header] + b"MM**" + data[header + 4 :]  # not a TIFF header: SyntaxError
    root = make_voc(tmp_path / "voc")
    (root / "JPEGImages" / "bad.jpg").write_bytes(broken)
    save_palette(np.zeros((8, 6), np.uint8), root / "SegmentationClassPNG" / "bad.png")
    Image.new("RGB", (3, 2)).save(root / "JPEGImages" / "good.png")
    save_palette(np.ones((2, 3), np.uint8), root / "SegmentationClassPNG" / "good.png")
    with pytest.raises(DataError, match=r"bad\.jpg has a corrupt EXIF block \(SyntaxError"):
        open_image(root / "JPEGImages" / "bad.jpg")
    dataset = VOCSegmentationDataset(root, on_error="skip")
    _, mask = dataset[0]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert dataset.skipped_ids == ("bad",)


@pytest.mark.parametrize(
    "error",
    [
        SyntaxError("bad header"),
        struct.error("unpack requires a buffer"),
        ZeroDivisionError("division by zero"),
        IndexError("tuple index out of range"),
        KeyError("mode"),
        MemoryError(),
        Image.DecompressionBombError("too big"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_decoder_exception_becomes_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "x.png")

    def broken_open(*args: object, **kwargs: object) -> Image.Image:
        raise error

    monkeypatch.setattr(Image, "open", broken_open)
    for reader in (open_image, read_mask):
        with pytest.raises(DataError, match=r"x\.png (is truncated or corrupt|is refused)"):
            reader(tmp_path / "x.png")


def test_lazily_opened_broken_pil_image_in_to_rgb(tmp_path: Path) -> None:
    data = io.BytesIO()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(data, "PNG")
    opened = Image.open(io.BytesIO(data.getvalue()[:60]))  # header only: decoding fails later
    with pytest.raises(DataError, match=r"cannot read an image of mode 'RGB'"):
        to_rgb(opened)


# --- fuzzing the decoders with mutated real files -----------------------------------------


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind, at = rng.random(), rng.randrange(len(out))
        if kind < 0.6:
            out[at] = rng.randrange(256)
        elif kind < 0.75:
            del out[at:]
        elif kind < 0.9:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
        else:
            out[at : at + 4] = struct.pack(">I", rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 2**32 - 1]))
        if not out:
            out = bytearray(b"\x00")
    return bytes(out)


def test_fuzz_decoders_only_catseg_errors_or_valid_outputs(cats_voc: Path, tmp_path: Path) -> None:
    """Seeded mutations of real JPEG/PNG bytes: a DataError or a valid output, nothing else."""
    jpegs = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[:3]
    masks = sorted((cats_voc / "SegmentationClassPNG").glob("*.png"))[:3]
    seeds = [p.read_bytes() for p in (*jpegs, *masks)]
    seeds.append(jpeg_with_exif(tmp_path))  # an EXIF block to break
    rng = random.Random(20211)
    root = make_voc(tmp_path / "voc")
    start, outcomes = time.perf_counter(), {"ok": 0, "error": 0}
    messages: list[str] = []
    for case in range(240):
        path = tmp_path / f"case{case % 5}.png"
        path.write_bytes(mutate(rng.choice(seeds), rng))
        for reader in (open_image, read_mask):
            try:
                result = reader(path)
            except CatsegError as err:
                messages.append(str(err))
                outcomes["error"] += 1
            else:
                shape = np.asarray(result).shape
                assert len(shape) in (2, 3)
                assert min(shape[:2]) >= 1
                outcomes["ok"] += 1
        if case % 5 == 0:  # a few go through dataset items as well
            shutil.copy(path, root / "JPEGImages" / f"c{case}.jpg")
            shutil.copy(masks[case % 3], root / "SegmentationClassPNG" / f"c{case}.png")
    dataset = VOCSegmentationDataset(root, image_size=32)
    for index in range(len(dataset)):
        try:
            image, mask = dataset[index]
        except CatsegError:
            outcomes["error"] += 1
        else:
            assert tuple(image.shape) == (3, 32, 32)
            assert tuple(mask.shape) == (32, 32)
    skipping = VOCSegmentationDataset(root, image_size=32, on_error="skip")
    for index in range(len(skipping)):
        image, mask = skipping[index]  # always a readable item: the broken ones are skipped
        assert tuple(mask.shape) == (32, 32)
    assert skipping.num_skipped > 0
    assert all(str(tmp_path / "case") in message for message in messages)  # names the file
    assert outcomes["ok"] > 20, outcomes
    assert outcomes["error"] > 100, outcomes
    assert time.perf_counter() - start < 30
