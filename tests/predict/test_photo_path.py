"""Phone-size photos (issue 29): JPEG draft decoding, uint8 resizing, lazy overlay images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import catseg.predict._pipeline
from catseg.data import open_image
from catseg.data._inputs import load_input, model_input
from catseg.errors import DataError
from catseg.models import UNet
from catseg.predict import Segmenter

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory, cats_voc: Path) -> Path:
    """A cats-voc val photo upscaled to 2000x1500 with mild noise, as a camera JPEG."""
    name = (cats_voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    photo = open_image(cats_voc / "JPEGImages" / f"{name}.jpg")
    big = np.asarray(photo.resize((2000, 1500), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(0).normal(0, 3, big.shape).round().astype(np.int16)
    path = tmp_path_factory.mktemp("photo") / "big.jpg"
    Image.fromarray((big + noise).clip(0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_a_jpeg_is_read_at_a_draft_scale_at_least_twice_the_model_size(
    big_jpeg: Path, tmp_path: Path
) -> None:
    # 2 x 64 = 128 px: 1/4 scale (500x375) is the smallest still at least that large
    # (1/8 keeps only each block's mean: never used)
    loaded = load_input(big_jpeg, 3, (64, 64))
    assert tuple(loaded.pixels.shape) == (3, 375, 500)
    assert tuple(load_input(big_jpeg, 3, (16, 16)).pixels.shape) == (3, 375, 500)
    assert loaded.size == (1500, 2000)
    assert loaded.display == big_jpeg
    assert tuple(load_input(big_jpeg, 3, (128, 96)).pixels.shape) == (3, 375, 500)
    assert tuple(load_input(big_jpeg, 3, (256, 256)).pixels.shape) == (3, 750, 1000)
    partial = tmp_path / "partial.jpg"  # 1502 rows: 1/4 scale would end in half a block
    Image.open(big_jpeg).resize((2000, 1502)).save(partial, quality=90)
    assert tuple(load_input(partial, 3, (64, 64)).pixels.shape) == (3, 751, 1000)
    assert tuple(load_input(big_jpeg, 3).pixels.shape) == (3, 1500, 2000)  # no model size
    # a PNG has no draft scale; EXIF turned JPEGs keep their upright size
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(big_jpeg).save(turned, exif=exif, quality=90)
    loaded = load_input(turned, 3, (64, 64))
    assert loaded.size == (2000, 1500)
    assert tuple(loaded.pixels.shape) == (3, 500, 375)


def test_the_model_input_from_a_draft_decode_is_close_to_the_full_decode(big_jpeg: Path) -> None:
    full = torch.from_numpy(np.asarray(open_image(big_jpeg)).copy()).permute(2, 0, 1)
    before = model_input(full.float() / 255, (128, 128), MEAN, STD)  # float, full size
    loaded = load_input(big_jpeg, 3, (128, 128))
    assert tuple(loaded.pixels.shape) == (3, 375, 500)  # 1/4 scale, resized as float
    error = ((model_input(loaded.pixels, (128, 128), MEAN, STD) - before) * STD).abs()
    assert float(error.mean()) < 0.2 / 255  # in [0, 1] pixel units
    assert float(error.max()) < 3 / 255


def test_a_uint8_resize_is_within_one_level_of_the_float_resize() -> None:
    pixels = torch.randint(0, 256, (3, 301, 403), dtype=torch.uint8)
    as_uint8 = model_input(pixels, (32, 48), MEAN, STD)
    as_float = model_input(pixels.float() / 255, (32, 48), MEAN, STD)
    assert float(((as_uint8 - as_float) * STD).abs().max()) <= 1 / 255  # one level


class _FixedLogits(nn.Module):
    """A model whose logits are fixed smooth random maps, whatever the input."""

    def __init__(self, channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        coarse = torch.rand(1, channels, size[0] // 6 + 2, size[1] // 6 + 2) * 8 - 4
        self.register_buffer("logits", torch.nn.functional.interpolate(coarse, size=size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


@pytest.mark.parametrize(
    ("mode", "channels", "threshold"),
    [("binary", 1, 0.5), ("multiclass", 4, None), ("multilabel", 3, (0.3, 0.5, 0.7))],
)
@pytest.mark.parametrize(
    ("model_size", "image_size"),
    [((64, 48), (1500, 2000)), ((37, 50), (371, 260)), ((64, 48), (30, 48)), ((40, 40), (40, 40))],
)
def test_masks_are_exactly_the_decisions_of_the_bilinear_resized_probabilities(
    mode: str,
    channels: int,
    threshold: float | tuple[float, ...] | None,
    model_size: tuple[int, int],
    image_size: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the mask is decided at model size where a blend cannot change it: bit for bit the same
    monkeypatch.setattr(catseg.predict._pipeline, "BAND", 1 << 12)  # many chunks of blends
    model = _FixedLogits(channels, model_size)
    names = [f"c{i}" for i in range(2 if mode == "binary" else channels)]
    seg = Segmenter(
        model,
        mode=mode,
        classes=names,
        image_size=model_size,
        threshold=threshold,
        precision="fp32",
    )
    logits = model.logits.float()
    probs = torch.softmax(logits, 1) if mode == "multiclass" else torch.sigmoid(logits)
    full = torch.nn.functional.interpolate(
        probs, size=image_size, mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)[0]
    if mode == "multiclass":
        expected = full.max(0).indices.to(torch.uint8)
    else:
        expected = full > torch.tensor(threshold).view(-1, 1, 1)
        expected = expected[0].to(torch.uint8) if mode == "binary" else expected
    mask = seg.predict(torch.zeros(3, *image_size, dtype=torch.uint8)).mask
    assert mask.dtype == expected.dtype
    assert torch.equal(mask, expected)


def test_the_overlay_of_a_file_is_read_again_at_full_size_and_a_changed_file_is_refused(
    big_jpeg: Path, tmp_path: Path
) -> None:
    seg = Segmenter(UNet(3, 1, init_features=4, depth=2), image_size=(64, 64), precision="fp32")
    pred = seg.predict(big_jpeg)
    assert pred.size == (1500, 2000)
    assert pred.image is not None
    assert pred.image.size == (2000, 1500)
    assert pred.overlay().size == (2000, 1500)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(big_jpeg.read_bytes())
    pred = seg.predict(copy)
    Image.new("RGB", (20, 10)).save(copy)
    with pytest.raises(
        DataError, match=r"copy.jpg changed since it was segmented: it is now 20x10"
    ):
        pred.overlay()
