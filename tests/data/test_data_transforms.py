"""Joint transforms: hand-computed values, Pillow reference for resizing, reproducibility."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from catseg.data import transforms as tfm
from catseg.errors import ConfigError, DTypeError, ShapeError

Pair = tuple[torch.Tensor, torch.Tensor]


def sample(height: int = 8, width: int = 8) -> Pair:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(3, height, width, generator=generator)
    mask = torch.randint(0, 3, (height, width), generator=generator)
    return image, mask


def test_resize_matches_pillow_antialiased_bilinear() -> None:
    array = np.random.default_rng(0).random((12, 18)).astype(np.float32)
    expected = np.array(Image.fromarray(array, mode="F").resize((7, 5), Image.Resampling.BILINEAR))
    image = torch.from_numpy(array)[None].repeat(3, 1, 1)
    out, _ = tfm.Resize((5, 7))(image, torch.zeros(12, 18, dtype=torch.int64))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)


def test_resize_hand_values() -> None:
    row = torch.tensor([0.0, 0.0, 1.0, 1.0])
    image = row.expand(3, 4, 4).clone()
    mask = torch.arange(16).reshape(4, 4)
    out, labels = tfm.Resize(2)(image, mask)
    # triangle filter of radius 2 centred at x = 1.0: weights 0.75, 0.75, 0.25 (normalised)
    left = (0.25 * 1.0) / 1.75
    assert torch.allclose(out[0, 0], torch.tensor([left, 1 - left]))
    assert labels.tolist() == [[5, 7], [13, 15]]  # nearest pixel centres 1 and 3
    assert labels.dtype == torch.int64


def test_uint8_images_stay_uint8() -> None:
    image = (torch.arange(48, dtype=torch.uint8) * 5).reshape(3, 4, 4)
    mask = torch.zeros(4, 4, dtype=torch.uint8)
    out, labels = tfm.Resize(2)(image, mask)
    reference, _ = tfm.Resize(2)(image.float(), mask)
    assert out.dtype == torch.uint8
    assert labels.dtype == torch.uint8
    assert torch.equal(out, reference.round().to(torch.uint8))


ALL: list[Callable[[torch.Tensor, torch.Tensor], Pair]] = [
    tfm.Resize((5, 6)),
    tfm.RandomResizedCrop(6, seed=0),
    tfm.RandomHorizontalFlip(p=1.0),
    tfm.RandomHorizontalFlip(p=0.0),
    tfm.RandomRotation(30.0, seed=0),
    tfm.ColorJitter(0.3, 0.3, 0.3, seed=0),
    tfm.Normalize([0.5] * 3, [0.2] * 3),
    tfm.PadToMultiple(5),
]


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_inputs_untouched_and_masks_integer(
    transform: Callable[[torch.Tensor, torch.Tensor], Pair],
) -> None:
    image, mask = sample()
    image_copy, mask_copy = image.clone(), mask.clone()
    out_image, out_mask = transform(image, mask)
    assert torch.equal(image, image_copy)
    assert torch.equal(mask, mask_copy)
    assert out_mask.dtype == torch.int64
    assert out_image.dtype == torch.float32
    assert out_image.shape[1:] == out_mask.shape
    assert out_mask.data_ptr() != mask.data_ptr()
    assert set(torch.unique(out_mask).tolist()) <= {0, 1, 2, 255}


@pytest.mark.parametrize(
    "factory",
    [
        lambda s: tfm.RandomResizedCrop(4, seed=s),
        lambda s: tfm.RandomHorizontalFlip(seed=s),
        lambda s: tfm.RandomRotation(45.0, seed=s),
        lambda s: tfm.ColorJitter(0.5, 0.5, 0.5, seed=s),
    ],
    ids=["crop", "flip", "rotation", "jitter"],
)
def test_seeded_transforms_reproduce(factory: Callable[[object], object]) -> None:
    image, mask = sample()
    first, second = factory(7), factory(7)
    runs_a = [first(image, mask) for _ in range(4)]  # type: ignore[operator]
    runs_b = [second(image, mask) for _ in range(4)]  # type: ignore[operator]
    for (ia, ma), (ib, mb) in zip(runs_a, runs_b, strict=True):
        assert torch.equal(ia, ib)
        assert torch.equal(ma, mb)
    generator = torch.Generator().manual_seed(7)
    from_generator = factory(generator)
    assert torch.equal(from_generator(image, mask)[0], runs_a[0][0])  # type: ignore[operator]
    torch.manual_seed(3)
    global_a = factory(None)(image, mask)  # type: ignore[operator]
    torch.manual_seed(3)
    global_b = factory(None)(image, mask)  # type: ignore[operator]
    assert torch.equal(global_a[0], global_b[0])


def test_random_resized_crop_full_area_is_identity() -> None:
    image, mask = sample()
    out, labels = tfm.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=0)(image, mask)
    assert torch.allclose(out, image)
    assert torch.equal(labels, mask)


def test_random_resized_crop_takes_a_window() -> None:
    mask = torch.arange(100).reshape(10, 10)
    image = mask[None].float().repeat(3, 1, 1)
    crop = tfm.RandomResizedCrop((4, 4), scale=(0.16, 0.16), ratio=(1.0, 1.0), seed=5)
    _, labels = crop(image, mask)
    top, left = divmod(int(labels[0, 0]), 10)
    expected = mask[top : top + 4, left : left + 4]
    assert torch.equal(labels, expected)


def test_rotation_by_90_degrees_is_rot90() -> None:
    image, mask = sample(5, 5)
    out, labels = tfm.RandomRotation((90.0, 90.0))(image, mask)
    assert torch.equal(labels, torch.rot90(mask, 1, (0, 1)))
    assert torch.allclose(out, torch.rot90(image, 1, (1, 2)), atol=1e-5)


def test_rotation_fills_corners() -> None:
    image = torch.ones(3, 9, 9)
    mask = torch.zeros(9, 9, dtype=torch.int64)
    out, labels = tfm.RandomRotation((45.0, 45.0), image_fill=0.5)(image, mask)
    assert int(labels[0, 0]) == 255
    assert int(labels[4, 4]) == 0
    assert float(out[0, 0, 0]) == pytest.approx(0.5)
    assert float(out[0, 4, 4]) == pytest.approx(1.0)


def test_color_jitter_hand_values() -> None:
    grey = torch.full((3, 2, 2), 0.4)
    mask = torch.zeros(2, 2, dtype=torch.int64)
    out, _ = tfm.ColorJitter(contrast=0.9, saturation=0.9, seed=0)(grey, mask)
    assert torch.allclose(out, grey)  # a flat grey image has no contrast or saturation
    out, labels = tfm.ColorJitter(brightness=0.5, seed=0)(grey, mask)
    factor = float(out[0, 0, 0]) / 0.4
    assert 0.5 <= factor <= 1.5
    assert torch.allclose(out, grey * factor)
    assert torch.equal(labels, mask)


def test_normalize_and_pad_hand_values() -> None:
    image = torch.tensor([[[0.5]], [[1.0]], [[0.0]]])
    mask = torch.tensor([[4]])
    out, _ = tfm.Normalize([0.5, 0.5, 0.5], [0.5, 0.25, 1.0])(image, mask)
    assert out.flatten().tolist() == [0.0, 2.0, -0.5]
    padded, labels = tfm.PadToMultiple(2, image_fill=-1.0)(image, mask)
    assert labels.tolist() == [[4, 255], [255, 255]]
    assert padded[1].tolist() == [[1.0, -1.0], [-1.0, -1.0]]


def test_compose_applies_in_order() -> None:
    image, mask = sample(3, 3)
    pipeline = tfm.Compose([tfm.PadToMultiple(4), tfm.Resize(2)])
    _, labels = pipeline(image, mask)
    assert labels.tolist() == [[int(mask[1, 1]), 255], [255, 255]]


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (
            lambda: tfm.Resize(0),
            r"size must be an int or \(height, width\) of positive ints, got 0",
        ),
        (lambda: tfm.Resize(2.5), r"size must be .* got 2\.5"),  # type: ignore[arg-type]
        (lambda: tfm.Resize((4, 4.0)), r"size must be .* got \(4, 4\.0\)"),  # type: ignore[arg-type]
        (lambda: tfm.RandomResizedCrop(4, scale=(0.5, 0.2)), r"scale .*\(0\.5, 0\.2\)"),
        (lambda: tfm.RandomResizedCrop(4, ratio=(0.0, 1.0)), r"ratio .*\(0\.0, 1\.0\)"),
        (
            lambda: tfm.RandomResizedCrop(4, scale=(NAN, 1.0)),
            r"scale\[0\] must be a finite number in \[0\.0, 1\.0\], got nan",
        ),
        (
            lambda: tfm.RandomResizedCrop(4, ratio=(0.5, INF)),
            r"ratio\[1\] must be a finite number in \[0\.0, inf\], got inf",
        ),
        (
            lambda: tfm.RandomResizedCrop(4, scale=0.5),
            r"scale must be a \(min, max\) pair of numbers, got 0\.5",
        ),  # type: ignore[arg-type]
        (
            lambda: tfm.RandomHorizontalFlip(p=1.5),
            r"p must be a finite number in \[0\.0, 1\.0\], got 1\.5",
        ),
        (lambda: tfm.RandomHorizontalFlip(p=NAN), r"p must be a finite number .* got nan"),
        (lambda: tfm.RandomHorizontalFlip(p="0.5"), r"p must be a finite number .* got '0\.5'"),  # type: ignore[arg-type]
        (
            lambda: tfm.RandomRotation(-3.0),
            r"degrees must be a finite number in \[0\.0, inf\], got -3\.0",
        ),
        (lambda: tfm.RandomRotation(NAN), r"degrees must be a finite number .* got nan"),
        (lambda: tfm.RandomRotation(INF), r"degrees must be a finite number .* got inf"),
        (lambda: tfm.RandomRotation((0.0, NAN)), r"degrees\[1\] must be a finite number, got nan"),
        (
            lambda: tfm.RandomRotation((10.0, -10.0)),
            r"degrees must be \(min, max\) with min <= max",
        ),
        (
            lambda: tfm.RandomRotation(10, image_fill=NAN),
            r"image_fill must be a finite number, got nan",
        ),
        (lambda: tfm.RandomRotation(10, mask_fill=254.7), r"mask_fill must be an int, got 254\.7"),  # type: ignore[arg-type]
        (lambda: tfm.RandomRotation(10, mask_fill=True), r"mask_fill must be an int, got True"),
        (
            lambda: tfm.ColorJitter(brightness=2.0),
            r"brightness must be a finite number in \[0\.0, 1\.0\], got 2\.0",
        ),
        (lambda: tfm.ColorJitter(contrast=NAN), r"contrast must be a finite number .* got nan"),
        (
            lambda: tfm.Normalize([0.5], [0.0]),
            r"std\[0\] must be a finite number in \(0\.0, inf\], got 0\.0",
        ),
        (lambda: tfm.Normalize([NAN], [1.0]), r"mean\[0\] must be a finite number, got nan"),
        (lambda: tfm.Normalize([0.5, 0.5], [1.0]), r"mean and std must have equal lengths"),
        (lambda: tfm.PadToMultiple(0), r"multiple must be a positive int, got 0"),
        (lambda: tfm.PadToMultiple(8.0), r"multiple must be a positive int, got 8\.0"),  # type: ignore[arg-type]
        (
            lambda: tfm.PadToMultiple(8, image_fill=INF),
            r"image_fill must be a finite number, got inf",
        ),
        (lambda: tfm.PadToMultiple(8, mask_fill=NAN), r"mask_fill must be an int, got nan"),  # type: ignore[arg-type]
        (lambda: tfm.RandomHorizontalFlip(seed="x"), r"seed must be an int, got 'x'"),  # type: ignore[arg-type]
        (lambda: tfm.RandomHorizontalFlip(seed=1.5), r"seed must be an int, got 1\.5"),  # type: ignore[arg-type]
        (lambda: tfm.Compose([1]), r"transforms\[0\] is not callable"),  # type: ignore[list-item]
        (lambda: tfm.Compose(tfm.Resize(4)), r"transforms must be a list of callables, got Resize"),  # type: ignore[arg-type]
    ],
)
def test_invalid_arguments(build: Callable[[], object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        build()


def test_invalid_inputs() -> None:
    image, mask = sample()
    with pytest.raises(ShapeError, match=r"mask must be \(H, W\) = \(8, 8\).*got \(4, 8\)"):
        tfm.Resize(4)(image, mask[:4])
    with pytest.raises(DTypeError, match=r"mask must be an integer label map, got torch\.float32"):
        tfm.Resize(4)(image, mask.float())
    with pytest.raises(ShapeError, match=r"image must be \(C, H, W\), got shape \(8, 8\)"):
        tfm.Resize(4)(image[0], mask)
    with pytest.raises(DTypeError, match="Normalize needs a float image"):
        tfm.Normalize([0.5] * 3, [0.5] * 3)(image.mul(255).to(torch.uint8), mask)


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    multiple=st.integers(1, 8),
    out_h=st.integers(1, 10),
    out_w=st.integers(1, 10),
)
def test_properties_of_pad_flip_and_resize(
    height: int, width: int, multiple: int, out_h: int, out_w: int
) -> None:
    generator = torch.Generator().manual_seed(height * 100 + width)
    image = torch.rand(3, height, width, generator=generator)
    mask = torch.randint(0, 4, (height, width), generator=generator)
    padded, labels = tfm.PadToMultiple(multiple)(image, mask)
    assert labels.shape[0] % multiple == 0
    assert labels.shape[1] % multiple == 0
    assert labels.shape[0] - height < multiple
    assert labels.shape[1] - width < multiple
    assert torch.equal(labels[:height, :width], mask)
    assert torch.equal(padded[:, :height, :width], image)
    assert int((labels == 255).sum()) == labels.numel() - mask.numel()
    flip = tfm.RandomHorizontalFlip(p=1.0)
    assert torch.equal(flip(*flip(image, mask))[1], mask)
    resized, small = tfm.Resize((out_h, out_w))(image, mask)
    assert set(torch.unique(small).tolist()) <= set(torch.unique(mask).tolist())
    assert float(resized.min()) >= float(image.min()) - 1e-6
    assert float(resized.max()) <= float(image.max()) + 1e-6


def test_to_gray_equals_pil_l_on_the_cat_photos(cats_voc) -> None:  # type: ignore[no-untyped-def]
    # the conversion a 1-channel model's Segmenter applies to RGB files: PIL's "L"
    photos = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[:8]
    for photo in photos:
        with Image.open(photo) as file:
            rgb = file.convert("RGB")
            grey = np.asarray(rgb.convert("L")).astype(np.int16)
        image = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)
        mask = torch.zeros(image.shape[1:], dtype=torch.int64)
        out, kept = tfm.ToGray()(image, mask)
        assert out.dtype == torch.uint8
        assert out.shape == (1, *image.shape[1:])
        assert np.abs(out[0].numpy().astype(np.int16) - grey).max() <= 1, photo.name  # rounding
        as_float, _ = tfm.ToGray()(image.float() / 255, mask)
        assert np.abs(as_float[0].numpy() * 255 - grey).max() <= 1.0
        assert torch.equal(kept, mask)


def test_to_gray_hand_values_and_channel_check() -> None:
    image = torch.tensor([[[1.0]], [[0.5]], [[0.0]]])  # 0.299 + 0.587 / 2
    out, _ = tfm.ToGray()(image, torch.zeros(1, 1, dtype=torch.int64))
    assert out.flatten().tolist() == pytest.approx([0.5925])
    with pytest.raises(ShapeError, match=r"ToGray needs a 3-channel RGB image, got \(1, 2, 2\)"):
        tfm.ToGray()(torch.rand(1, 2, 2), torch.zeros(2, 2, dtype=torch.int64))
