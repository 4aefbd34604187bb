"""Image and mask decoding: mode conversions, EXIF, draft decoding, errors naming files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg.data import open_image, read_mask, to_rgb
from catseg.data._io import read_rgb  # private: no public path
from catseg.errors import ConfigError, DataError, MissingFileError

EXIF_ORIENTATION = 0x0112


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = (255, 0, 0)  # left half red
    stored[:, 8:] = (0, 0, 255)  # right half blue
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6  # display rotated 90 degrees clockwise
    image.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    upright = open_image(tmp_path / "rot.jpg")
    assert upright.size == (8, 16)  # width 8, height 16
    top, bottom = pixels(upright)[2, 4], pixels(upright)[13, 4]
    assert top[0] > 200
    assert top[2] < 60
    assert bottom[2] > 200
    assert bottom[0] < 60


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGBA", (2, 2), (10, 20, 30, 0)), (10, 20, 30)),
        (Image.new("LA", (2, 2), (77, 5)), (77, 77, 77)),
        (Image.new("L", (2, 2), 9), (9, 9, 9)),
        (Image.new("1", (2, 2), 1), (255, 255, 255)),
        (Image.new("CMYK", (2, 2), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("I;16", (2, 2), 32896), (128, 128, 128)),
        (Image.new("I", (2, 2), 65535), (255, 255, 255)),
    ],
    ids=["RGBA", "LA", "L", "1", "CMYK", "I;16", "I"],
)
def test_to_rgb_mode_conversions(image: Image.Image, expected: tuple[int, int, int]) -> None:
    before = image.tobytes()
    out = to_rgb(image)
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == expected
    assert image.tobytes() == before  # input untouched


def test_to_rgb_returns_new_image_for_rgb() -> None:
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    out = to_rgb(image)
    out.putpixel((0, 0), (9, 9, 9))
    assert image.getpixel((0, 0)) == (1, 2, 3)


def test_transparent_palette_image(tmp_path: Path) -> None:
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 40, 50, 60] + [0, 0, 0] * 254)
    image.info["transparency"] = 1
    image.save(tmp_path / "t.png")
    assert open_image(tmp_path / "t.png").getpixel((0, 0)) == (40, 50, 60)


def test_sixteen_bit_png_scaled_to_eight_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    out = pixels(open_image(tmp_path / "g16.png"))[..., 0]
    assert out.tolist() == [[0, 1, 255, 128]]


def test_cmyk_tiff_file(tmp_path: Path) -> None:
    Image.new("CMYK", (3, 3), (0, 0, 255, 0)).save(tmp_path / "c.tif")
    assert open_image(tmp_path / "c.tif").getpixel((0, 0)) == (255, 255, 0)


def test_draft_decodes_jpeg_at_reduced_scale(tmp_path: Path) -> None:
    Image.new("RGB", (800, 400), (50, 100, 150)).save(tmp_path / "wide.jpg")
    image, decoded = read_rgb(tmp_path / "wide.jpg", "wide.jpg", draft_size=(100, 200))
    full = decoded.size
    assert image.size == (200, 100)  # scale 1/4: still >= (h=100, w=200)
    assert full == (400, 800)
    assert open_image(tmp_path / "wide.jpg", draft_size=(101, 200)).size == (400, 200)


def test_draft_respects_exif_rotation(tmp_path: Path) -> None:
    image = Image.new("RGB", (800, 400))
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    image.save(tmp_path / "rot.jpg", exif=exif)
    out, decoded = read_rgb(tmp_path / "rot.jpg", "rot.jpg", draft_size=(200, 100))
    full = decoded.size
    assert full == (800, 400)
    assert out.size == (100, 200)  # upright width 100, height 200: scale 1/4


def test_draft_size_validated(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    with pytest.raises(
        ConfigError,
        match=r"draft_size must be an int or \(height, width\) of positive ints, got \(0, 4\)",
    ):
        open_image(tmp_path / "a.jpg", draft_size=(0, 4))


# --- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.jpg"):
        open_image(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg is empty \(0 bytes\)"):
        open_image(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "f.jpg")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg is truncated or corrupt"):
        open_image(tmp_path / "cut.jpg")


def test_not_an_image_and_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.png is not an image file"):
        open_image(tmp_path / "notes.png")
    with pytest.raises(DataError, match="is not a regular file"):
        read_mask(tmp_path)


@pytest.mark.parametrize("side", [40, 50], ids=["warning-zone", "error-zone"])
def test_decompression_bomb_becomes_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    Image.new("L", (side, side)).save(tmp_path / "bomb.png")
    # 1600 px is above the limit (Pillow warns), 2500 px above twice the limit (Pillow raises)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"bomb\.png is refused by Pillow's decompression-bomb"):
        open_image(tmp_path / "bomb.png")
    with pytest.raises(DataError, match=r"bomb\.png"):
        read_mask(tmp_path / "bomb.png")


# --- masks --------------------------------------------------------------------------------


def test_palette_mask_decoded_by_index_not_colour(tmp_path: Path) -> None:
    mask = Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8), mode="P")
    mask.putpalette([255, 255, 255] * 256)  # every index looks white
    mask.save(tmp_path / "m.png")
    out = read_mask(tmp_path / "m.png")
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 1], [2, 255]]


def test_grayscale_mask_as_is(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 7, 255]], dtype=np.uint8)).save(tmp_path / "g.png")
    assert read_mask(tmp_path / "g.png").tolist() == [[0, 7, 255]]


def test_rgb_mask_mapped_through_voc_palette(tmp_path: Path) -> None:
    colours = np.array([[[0, 0, 0], [128, 0, 0], [64, 0, 0], [224, 224, 192]]], dtype=np.uint8)
    Image.fromarray(colours).save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png").tolist() == [[0, 1, 8, 255]]
    rgba = np.concatenate([colours, np.full((1, 4, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_mask(tmp_path / "rgba.png").tolist() == [[0, 1, 8, 255]]


def test_rgb_mask_unknown_colours(tmp_path: Path) -> None:
    colours = np.array([[[0, 0, 0], [1, 2, 3], [250, 250, 250]]], dtype=np.uint8)
    Image.fromarray(colours).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png.*\(1, 2, 3\), \(250, 250, 250\)"):
        read_mask(tmp_path / "odd.png")


def test_sixteen_bit_mask(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 1, 255]], dtype=np.uint16)).save(tmp_path / "ok.png")
    assert read_mask(tmp_path / "ok.png").tolist() == [[0, 1, 255]]
    Image.fromarray(np.array([[0, 300]], dtype=np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big\.png .*values in \[0, 300\]"):
        read_mask(tmp_path / "big.png")


def test_to_rgb_refuses_what_is_not_an_image() -> None:
    with pytest.raises(ConfigError, match=r"image must be a PIL image, got ndarray"):
        to_rgb(np.zeros((2, 2, 3), np.uint8))  # type: ignore[arg-type]
