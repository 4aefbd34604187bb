from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.errors import ConfigError, DTypeError, ShapeError
from catseg.visualize import (
    BINARY_PALETTE,
    VOC_PALETTE,
    colorize,
    get_palette,
    overlay,
)

SEED_PALETTE = [0, 0, 0, 0, 128, 0]


def _reference_voc_colour(label: int) -> tuple[int, int, int]:
    # Independent formulation: bit k of the label goes to channel k % 3 at position 7 - k // 3.
    rgb = [0, 0, 0]
    for k in range(8):
        if label >> k & 1:
            rgb[k % 3] += 1 << (7 - k // 3)
    return rgb[0], rgb[1], rgb[2]


def test_voc_palette_matches_standard_colours() -> None:
    assert len(VOC_PALETTE) == 768
    colours = [tuple(VOC_PALETTE[3 * i : 3 * i + 3]) for i in range(256)]
    assert colours[0] == (0, 0, 0)
    assert colours[1] == (128, 0, 0)
    assert colours[2] == (0, 128, 0)
    assert colours[3] == (128, 128, 0)
    assert colours[8] == (64, 0, 0)
    assert colours[15] == (192, 128, 128)  # person
    assert colours[20] == (0, 64, 128)  # tv/monitor
    assert colours[255] == (224, 224, 192)
    assert colours == [_reference_voc_colour(i) for i in range(256)]
    assert len(set(colours)) == 256


def test_binary_palette_and_names() -> None:
    assert BINARY_PALETTE[:6] == (0, 0, 0, 0, 128, 0)
    assert BINARY_PALETTE[6:] == VOC_PALETTE[6:]
    assert get_palette("voc") is VOC_PALETTE
    assert get_palette("binary") is BINARY_PALETTE
    with pytest.raises(ConfigError, match="palette name must be one of"):
        get_palette("viridis")  # type: ignore[arg-type]


def test_colorize_keeps_labels_and_palette(tmp_path: Path) -> None:
    mask = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.int64)
    before = mask.copy()
    img = colorize(mask)
    assert img.mode == "P"
    assert img.size == (3, 2)
    np.testing.assert_array_equal(np.asarray(img), mask.astype(np.uint8))
    assert img.convert("RGB").getpixel((0, 1)) == (224, 224, 192)
    np.testing.assert_array_equal(mask, before)
    # Round trip through PNG keeps the labels (the VOC SegmentationClassPNG format).
    img.save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as reread:
        assert reread.mode == "P"
        np.testing.assert_array_equal(np.asarray(reread), mask.astype(np.uint8))


def test_colorize_seed_palette_pixels() -> None:
    mask = torch.tensor([[0, 1], [1, 1]])
    rgb = colorize(mask, palette=SEED_PALETTE).convert("RGB")
    assert rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((1, 0)) == (0, 128, 0)
    assert rgb.getpixel((1, 1)) == (0, 128, 0)


def test_colorize_accepts_bool_and_leading_axis() -> None:
    img = colorize(np.array([[[True, False]]]), palette="binary")
    assert np.asarray(img).tolist() == [[1, 0]]


