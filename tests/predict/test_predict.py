from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import nn

from catseg._runtime import resolve_precision
from catseg.checkpoint import save_checkpoint
from catseg.data import open_image, read_mask
from catseg.errors import (
    ConfigError,
    DataError,
    DTypeError,
    MissingFileError,
    NonFiniteError,
    ShapeError,
)
from catseg.models import UNet
from catseg.models.config import UNetConfig
from catseg.models.preprocessing import Preprocessing
from catseg.predict import Prediction, Segmenter
from catseg.predict._tiling import tile_starts, tiled_scores

CLASSES = ["_background_", "cat"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
REF: dict[str, Any] = {"precision": "fp32", "fuse": False, "channels_last": False}
"""The plain reference path: fp32, no BatchNorm folding, NCHW."""


def normed(model: UNet) -> UNet:
    """``model`` recording the ImageNet normalisation the tests train with."""
    return model.describe(mean=MEAN, std=STD)


def tiny(num_classes: int = 1, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(3, num_classes, init_features=4, depth=2)


@functools.lru_cache(maxsize=4)
def _train(steps: int, num_classes: int) -> UNet:
    model = tiny(num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    for step in range(steps):
        x = torch.stack([smooth_image(48, 48, seed=100 + 4 * step + i) for i in range(4)])
        bright = x.mean(1)
        target = (bright > 0.5).long() + (bright > 0.6).long() * (num_classes > 2)
        logits = model((x - mean) / std)
        if num_classes == 1:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
        else:
            loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model.eval()


def trained_tiny(steps: int = 15, num_classes: int = 1) -> UNet:
    """A tiny UNet trained to find bright regions: decisive logits, real boundaries."""
    return copy.deepcopy(_train(steps, num_classes))


def smooth_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A photo-like float image in [0, 1]: coarse random noise upsampled smoothly."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 40), max(2, width // 40), generator=gen)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def reference_probabilities(
    model: nn.Module, image: torch.Tensor, image_size: tuple[int, int] | None
) -> torch.Tensor:
    """The documented pipeline written out by hand: foreground probability (H, W)."""
    x = image.float()[None]
    if image_size is not None:
        x = F.interpolate(x, size=image_size, mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.sigmoid(model.eval()(x))
    size = tuple(image.shape[1:])
    if tuple(probs.shape[2:]) != size:
        probs = F.interpolate(
            probs, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    return probs[0, 0].clamp(0, 1)


@pytest.mark.parametrize("image_size", [None, (48, 64)])
def test_matches_hand_written_pipeline(image_size: tuple[int, int] | None) -> None:
    model = trained_tiny()
    image = smooth_image(57, 83)
    seg = Segmenter(normed(model), classes=CLASSES, image_size=image_size, **REF)
    pred = seg.predict(image, return_probabilities=True)
    expected = reference_probabilities(model, image, image_size)
    assert pred.mask.shape == (57, 83)
    assert pred.mask.dtype == torch.uint8
    assert pred.probabilities is not None
    assert pred.probabilities.shape == (2, 57, 83)
    assert pred.probabilities.dtype == torch.float32
    torch.testing.assert_close(pred.probabilities[1], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(pred.probabilities[0], 1 - expected, atol=1e-6, rtol=0)
    assert torch.equal(pred.mask, (expected > 0.5).to(torch.uint8))
    assert pred.classes == CLASSES


def test_fast_path_agrees_with_reference_and_leaves_model_alone() -> None:
    model = trained_tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = smooth_image(64, 96)
    ref = Segmenter(normed(model), classes=CLASSES, **REF)
    fast = Segmenter(normed(model), classes=CLASSES, precision="fp32")
    assert fast.model is not None
    assert getattr(fast.model, "is_fused", False)
    p_ref = ref.predict(image, return_probabilities=True).probabilities
    p_fast = fast.predict(image, return_probabilities=True).probabilities
    assert p_ref is not None
    assert p_fast is not None
    torch.testing.assert_close(p_fast, p_ref, atol=1e-4, rtol=0)
    # The caller's model is untouched: still training, same weights, same memory format.
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous()


def test_precision_auto_follows_the_runtime_rule() -> None:
    seg = Segmenter(tiny(), classes=CLASSES, device="cpu")
    assert seg.autocast_dtype == resolve_precision("auto", torch.device("cpu"))
    assert Segmenter(tiny(), classes=CLASSES, precision="fp32").autocast_dtype is None
    assert "precision='fp32'" in repr(Segmenter(tiny(), classes=CLASSES, precision="fp32"))


def test_bf16_and_tiled_masks_agree_with_fp32_on_a_large_image() -> None:
    model = trained_tiny()
    image = smooth_image(1500, 2000)
    whole = Segmenter(normed(model), classes=CLASSES, precision="fp32")
    bf16 = Segmenter(normed(model), classes=CLASSES, precision="bf16")
    tiled = Segmenter(normed(model), classes=CLASSES, precision="fp32", tile=(512, 64))
    m_whole = whole.predict(image).mask
    m_bf16 = bf16.predict(image).mask
    m_tiled = tiled.predict(image).mask
    assert m_whole.shape == m_bf16.shape == m_tiled.shape == (1500, 2000)
    assert 0.05 < m_whole.float().mean() < 0.95  # a real two-class mask, not constant
    assert (m_bf16 == m_whole).float().mean() >= 0.999
    assert (m_tiled == m_whole).float().mean() >= 0.9995


def test_tiles_follow_the_model_stride_so_tile_cores_equal_the_whole_image() -> None:
    """Aligned tiles share the whole image's pooling grid: away from inner tile edges
    (beyond the receptive field) the tiled probabilities are the whole-image ones."""
    model = trained_tiny()
    assert model.stride == 4
    image = smooth_image(300, 300)
    kwargs: dict[str, Any] = {"classes": CLASSES, **REF}
    whole = Segmenter(normed(model), **kwargs).predict(image, return_probabilities=True)
    tiled = Segmenter(normed(model), tile=(128, 18), **kwargs)
    # steps of 128 - 18 = 110 are rounded down to 108: tiles start at 0, 108, 216
    got = tiled.predict(image, return_probabilities=True)
    assert whole.probabilities is not None
    assert got.probabilities is not None
    core = (slice(140, 200), slice(140, 200))  # inside tile (1, 1) only
    expected = whole.probabilities[1][core]
    torch.testing.assert_close(got.probabilities[1][core], expected, atol=1e-5, rtol=0)
    # the same tiles started at 110 (off the stride grid) do not reproduce the whole image
    x = (image - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    unaligned = tiled_scores(tiled._pipeline.scores, x, (128, 18), 4, align=1)
    assert (unaligned[0][core] - expected).abs().max() > 1e-2


class Pointwise(nn.Module):
    """A per-pixel model: tiling and batching cannot change its output at all."""

    in_channels = 3

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x) * 5
        return out


def test_tiles_cover_the_image_and_blend_exactly() -> None:
    for length in (1, 5, 100, 513, 1000):
        for align in (1, 16, 100):
            starts = tile_starts(length, 128, 32, align)
            covered = torch.zeros(length, dtype=torch.bool)
            for s in starts:
                covered[s : s + 128] = True
                assert s % align == 0
                assert s < length
            assert bool(covered.all())
            step = 128 - 32 if align == 1 else max(align, 96 // align * align)
            assert all(b - a == step for a, b in itertools.pairwise(starts))
    model = Pointwise(3)
    image = smooth_image(300, 410)
    names = ["a", "b", "c"]
    whole = Segmenter(model, classes=names, **REF).predict(image, return_probabilities=True)
    tiled = Segmenter(model, classes=names, tile=(128, 32), **REF, batch_size=3).predict(
        image, return_probabilities=True
    )
    assert whole.probabilities is not None
    assert tiled.probabilities is not None
    torch.testing.assert_close(tiled.probabilities, whole.probabilities, atol=1e-6, rtol=0)
    assert torch.equal(tiled.mask, whole.mask)


def test_multiclass_argmax_and_probabilities() -> None:
    model = trained_tiny(num_classes=3)
    seg = Segmenter(model, classes=["bg", "cat", "dog"], **REF)
    pred = seg.predict(smooth_image(40, 50), return_probabilities=True)
    assert pred.probabilities is not None
    assert pred.probabilities.shape == (3, 40, 50)
    torch.testing.assert_close(pred.probabilities.sum(0), torch.ones(40, 50))
    assert torch.equal(pred.mask, pred.probabilities.argmax(0).to(torch.uint8))


def test_tta_averages_the_horizontal_flip() -> None:
    model = trained_tiny()
    image = smooth_image(33, 47)
    plain = Segmenter(model, classes=CLASSES, **REF)
    tta = Segmenter(model, classes=CLASSES, tta=True, **REF)
    p = plain.predict(image, return_probabilities=True).probabilities
    p_flip = plain.predict(image.flip(-1), return_probabilities=True).probabilities
    p_tta = tta.predict(image, return_probabilities=True).probabilities
    assert p is not None
    assert p_flip is not None
    assert p_tta is not None
    torch.testing.assert_close(p_tta, (p + p_flip.flip(-1)) / 2, atol=1e-6, rtol=0)
    assert not torch.allclose(p, p_tta, atol=1e-4)  # the flip does change something


def test_postprocess_and_threshold() -> None:
    model = trained_tiny()
    image = smooth_image(30, 40)
    seen: list[tuple[int, ...]] = []

    def swap(probs: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(probs.shape))
        return probs.flip(0)

    base = Segmenter(model, classes=CLASSES, **REF).predict(image, return_probabilities=True)
    swapped = Segmenter(model, classes=CLASSES, postprocess=swap, **REF).predict(image)
    assert seen == [(2, 30, 40)]  # class probabilities at the original size
    assert base.probabilities is not None
    assert torch.equal(swapped.mask, (base.probabilities[0] > 0.5).to(torch.uint8))
    high = Segmenter(model, classes=CLASSES, threshold=0.9, **REF).predict(image)
    assert torch.equal(high.mask, (base.probabilities[1] > 0.9).to(torch.uint8))

    def bad(probs: torch.Tensor) -> torch.Tensor:
        return probs[:1]

    with pytest.raises(
        ShapeError, match=r"postprocess must return a tensor of shape \(2, 30, 40\)"
    ):
        Segmenter(model, classes=CLASSES, postprocess=bad, **REF).predict(image)


def test_every_input_kind_gives_the_same_mask_and_is_not_modified(tmp_path: Path) -> None:
    seg = Segmenter(normed(trained_tiny()), classes=CLASSES, image_size=(32, 32))
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(37, 45, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    chw_uint8 = torch.from_numpy(array).permute(2, 0, 1)
    chw_float = chw_uint8.float() / 255
    rgba = np.concatenate([array, np.full((37, 45, 1), 7, np.uint8)], axis=2)
    inputs: list[Any] = [
        array,
        rgba,
        Image.fromarray(array),
        Image.fromarray(rgba),
        str(tmp_path / "x.png"),
        tmp_path / "x.png",
        chw_uint8,
        chw_float,
    ]
    copies = [x.copy() if isinstance(x, np.ndarray) else x for x in inputs]
    tensor_copies = [chw_uint8.clone(), chw_float.clone()]
    expected = seg.predict(array).mask
    for item in inputs:
        pred = seg.predict(item)
        if item is chw_float:  # resized as float, not as uint8: rounding apart, nearly equal
            assert float((pred.mask == expected).float().mean()) > 0.98
        else:
            assert torch.equal(pred.mask, expected), type(item)
        assert pred.image is not None
        assert pred.image.size == (45, 37)
    for item, kept in zip(inputs, copies, strict=True):
        if isinstance(item, np.ndarray):
            np.testing.assert_array_equal(item, kept)
    assert torch.equal(chw_uint8, tensor_copies[0])
    assert torch.equal(chw_float, tensor_copies[1])
    readonly = np.asarray(Image.fromarray(array))  # read-only view of PIL memory
    assert not readonly.flags.writeable
    assert torch.equal(seg.predict(readonly).mask, expected)
    gray = rng.integers(0, 256, size=(20, 25), dtype=np.uint8)
    g1 = seg.predict(gray).mask
    assert torch.equal(g1, seg.predict(np.repeat(gray[:, :, None], 3, axis=2)).mask)
    assert torch.equal(g1, seg.predict(gray[:, :, None]).mask)
    assert torch.equal(g1, seg.predict(Image.fromarray(gray)).mask)


def test_predict_batch_equals_predict_for_mixed_sizes() -> None:
    model = trained_tiny()
    images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate([(30, 40), (41, 17), (30, 40)])]
    images.append(smooth_image(64, 64, seed=9))
    for image_size in (None, (32, 32)):
        seg = Segmenter(
            model,
            classes=CLASSES,
            image_size=image_size,
            **REF,
            batch_size=3,
        )
        batch = seg.predict_batch(iter(images), return_probabilities=True)
        assert [p.size for p in batch] == [(30, 40), (41, 17), (30, 40), (64, 64)]
        for image, pred in zip(images, batch, strict=True):
            single = seg.predict(image, return_probabilities=True)
            assert torch.equal(pred.mask, single.mask)
            assert single.probabilities is not None
            assert pred.probabilities is not None
            torch.testing.assert_close(pred.probabilities, single.probabilities, atol=1e-5, rtol=0)
    assert Segmenter(model, classes=CLASSES).predict_batch([]) == []


def test_real_photos_keep_their_original_size(cats_voc: Path, tmp_path: Path) -> None:
    seg = Segmenter(normed(trained_tiny()), classes=CLASSES, image_size=(64, 64))
    paths = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[::60][:4]
    preds = seg.predict_batch(paths)  # the files are read side by side, in threads
    for path, pred in zip(paths, preds, strict=True):
        width, height = open_image(path).size
        assert pred.size == (height, width)
        assert torch.equal(pred.mask, seg.predict(path).mask)
        assert pred.overlay().size == (width, height)
        saved = pred.save(tmp_path / f"{path.stem}.png")
        np.testing.assert_array_equal(read_mask(saved), pred.mask.numpy())


def test_a_broken_file_in_a_batch_is_named(cats_voc: Path, tmp_path: Path) -> None:
    seg = Segmenter(normed(trained_tiny()), classes=CLASSES, image_size=(64, 64))
    photo = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"broken\.jpg is truncated or corrupt"):
        seg.predict_batch([photo, broken, photo, photo])


def test_prediction_visuals_are_pixel_exact(tmp_path: Path) -> None:
    photo = Image.fromarray(np.array([[[100, 200, 50], [10, 20, 30]]], dtype=np.uint8))
    mask = torch.tensor([[1, 0]], dtype=torch.uint8)
    pred = Prediction(mask=mask, probabilities=None, classes=CLASSES, image=photo)
    # Two classes -> the tutorial's black/green palette; out = floor(0.7*img + 0.3*colour + .5)
    assert np.asarray(pred.overlay(alpha=0.3)).tolist() == [[[70, 178, 35], [7, 14, 21]]]
    assert np.asarray(pred.overlay(alpha=0.3, palette=[0, 0, 0, 0, 128, 0])).tolist() == [
        [[70, 178, 35], [7, 14, 21]]
    ]
    colour = pred.colorize()
    assert colour.mode == "P"
    assert np.asarray(colour.convert("RGB")).tolist() == [[[0, 128, 0], [0, 0, 0]]]
    out = pred.save(tmp_path / "m.png")
    with Image.open(out) as reread:
        assert reread.mode == "P"
        palette = reread.getpalette()
        assert palette is not None
        assert palette[:6] == [0, 0, 0, 0, 128, 0]
    np.testing.assert_array_equal(read_mask(out), mask.numpy())
    with pytest.raises(ConfigError, match=r"use a '\.png' file name"):
        pred.save(tmp_path / "m.jpg")
    voc = Prediction(
        mask=torch.tensor([[1]], dtype=torch.uint8),
        probabilities=None,
        classes=["a", "b", "c"],
        image=None,
    )
    assert voc.colorize().convert("RGB").getpixel((0, 0)) == (128, 0, 0)
    with pytest.raises(ConfigError, match="no RGB or grayscale image"):
        voc.overlay()


def test_bad_inputs_get_clear_errors(tmp_path: Path) -> None:
    seg = Segmenter(tiny(), classes=CLASSES)
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(MissingFileError, match=r"missing\.jpg"):
        seg.predict(tmp_path / "missing.jpg")
    with pytest.raises(DataError, match=r"notes\.jpg"):
        seg.predict(tmp_path / "notes.jpg")
    with pytest.raises(ShapeError, match=r"empty: 0x5 pixels"):
        seg.predict(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"empty: 4x0 pixels"):
        seg.predict(torch.zeros(3, 4, 0))
    with pytest.raises(ShapeError, match="has 2 channels but the model takes 3"):
        seg.predict(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ShapeError, match="has 5 channels but the model takes 3"):
        seg.predict(torch.zeros(5, 4, 4))
    with pytest.raises(ShapeError, match=r"got \(1, 3, 4, 4\); use predict_batch"):
        seg.predict(torch.zeros(1, 3, 4, 4))
    with pytest.raises(DTypeError, match=r"must be uint8 .* got dtype float64"):
        seg.predict(np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match=r"values in \[0, 1\], got 0\.\.255"):
        seg.predict(torch.full((3, 4, 4), 255.0).index_fill_(1, torch.tensor([0]), 0.0))
    with pytest.raises(NonFiniteError, match="image tensor contains NaN"):
        seg.predict(torch.full((3, 4, 4), float("nan")))
    with pytest.raises(DTypeError, match="got int"):
        seg.predict(3)  # type: ignore[arg-type]


class NaNModel(nn.Module):
    in_channels = 3
    num_classes = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * float("nan")


def test_non_finite_model_output() -> None:
    seg = Segmenter(NaNModel(), classes=CLASSES, precision="bf16")
    with pytest.raises(NonFiniteError, match=r"NaN or infinite logits; try precision='fp32'"):
        seg.predict(torch.rand(3, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ["bg", "cat", "dog"]}, r"classes has 3 names but a binary \(1-logit\) model"),
        ({"classes": ["cat"]}, "classes has 1 names but a binary"),
        ({"classes": ["cat", "cat"]}, "classes must be distinct, got 'cat' twice"),
        ({"classes": "cat"}, "classes must be a list of class names, got 'cat'"),
        ({"mode": "multi"}, "mode must be one of"),
        ({"mode": "multiclass"}, "mode 'multiclass' needs >= 2 logits, but num_classes is 1"),
        ({"threshold": 1.0}, r"threshold must be a finite number in \(0\.0, 1\.0\), got 1\.0"),
        ({"threshold": float("nan")}, r"threshold must be a finite number in .*, got nan"),
        ({"threshold": (0.5, 0.5)}, "threshold holds 2 values"),
        ({"tile": (64, 64)}, r"0 <= overlap < size, got \(64, 64\)"),
        ({"tile": 512}, r"tile must be None or \(size, overlap\): two ints .*, got 512"),
        ({"tile": (64.5, 8)}, r"tile must be None or \(size, overlap\).*, got \(64\.5, 8\)"),
        (
            {"tile": (64, float("inf"))},
            r"tile must be None or \(size, overlap\).*, got \(64, inf\)",
        ),
        (
            {"image_size": (0, 5)},
            r"image_size must be an int or \(height, width\) of positive ints",
        ),
        ({"image_size": (32.5, 32)}, r"image_size must be an int or \(height, width\)"),
        ({"tta": "no"}, "tta must be True or False, got 'no'"),
        ({"tta": 1}, "tta must be True or False, got 1"),
        ({"fuse": "yes"}, "fuse must be True or False, got 'yes'"),
        ({"channels_last": None}, "channels_last must be True or False, got None"),
        ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive int, got 2.5"),
        ({"batch_size": True}, "batch_size must be a positive int, got True"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"device": "tpu:9"}, "device must be"),
        ({"device": 3}, "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got 3"),
        ({"postprocess": 3}, "postprocess must be None or a callable, got int"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"classes": CLASSES, **kwargs}
    with pytest.raises(ConfigError, match=message):
        Segmenter(tiny(), **args)


def test_facts_come_from_the_record_and_keywords_replace_them(tmp_path: Path) -> None:
    model = normed(trained_tiny()).describe(classes=["bg", "fg"], image_size=32, threshold=0.4)
    seg = Segmenter(model, precision="fp32", tta=True, batch_size=2)
    assert (seg.classes, seg.image_size, seg.threshold, seg.mean) == (
        ["bg", "fg"],
        (32, 32),
        0.4,
        MEAN,
    )
    assert (seg.mode, seg.config.classes) == ("binary", ("bg", "fg"))
    mine = Segmenter(model, classes=CLASSES, image_size=(40, 40), threshold=0.7, precision="fp32")
    assert (mine.classes, mine.image_size, mine.threshold, mine.std) == (
        CLASSES,
        (40, 40),
        0.7,
        STD,
    )
    assert model.config.classes == ("bg", "fg")  # the caller's model keeps its record
    assert mine.model is not None
    assert mine.model.config == mine.config  # the Segmenter's copy carries the resolved one
    # a checkpoint gives the same facts; keywords replace them the same way
    ckpt = save_checkpoint(tmp_path / "c.pt", model)
    image = smooth_image(45, 61)
    from_file = Segmenter.from_checkpoint(ckpt, precision="fp32", tta=True, batch_size=2)
    assert (from_file.classes, from_file.image_size, from_file.threshold) == (
        ["bg", "fg"],
        (32, 32),
        0.4,
    )
    assert torch.equal(from_file.predict(image).mask, seg.predict(image).mask)
    again = Segmenter.from_checkpoint(ckpt, classes=CLASSES, image_size=(40, 40), threshold=0.7)
    assert (again.classes, again.image_size, again.threshold) == (CLASSES, (40, 40), 0.7)
    # a plain module without a record: identity normalisation, default names
    plain = Segmenter(Pointwise(3), **REF)
    assert (plain.classes, plain.mean, plain.std) == (
        ["class_0", "class_1", "class_2"],
        (0.0,) * 3,
        (1.0,) * 3,
    )


def test_batch_size_and_the_plain_path_warn_nothing() -> None:
    image = smooth_image(33, 47)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = Segmenter(trained_tiny(), classes=CLASSES, batch_size=4, **REF)
        mask = old.predict(image).mask
    new = Segmenter(trained_tiny(), classes=CLASSES, **REF)
    assert torch.equal(mask, new.predict(image).mask)


def test_model_must_be_a_module_or_an_onnx_runner() -> None:
    with pytest.raises(ConfigError, match=r"model must be a torch\.nn\.Module or .*got str"):
        Segmenter("model.pt", classes=CLASSES)  # type: ignore[arg-type]


@pytest.mark.parametrize(("tile", "hint"), [((2, 0), r"tile=\(4, 0\)"), ((3, 2), r"tile=\(4, 2\)")])
def test_tiles_smaller_than_the_stride_are_refused_with_the_nearest_size(
    tile: tuple[int, int], hint: str
) -> None:
    # Before: tiles of 2 pixels advanced by the stride (4) and left gaps; the blend
    # divided 0 by 0 there and the mask came from NaN probabilities.
    with pytest.raises(ConfigError, match=rf"tile size {tile[0]} is smaller than the model's "
                       rf"stride 4.*{hint}"):  # fmt: skip
        Segmenter(tiny(), classes=CLASSES, tile=tile)


_FRESH_PROCESS = textwrap.dedent(
    """
    import sys, torch
    from catseg.predict import Segmenter
    seg = Segmenter.from_checkpoint(sys.argv[1], precision="fp32")
    preds = seg.predict_batch([sys.argv[2], sys.argv[3]])
    torch.save([p.mask for p in preds], sys.argv[4])
    """
)


@pytest.mark.slow
def test_checkpoint_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    model = trained_tiny(steps=2)  # the "train 2 steps"
    ckpt = save_checkpoint(
        tmp_path / "cat.pt", normed(model).describe(classes=CLASSES, image_size=(48, 48))
    )
    photos = []
    for i, size in enumerate([(70, 90), (51, 33)]):
        arr = (smooth_image(*size, seed=i).permute(1, 2, 0) * 255).round().to(torch.uint8)
        Image.fromarray(arr.numpy()).save(tmp_path / f"p{i}.png")
        photos.append(tmp_path / f"p{i}.png")
    subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(ckpt), *map(str, photos), str(tmp_path / "m")],
        check=True,
        timeout=120,
    )
    fresh = torch.load(tmp_path / "m", weights_only=True)
    here = Segmenter(model, precision="fp32")
    loaded = Segmenter.from_checkpoint(ckpt, precision="fp32")
    assert loaded.classes == CLASSES
    assert loaded.image_size == (48, 48)
    assert loaded.mean == pytest.approx(MEAN)
    for photo, mask in zip(photos, fresh, strict=True):
        assert torch.equal(mask, here.predict(photo).mask)
        assert torch.equal(mask, loaded.predict(photo).mask)


def _pointwise_onnx(path: Path, weight: torch.Tensor, metadata: dict[str, Any]) -> Path:
    """A hand-built ONNX file: one 1x1 convolution, 3 channels -> 1 logit, dynamic size."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["logits"])],
        "pointwise",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[numpy_helper.from_array(weight.numpy(), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.save(model, path)
    return path


@pytest.mark.slow
def test_from_onnx_runs_the_same_pipeline(tmp_path: Path) -> None:
    torch_model = Pointwise(1)
    assert torch_model.conv.bias is not None
    torch.nn.init.zeros_(torch_model.conv.bias)
    weight = torch_model.conv.weight.detach() * 5  # Pointwise scales its logits by 5
    bare = _pointwise_onnx(tmp_path / "bare.onnx", weight, {})
    assert Segmenter.from_onnx(bare).classes == ["_background_", "foreground"]
    image = smooth_image(45, 70)
    options: dict[str, Any] = {"tta": True, "image_size": (32, 48)}
    torch_seg = Segmenter(torch_model, classes=CLASSES, **options, **REF)
    onnx_seg = Segmenter.from_onnx(bare, classes=CLASSES, **options)
    assert onnx_seg.model is None
    p_torch = torch_seg.predict(image, return_probabilities=True).probabilities
    p_onnx = onnx_seg.predict(image, return_probabilities=True).probabilities
    assert p_torch is not None
    assert p_onnx is not None
    torch.testing.assert_close(p_onnx, p_torch, atol=1e-5, rtol=0)
    # The record written by to_onnx fills in classes, size, normalisation, threshold.
    record = UNetConfig(classes=CLASSES, image_size=40, threshold=0.4)
    record = dataclasses.replace(record, preprocessing=Preprocessing(MEAN, STD))
    meta = {"model_config": record.to_dict()}
    loaded = Segmenter.from_onnx(_pointwise_onnx(tmp_path / "seg.onnx", weight, meta))
    assert (loaded.classes, loaded.image_size, loaded.threshold) == (CLASSES, (40, 40), 0.4)
    assert loaded.mean == pytest.approx(MEAN)
    assert loaded.std == pytest.approx(STD)


def test_grayscale_model_and_models_without_attributes() -> None:
    gray_model = UNet(1, 1, init_features=4, depth=2)
    seg = Segmenter(gray_model.describe(mean=(0.5,), std=(0.25,)), classes=CLASSES, **REF)
    rgb = Image.fromarray(np.full((9, 11, 3), 128, np.uint8))
    assert seg.predict(rgb).size == (9, 11)  # PIL images are converted to grayscale
    assert seg.predict(torch.rand(1, 9, 11)).size == (9, 11)
    with pytest.raises(ShapeError, match="has 3 channels but the model takes 1"):
        seg.predict(np.zeros((9, 11, 3), np.uint8))
    # A plain module: the class count is checked against its first output.
    plain = nn.Conv2d(3, 2, 1)
    with pytest.raises(ConfigError, match=r"2 output channel\(s\): classes has 3 names but"):
        Segmenter(plain, classes=["a", "b", "c"], **REF).predict(torch.rand(3, 4, 4))
    pred = Segmenter(plain, classes=["a", "b"], **REF).predict(torch.rand(3, 4, 4))
    assert pred.size == (4, 4)


def test_overlay_image_is_made_on_first_use_from_a_copy() -> None:
    """Arrays and tensors: the PIL image is built lazily (half the GPU end-to-end time
    went into building it eagerly), from the Segmenter's own copy of the pixels."""
    photo = np.zeros((6, 8, 3), np.uint8)
    photo[:, 4:] = 200
    pred = Segmenter(tiny(), classes=CLASSES, **REF).predict(photo)
    assert pred.__dict__["_image"] is None  # not built yet
    photo[:] = 7  # the caller reuses the array afterwards
    assert pred.image is not None
    np.testing.assert_array_equal(np.asarray(pred.image)[:, :4], 0)
    np.testing.assert_array_equal(np.asarray(pred.image)[:, 4:], 200)
    assert pred.image is pred.image  # made once
    assert pred.overlay(alpha=0.0).getpixel((5, 0)) == (200, 200, 200)