def test_overlay_hand_computed_values() -> None:
    # alpha 0.3, palette black/green: out = floor(0.7 * image + 0.3 * colour + 0.5)
    photo = np.array(
        [[[100, 200, 50], [255, 255, 255]], [[0, 0, 0], [11, 21, 31]]],
        dtype=np.uint8,
    )
    mask = np.array([[1, 0], [1, 0]], dtype=np.uint8)
    photo_before, mask_before = photo.copy(), mask.copy()
    out = overlay(photo, mask, alpha=0.3, palette=SEED_PALETTE)
    assert out.mode == "RGB"
    assert out.size == (2, 2)
    expected = np.array(
        [
            # 0.7*100=70, 0.7*200+0.3*128=178.4, 0.7*50=35 | 0.7*255=178.5 -> 179
            [[70, 178, 35], [179, 179, 179]],
            # 0.3*128=38.4 -> 38 | 7.7->8, 14.7->15, 21.7->22
            [[0, 38, 0], [8, 15, 22]],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(np.asarray(out), expected)
    np.testing.assert_array_equal(photo, photo_before)
    np.testing.assert_array_equal(mask, mask_before)


def test_overlay_blends_void_label_with_its_colour() -> None:
    photo = np.zeros((1, 1, 3), dtype=np.uint8)
    out = overlay(photo, np.array([[255]]), alpha=0.5)
    # 0.5 * (224, 224, 192) = (112, 112, 96)
    assert out.getpixel((0, 0)) == (112, 112, 96)


def test_overlay_alpha_extremes_and_input_kinds() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, size=(5, 7))
    np.testing.assert_array_equal(np.asarray(overlay(photo, mask, alpha=0.0)), photo)
    full = np.asarray(overlay(photo, mask, alpha=1.0))
    np.testing.assert_array_equal(full, np.asarray(colorize(mask).convert("RGB")))
    ref = np.asarray(overlay(photo, mask))
    # PIL image, CHW uint8 tensor and CHW float tensor give the same result.
    np.testing.assert_array_equal(np.asarray(overlay(Image.fromarray(photo), mask)), ref)
    chw = torch.from_numpy(photo).permute(2, 0, 1)
    np.testing.assert_array_equal(np.asarray(overlay(chw, torch.from_numpy(mask))), ref)
    np.testing.assert_array_equal(np.asarray(overlay(chw.float() / 255.0, mask)), ref)
    rgba = np.concatenate([photo, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(np.asarray(overlay(rgba, mask)), ref)


def test_overlay_grayscale_image() -> None:
    out = overlay(np.full((1, 2), 100, np.uint8), np.array([[0, 1]]), palette="binary")
    assert np.asarray(out).tolist() == [[[70, 70, 70], [70, 108, 70]]]


def test_errors_name_the_problem() -> None:
    photo = np.zeros((2, 2, 3), dtype=np.uint8)
    with pytest.raises(ShapeError, match=r"image is 2x2 .* mask is 3x2"):
        overlay(photo, np.zeros((3, 2), dtype=np.uint8))
    with pytest.raises(
        ConfigError, match=r"alpha must be a finite number in \[0\.0, 1\.0\], got 1\.5"
    ):
        overlay(photo, np.zeros((2, 2), dtype=np.uint8), alpha=1.5)
    with pytest.raises(ConfigError, match=r"labels 0\.\.2 but the palette has colours for 0\.\.1"):
        colorize(np.array([[0, 2]]), palette=SEED_PALETTE)
    with pytest.raises(ConfigError, match=r"labels -1\.\.0"):
        colorize(np.array([[0, -1]]))
    with pytest.raises(DTypeError, match="integer labels, got dtype float32"):
        colorize(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"2-D label map \(H, W\), got shape \(2, 2, 2\)"):
        colorize(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ShapeError, match="must not be empty"):
        colorize(np.zeros((0, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="multiple of 3"):
        colorize(np.zeros((1, 1), dtype=np.uint8), palette=[0, 0])
    with pytest.raises(ConfigError, match=r"in 0\.\.255, got 300"):
        colorize(np.zeros((1, 1), dtype=np.uint8), palette=[0, 0, 300])
    with pytest.raises(DTypeError, match="must be uint8"):
        overlay(photo.astype(np.float32), np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ShapeError, match=r"got \(2, 2, 2\)"):
        overlay(photo[:, :, :2], np.zeros((2, 2), dtype=np.uint8))


def test_alpha_and_palette_are_checked_by_the_shared_rules() -> None:
    photo = np.zeros((2, 2, 3), dtype=np.uint8)
    mask = np.zeros((2, 2), dtype=np.uint8)
    for bad in (float("nan"), float("inf"), "0.3", True):
        with pytest.raises(ConfigError, match=r"alpha must be a finite number in \[0\.0, 1\.0\]"):
            overlay(photo, mask, alpha=bad)  # type: ignore[arg-type]
    # numpy scalars are numbers too: 0.5 of black over black stays black
    assert overlay(photo, mask, alpha=np.float32(0.5)).getpixel((0, 0)) == (0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="palette must be 'voc', 'binary' or a flat sequence"):
        colorize(mask, palette=3)  # type: ignore[arg-type]
