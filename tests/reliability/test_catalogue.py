"""The bad-input catalogue: what users feed catseg, and what catseg answers (issue #9).

One parametrised case per row. Each row either

* returns the documented result, checked against values worked out by hand; or
* raises an exception of catseg's tree (:class:`catseg.errors.CatsegError`) of the
  listed class, whose message names the file, value or shape (``match=``).

A bare torch/PIL traceback fails a row (``pytest.raises`` of a catseg class does not
catch it), and so does a silent wrong answer (the check compares values).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
    png_header_only,
    random_sample,
    run_row,
    save_palette_mask,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
    write_dist,
    write_labelme,
    write_voc,
)

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.data import VOCSegmentationDataset, labelme_to_voc, open_image, read_labelme, read_mask
from catseg.data import transforms as tfm
from catseg.errors import (
    CheckpointError,
    DataError,
    DTypeError,
    EncoderError,
    LabelmeError,
    MissingFileError,
    NonFiniteError,
    ShapeError,
)
from catseg.losses import DiceLoss, soft_dice
from catseg.metrics import MeanIoU, mean_iou
from catseg.models import Registry, UNet
from catseg.models.encoders import ClassicEncoder
from catseg.models.encoders import registry as encoder_registry
from catseg.predict import Segmenter
from catseg.visualize import overlay

LABELS = ["__ignore__", "_background_", "cat"]
CLASSES = ["_background_", "cat"]


@dataclass(frozen=True)
class Ctx:
    """What a row may use: its own temporary folder and a monkeypatch (for sys.path)."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch


def tiny(in_channels: int = 3, num_classes: int = 1) -> UNet:
    torch.manual_seed(0)
    return UNet(in_channels, num_classes, init_features=4, depth=2).eval()


def segmenter(model: torch.nn.Module | None = None, **options: Any) -> Segmenter:
    return Segmenter(model or tiny(), classes=CLASSES, precision="fp32", **options)


class ConstantLogits(torch.nn.Module):
    """A 'model' whose every logit is ``value`` (NaN/inf rows)."""

    in_channels = 3
    num_classes = 1

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], self.value)


class CodeRunningPayload:
    """Unpickling this with a full (unsafe) loader would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


# ---------------------------------------------------------------------------- data rows
def _zero_byte(ctx: Ctx) -> Any:
    (ctx.tmp / "photo.png").write_bytes(b"")
    return open_image(ctx.tmp / "photo.png")


def _truncated_jpeg(ctx: Ctx) -> Any:
    Image.fromarray(random_sample(64, 64, 0)[0]).save(ctx.tmp / "full.jpg", quality=90)
    (ctx.tmp / "half.jpg").write_bytes((ctx.tmp / "full.jpg").read_bytes()[:400])
    return open_image(ctx.tmp / "half.jpg")


def _truncated_png_mask(ctx: Ctx) -> Any:
    save_palette_mask(random_sample(32, 32, 1)[1], ctx.tmp / "full.png")
    data = (ctx.tmp / "full.png").read_bytes()
    (ctx.tmp / "cut_mask.png").write_bytes(data[: len(data) // 2])
    return read_mask(ctx.tmp / "cut_mask.png")


def _text_as_jpeg(ctx: Ctx) -> Any:
    (ctx.tmp / "notes.jpg").write_text("this is not a photo\n", encoding="utf-8")
    return open_image(ctx.tmp / "notes.jpg")


def _corrupt_file_in_dataset(ctx: Ctx) -> Any:
    root = write_voc(ctx.tmp / "voc", {f"img{i}": random_sample(5, 6, i) for i in range(3)})
    (root / "JPEGImages" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dataset = VOCSegmentationDataset(root)
    return [dataset[i] for i in range(len(dataset))]


def _mask_smaller_than_image(ctx: Ctx) -> Any:
    image, mask = random_sample(12, 10, 2)
    root = write_voc(ctx.tmp / "voc", {"small": (image, mask[:6, :5])})
    return VOCSegmentationDataset(root, image_size=8)[0]


def _jpeg_masks(ctx: Ctx) -> Any:
    # Masks saved as JPEG (lossy: class ids get smeared) are not masks; no pair matches.
    root = ctx.tmp / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(root / "JPEGImages" / f"cat{i}.jpg")
        Image.new("L", (8, 8)).save(root / "SegmentationClass" / f"cat{i}.jpg")
    return VOCSegmentationDataset(root)


def _rgb_mask(colours: list[tuple[int, int, int]]) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        rgb = np.zeros((2, 3, 3), np.uint8)  # black = background
        for i, colour in enumerate(colours):
            rgb[i // 3, i % 3] = colour
        Image.fromarray(rgb).save(ctx.tmp / "coloured_mask.png")
        return read_mask(ctx.tmp / "coloured_mask.png").tolist()

    return call


def _sixteen_bit_image(ctx: Ctx) -> Any:
    values = np.array([[0, 65535, 257], [1000, 32896, 128]], dtype=np.uint16)
    Image.fromarray(values).save(ctx.tmp / "depth16.png")
    with Image.open(ctx.tmp / "depth16.png") as stored:
        assert stored.mode.startswith("I")
    return np.array(open_image(ctx.tmp / "depth16.png"))


def _check_sixteen_bit(result: Any) -> None:
    expected = np.array([[0, 255, 1], [4, 128, 0]], dtype=np.uint8)  # round(v / 257)
    assert result.shape == (2, 3, 3)
    assert np.array_equal(result, np.repeat(expected[..., None], 3, axis=2))


def _sixteen_bit_mask(ctx: Ctx) -> Any:
    Image.fromarray(np.array([[0, 1], [2, 300]], dtype=np.uint16)).save(ctx.tmp / "ids16.png")
    return read_mask(ctx.tmp / "ids16.png")


def _cmyk_jpeg(ctx: Ctx) -> Any:
    cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.paste((255, 0, 255, 0), (8, 0, 16, 8))  # right half: pure green
    cmyk.save(ctx.tmp / "print.jpg", quality=95)
    with Image.open(ctx.tmp / "print.jpg") as stored:
        assert stored.mode == "CMYK"
    return np.array(open_image(ctx.tmp / "print.jpg")).astype(int)


def _check_cmyk(result: Any) -> None:
    assert result.shape == (8, 16, 3)
    assert np.abs(result[4, 2] - [255, 0, 0]).max() <= 12
    assert np.abs(result[4, 13] - [0, 255, 0]).max() <= 12


def _phone_photo(ctx: Ctx) -> Path:
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = (255, 0, 0)  # left half red
    stored[:, 8:] = (0, 0, 255)  # right half blue
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6  # the camera was turned: display rotated 90° clockwise
    image.save(ctx.tmp / "IMG_0001.jpg", exif=exif, quality=95)
    return ctx.tmp / "IMG_0001.jpg"


def _check_upright(result: Any) -> None:
    pixels = np.array(result).astype(int)
    assert pixels.shape == (16, 8, 3)  # upright: 8 wide, 16 tall
    assert np.abs(pixels[3, 4] - [255, 0, 0]).max() <= 40  # stored left -> displayed top
    assert np.abs(pixels[12, 4] - [0, 0, 255]).max() <= 40


def _rgba_png(ctx: Ctx) -> Any:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [1, 2, 3]]]
    rgba[..., 3] = [[0, 255], [128, 7]]  # alpha is dropped, colours kept as stored
    Image.fromarray(rgba, "RGBA").save(ctx.tmp / "screenshot.png")
    return np.array(open_image(ctx.tmp / "screenshot.png")).tolist()


def _tiny_dataset(height: int, width: int) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        image, mask = random_sample(height, width, 3)
        root = write_voc(ctx.tmp / "voc", {"tiny": (image, mask)})
        got_image, got_mask = VOCSegmentationDataset(root)[0]
        expected = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        assert torch.equal(got_image, expected)
        assert torch.equal(got_mask, torch.from_numpy(mask).long())
        return tuple(got_image.shape), tuple(got_mask.shape)

    return call


def _unicode_dataset(ctx: Ctx) -> Any:
    image, mask = random_sample(5, 7, 4)
    root = write_voc(ctx.tmp / "données chats" / "été 2024", {"猫 photo 1": (image, mask)})
    dataset = VOCSegmentationDataset(root)
    got_image, got_mask = dataset[0]
    assert torch.equal(got_mask, torch.from_numpy(mask).long())
    assert torch.equal((got_image * 255).round().byte().permute(1, 2, 0), torch.from_numpy(image))
    return dataset.ids


def _labelme_round_trip_with_spaces(ctx: Ctx) -> Any:
    source = ctx.tmp / "mes annotations"
    for stem in ("my cat 1", "chat été", "plain"):
        path = write_labelme(
            source, [{"label": "cat", "points": [[0, 0], [1, 1]], "shape_type": "rectangle"}]
        )
        path.rename(source / f"{stem}.json")
    out = labelme_to_voc(source, ctx.tmp / "voc été", LABELS, val_fraction=0.0)
    dataset = VOCSegmentationDataset(out, "trainval")
    assert all(int(dataset[i][1].sum()) == 4 for i in range(len(dataset)))
    return dataset.ids


def _unicode_missing(ctx: Ctx) -> Any:
    return open_image(ctx.tmp / "données chats" / "猫 absent.jpg")


def _bomb(width: int, height: int) -> Callable[[Ctx], Any]:
    # Header-only PNGs: nothing big is allocated, and no global limit is lowered.
    def call(ctx: Ctx) -> Any:
        return open_image(png_header_only(ctx.tmp / "bomb.png", width, height))

    return call


def _bomb_in_predict(ctx: Ctx) -> Any:
    return segmenter().predict(png_header_only(ctx.tmp / "huge.png", 12_000, 10_000))


def _float_tiff(ctx: Ctx) -> Any:
    # A 32-bit float image in [0, 1] (microscopy, remote sensing): Pillow's own RGB
    # conversion would clip it to black, a silent wrong answer.
    Image.fromarray(np.full((3, 4), 0.5, np.float32)).save(ctx.tmp / "scan.tif")
    return open_image(ctx.tmp / "scan.tif")


def _float_pil_in_predict(ctx: Ctx) -> Any:
    return segmenter().predict(Image.new("F", (4, 3), 0.75))


# ------------------------------------------------------------------------- labelme rows
def _labelme(shapes: list[dict[str, Any]], **fields: Any) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        path = write_labelme(ctx.tmp / "annotations", shapes, **fields)
        return read_labelme(path, LABELS)[1].tolist()

    return call


def _labelme_with_bom(ctx: Ctx) -> Any:
    # Saved by a Windows editor: UTF-8 with a byte-order mark, labels.txt too.
    path = write_labelme(
        ctx.tmp / "annotations",
        [{"label": "cat", "points": [[1, 1], [3, 2]], "shape_type": "rectangle"}],
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    labels = ctx.tmp / "labels.txt"
    labels.write_bytes("\ufeff__ignore__\n_background_\ncat\n".encode())
    return read_labelme(path, labels)[1][:4, :5].tolist()


def _labelme_bomb(ctx: Ctx) -> Any:
    # A decompression bomb inlined as base64 imageData (used to escape as a bare PIL error).
    raw = png_header_only(ctx.tmp / "bomb.png", 50_000, 50_000).read_bytes()
    path = write_labelme(ctx.tmp / "annotations", [], imageData=base64.b64encode(raw).decode())
    return read_labelme(path, LABELS)


def _labelme_mask_shape_bomb(ctx: Ctx) -> Any:
    raw = png_header_only(ctx.tmp / "bomb.png", 50_000, 50_000).read_bytes()
    shape = {
        "label": "cat",
        "shape_type": "mask",
        "points": [[0, 0], [3, 3]],
        "mask": base64.b64encode(raw).decode(),
    }
    return read_labelme(write_labelme(ctx.tmp / "annotations", [shape]), LABELS)


OUTSIDE = [[5, 3], [100, 3], [100, 100], [5, 100]]  # a quarter reaches far past the image
OUTSIDE_MASK = [[0] * 8] * 3 + [[0, 0, 0, 0, 0, 1, 1, 1]] * 3


# ------------------------------------------------------------------------ transforms
def _rotate_int8_mask(ctx: Ctx) -> Any:
    # 255 ("ignore") does not fit an int8 mask: it used to wrap silently to -1.
    mask = torch.zeros(5, 6, dtype=torch.int8)
    return tfm.RandomRotation(30.0, seed=0)(torch.rand(3, 5, 6), mask)


def _pad_empty_image(ctx: Ctx) -> Any:
    return tfm.Resize(4)(torch.rand(3, 0, 6), torch.zeros(0, 6, dtype=torch.int64))


# ------------------------------------------------------------------- loss / metric rows
def _loss_label_too_big(ctx: Ctx) -> Any:
    target = torch.tensor([[[0, 1], [2, 3]]])
    return DiceLoss(mode="multiclass")(torch.zeros(1, 3, 2, 2), target)


def _metric_label_too_big(ctx: Ctx) -> Any:
    target = torch.tensor([[[0, 1], [5, 255]]])
    return mean_iou(torch.zeros(1, 3, 2, 2), target, 3)


def _void_255_in_loss(ctx: Ctx) -> Any:
    logits = torch.randn(2, 3, 4, 6)
    target = torch.randint(0, 3, (2, 4, 6))
    target[..., 4:] = 255  # the VOC border / labelme __ignore__
    loss = DiceLoss(mode="multiclass", smooth=0.0)
    return float(loss(logits, target)), float(loss(logits[..., :4], target[..., :4]))


def _check_pair_equal(result: Any) -> None:
    whole, cropped = result
    assert whole == pytest.approx(cropped, abs=1e-6)


def _void_255_in_metric(ctx: Ctx) -> Any:
    preds = torch.tensor([[[1, 1, 0, 1]]])
    target = torch.tensor([[[1, 0, 0, 255]]])  # the last pixel is void
    return mean_iou(preds, target, 2).miou


def _metric_nan(ctx: Ctx) -> Any:
    logits = torch.zeros(2, 3, 4, 5)
    logits[1, 2, 3, 4] = float("nan")
    return mean_iou(logits, torch.zeros(2, 4, 5, dtype=torch.long), 3)


def _metric_inf(ctx: Ctx) -> Any:
    # +inf / -inf are extreme but valid scores: sigmoid(+inf) = 1 > 0.5, sigmoid(-inf) = 0.
    logits = torch.tensor([[[[float("inf"), float("-inf"), float("inf"), 0.3]]]])
    target = torch.tensor([[[1, 1, 0, 1]]])
    metric = MeanIoU(2)
    metric.update(logits, target)
    return metric.compute().miou  # pred {0, 2, 3} vs target {0, 1, 3}: 2 / 4


def _float_target_rescaled(ctx: Ctx) -> Any:
    # The tutorial's ToTensor() on a 0/1 mask: foreground became 1/255.
    target = torch.tensor([[[[0.0, 1 / 255], [1 / 255, 0.0]]]])
    return soft_dice(torch.zeros(1, 1, 2, 2), target)


def _logits_as_probabilities(ctx: Ctx) -> Any:
    logits = torch.tensor([[[[-2.0, 0.3], [1.5, -0.1]]]])
    return soft_dice(logits, torch.tensor([[[0, 1], [1, 0]]]), from_logits=False)


def _metric_logits_as_probabilities(ctx: Ctx) -> Any:
    logits = torch.tensor([[[[-2.0, 0.3], [1.5, -0.1]]]])
    return mean_iou(logits, torch.tensor([[[0, 1], [1, 0]]]), 2, from_logits=False)


def _metric_float_target(ctx: Ctx) -> Any:
    return mean_iou(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), 2)


def _loss_uint8_input(ctx: Ctx) -> Any:
    images = torch.randint(0, 256, (1, 1, 3, 3), dtype=torch.uint8)
    return DiceLoss()(images, torch.zeros(1, 3, 3, dtype=torch.long))


def _loss_float64_input(ctx: Ctx) -> Any:
    logits = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    target = torch.randint(0, 2, (2, 3, 4))
    double = DiceLoss()(logits, target)
    single = DiceLoss()(logits.float(), target)
    assert double.dtype == torch.float64  # documented: computed in float64 for float64 input
    return float(double), float(single)


def _loss_shape_mismatch(ctx: Ctx) -> Any:
    return DiceLoss()(torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 7, dtype=torch.long))


def _metric_uint8_target(ctx: Ctx) -> Any:
    preds = torch.tensor([[[0, 1, 1, 1]]])
    target = torch.tensor([[[0, 1, 0, 1]]])
    return mean_iou(preds, target.to(torch.uint8), 2).miou, mean_iou(preds, target, 2).miou


# --------------------------------------------------------------------------- model rows
def _model_forward(shape: tuple[int, ...], dtype: torch.dtype) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        x = torch.rand(shape).to(dtype)
        with torch.no_grad():
            return tuple(tiny()(x).shape)

    return call


def _tiny_input(norm: str, train: bool) -> Callable[[Ctx], Any]:
    # The deepest level of a 1x1 input is a single pixel: Group/InstanceNorm (and
    # BatchNorm in training on a batch of one) cannot normalise one value.
    def call(ctx: Ctx) -> Any:
        torch.manual_seed(0)
        model = UNet(3, 2, init_features=4, depth=2, norm=norm)  # type: ignore[arg-type]
        model.train(train)
        out = model(torch.rand(1, 3, 1, 1))
        assert bool(torch.isfinite(out).all())
        return tuple(out.shape)

    return call


def _unknown_encoder(ctx: Ctx) -> Any:
    return UNet(encoder="resnet19")


PLUGIN_MODULE = "catseg_plugin_reliability_broken"


def _broken_plugin(ctx: Ctx) -> Any:
    site = ctx.tmp / "site"
    write_dist(
        site,
        "catseg-reliability-broken",
        {"broken_rel": f"{PLUGIN_MODULE}:factory"},
        {PLUGIN_MODULE: "raise ImportError('needs libfoo.so')\n"},
        version="1.2",
    )
    ctx.monkeypatch.syspath_prepend(str(site))
    fresh = Registry()  # the process-wide one read the entry points before this dist existed
    fresh.register("unet")(ClassicEncoder)
    ctx.monkeypatch.setattr(encoder_registry, "_REGISTRY", fresh)
    UNet(encoder="unet", init_features=4, depth=2)  # other encoders are unaffected
    return UNet(encoder="broken_rel")


def _forget_plugin(ctx: Ctx) -> None:
    sys.modules.pop(PLUGIN_MODULE, None)


# ----------------------------------------------------------------------- predictor rows
def _predict(make_input: Callable[[Ctx], Any], **options: Any) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        return segmenter(**options).predict(make_input(ctx))

    return call


def _mask_shape(expected: tuple[int, int]) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert tuple(result.mask.shape) == expected
        assert result.mask.dtype == torch.uint8
        assert set(torch.unique(result.mask).tolist()) <= {0, 1}

    return check


def _empty_upload(ctx: Ctx) -> Path:
    (ctx.tmp / "upload.jpg").write_bytes(b"")
    return ctx.tmp / "upload.jpg"


def _unicode_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (5, 4), (90, 30, 200)).save(path)
    return path


def _predict_rgba_equals_rgb(ctx: Ctx) -> Any:
    rgb = np.random.default_rng(5).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((9, 11, 1), 17, np.uint8)], axis=2)
    seg = segmenter()
    return seg.predict(rgba).mask, seg.predict(rgb).mask


def _check_masks_equal(result: Any) -> None:
    first, second = result
    assert torch.equal(first, second)


def _predict_float64_tensor(ctx: Ctx) -> Any:
    image = torch.rand(3, 10, 12, dtype=torch.float64)
    seg = segmenter(tiny().describe(mean=(0.5,) * 3, std=(0.25,) * 3))
    first = seg.predict(image, return_probabilities=True).probabilities
    second = seg.predict(image.float(), return_probabilities=True).probabilities
    assert first is not None
    assert second is not None
    return first, second


def _check_close(result: Any) -> None:
    first, second = result
    torch.testing.assert_close(first, second, atol=1e-5, rtol=0)


def _check_tiled(result: Any) -> None:
    # Tile borders see zero padding where the whole image sees neighbours: close, not equal.
    first, second = result
    torch.testing.assert_close(first, second, atol=2e-3, rtol=0)


def _big_photo(ctx: Ctx) -> Path:
    pixels = np.zeros((3000, 4000, 3), np.uint8)
    pixels[:, 2000:] = 200
    Image.fromarray(pixels).save(ctx.tmp / "DSC_4000x3000.jpg", quality=70)
    return ctx.tmp / "DSC_4000x3000.jpg"


def _big_tiled(ctx: Ctx) -> Any:
    # A 4000x3000 grey array, tiled inference of a 1-channel model at a reduced size,
    # compared with untiled inference of the same input.
    pixels = np.zeros((3000, 4000), np.uint8)
    pixels[:, 2000:] = 200
    model = tiny(in_channels=1)
    tiled = Segmenter(
        model, classes=CLASSES, precision="fp32", image_size=(150, 200), tile=(64, 16)
    )
    whole = Segmenter(model, classes=CLASSES, precision="fp32", image_size=(150, 200))
    first = tiled.predict(pixels, return_probabilities=True)
    second = whole.predict(pixels, return_probabilities=True)
    assert first.probabilities is not None
    assert second.probabilities is not None
    assert tuple(first.mask.shape) == (3000, 4000)
    return first.probabilities[:, ::50, ::50], second.probabilities[:, ::50, ::50]


# ---------------------------------------------------------------------- checkpoint rows
def _pickle_runs_code(ctx: Ctx) -> Any:
    good = save_checkpoint(ctx.tmp / "good.pt", tiny())
    payload = torch.load(good, weights_only=True)
    payload["extra"] = {"note": CodeRunningPayload(ctx.tmp / "PWNED")}
    torch.save(payload, ctx.tmp / "downloaded.pt")
    return Segmenter.from_checkpoint(ctx.tmp / "downloaded.pt")


def _marker_absent(ctx: Ctx) -> None:
    assert not (ctx.tmp / "PWNED").exists()


def _other_config(ctx: Ctx) -> Any:
    # Weights of a 4-wide model in a file whose config says 8 wide (e.g. two runs' files
    # mixed up by hand): rebuilding refuses, naming a mismatched tensor and both shapes.
    small = save_checkpoint(ctx.tmp / "small.pt", tiny())
    wide = UNet(3, 1, init_features=8, depth=2)
    payload = torch.load(small, weights_only=True)
    payload["model_config"] = wide.config.to_dict()
    torch.save(payload, ctx.tmp / "mixed.pt")
    return Segmenter.from_checkpoint(ctx.tmp / "mixed.pt")


def _tutorial_whole_model(ctx: Ctx) -> Any:
    torch.save(tiny(), ctx.tmp / "unet_model.pth")  # the tutorial's torch.save(model)
    return load_checkpoint(ctx.tmp / "unet_model.pth")


def _truncated_checkpoint(ctx: Ctx) -> Any:
    data = save_checkpoint(ctx.tmp / "full.pt", tiny()).read_bytes()
    (ctx.tmp / "copied_halfway.pt").write_bytes(data[: len(data) // 2])
    return load_checkpoint(ctx.tmp / "copied_halfway.pt")


def _tampered(record: dict[str, Any] | None = None, **changes: Any) -> Callable[[Ctx], Any]:
    """A saved checkpoint with top-level fields and fields of its record replaced."""

    def call(ctx: Ctx) -> Any:
        payload = torch.load(save_checkpoint(ctx.tmp / "ok.pt", tiny()), weights_only=True)
        payload.update(changes)
        payload["model_config"].update(record or {})
        torch.save(payload, ctx.tmp / "tampered.pt")
        return load_checkpoint(ctx.tmp / "tampered.pt")

    return call


def _overlay_float_0_255(ctx: Ctx) -> Any:
    image = torch.rand(3, 4, 5) * 255  # a float image that was never divided by 255
    return overlay(image, torch.zeros(4, 5, dtype=torch.int64))


ROWS: list[Row] = [
    # --- data: files on disk -----------------------------------------------------------
    Row("data-zero-byte-png", _zero_byte, "DataError naming the file", DataError,
        r"photo\.png is empty \(0 bytes\)"),
    Row("data-truncated-jpeg", _truncated_jpeg, "DataError naming the file", DataError,
        r"half\.jpg is truncated or corrupt"),
    Row("data-truncated-png-mask", _truncated_png_mask, "DataError naming the file", DataError,
        r"cut_mask\.png is truncated or corrupt"),
    Row("data-text-file-named-jpg", _text_as_jpeg, "DataError naming the file", DataError,
        r"notes\.jpg is not an image file"),
    Row("data-corrupt-file-among-many", _corrupt_file_in_dataset, "DataError naming img1.png",
        DataError, r"JPEGImages/img1\.png is (truncated or corrupt|not an image file)"),
    Row("data-mask-smaller-than-image", _mask_smaller_than_image,
        "DataError naming both files and sizes", DataError,
        r"image .*small\.png is 10x12 \(WxH\) but mask .*small\.png is 5x6"),
    Row("data-masks-saved-as-jpeg", _jpeg_masks, "MissingFileError (not an empty dataset)",
        MissingFileError, r"voc has no image with a mask: 3 image\(s\) .* holds \.jpg files"),
    Row("data-rgb-mask-known-colours", _rgb_mask([(128, 0, 0), (192, 128, 128), (224, 224, 192)]),
        "VOC colours decoded to ids 1, 15, 255", check=_equal([[1, 15, 255], [0, 0, 0]])),
    Row("data-rgb-mask-unknown-colours", _rgb_mask([(128, 0, 0), (1, 2, 3)]),
        "DataError naming the file and colour", DataError,
        r"coloured_mask\.png is an RGB mask with colours .* \(1, 2, 3\)"),
    Row("data-16-bit-png", _sixteen_bit_image, "RGB, values round(v/257)",
        check=_check_sixteen_bit),
    Row("data-16-bit-mask-over-255", _sixteen_bit_mask, "DataError naming file and range",
        DataError, r"ids16\.png is a I;16 mask with values in \[0, 300\]"),
    Row("data-cmyk-jpeg", _cmyk_jpeg, "RGB with the right colours", check=_check_cmyk),
    Row("data-exif-rotated-phone-photo", lambda ctx: open_image(_phone_photo(ctx)),
        "upright RGB image (EXIF applied)", check=_check_upright),
    Row("data-rgba-png", _rgba_png, "RGB, alpha dropped",
        check=_equal([[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [1, 2, 3]]])),
    Row("data-1x1-image", _tiny_dataset(1, 1), "item (3,1,1) + (1,1), exact values",
        check=_equal(((3, 1, 1), (1, 1)))),
    Row("data-7x3-image", _tiny_dataset(3, 7), "item (3,3,7) + (3,7), exact values",
        check=_equal(((3, 3, 7), (3, 7)))),
    Row("data-unicode-and-space-path", _unicode_dataset, "loads, exact values",
        check=_equal(["猫 photo 1"])),
    Row("data-labelme-to-voc-ids-with-spaces", _labelme_round_trip_with_spaces,
        "split files keep whole ids", check=_equal(["chat été", "my cat 1", "plain"])),
    Row("data-unicode-path-missing", _unicode_missing, "MissingFileError naming the path",
        MissingFileError, r"file not found: .*données chats/猫 absent\.jpg"),
    Row("data-float32-tiff", _float_tiff, "DataError naming mode and range (not black)",
        DataError, r"scan\.tif: a 32-bit float image \(mode 'F', values in \[0\.5, 0\.5\]\)"),
    Row("predict-float32-PIL-image", _float_pil_in_predict, "DataError naming the mode",
        DataError, r"mode 'F', values in \[0\.75, 0\.75\]"),
    Row("data-decompression-bomb-pillow-limit", _bomb(50_000, 50_000),
        "DataError naming the file", DataError, r"bomb\.png is refused by .*decompression-bomb"),
    Row("data-decompression-bomb-catseg-check", _bomb(12_000, 10_000),
        "DataError naming the file", DataError, r"bomb\.png is refused by .*decompression-bomb"),
    # --- labelme -----------------------------------------------------------------------
    Row("labelme-unknown-label",
        _labelme([{"label": "dog", "points": [[0, 0], [2, 2]], "shape_type": "rectangle"}]),
        "LabelmeError naming label and file", LabelmeError,
        r"a\.json: shape 0 has label 'dog', which is not in the label list"),
    Row("labelme-polygon-of-2-points",
        _labelme([{"label": "cat", "points": [[0, 0], [2, 2]], "shape_type": "polygon"}]),
        "LabelmeError naming shape and file", LabelmeError,
        r"a\.json: shape 0 \(polygon\) has 2 point\(s\); polygon needs at least 3"),
    Row("labelme-no-imagePath-no-imageData", _labelme([], imagePath=None, imageData=None),
        "LabelmeError naming the file", LabelmeError,
        r"a\.json has neither imageData nor imagePath"),
    Row("labelme-decompression-bomb-in-imageData", _labelme_bomb,
        "LabelmeError naming the file", LabelmeError,
        r"a\.json: imageData is refused by .*decompression-bomb guard"),
    Row("labelme-decompression-bomb-in-mask-shape", _labelme_mask_shape_bomb,
        "LabelmeError naming file and shape", LabelmeError,
        r"a\.json: shape 0 \(mask\) bitmap is refused by .*decompression-bomb guard"),
    Row("labelme-json-and-labels-with-utf8-bom", _labelme_with_bom, "read as plain UTF-8",
        check=_equal([[0] * 5, [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0] * 5])),
    Row("labelme-points-outside-image",
        _labelme([{"label": "cat", "points": OUTSIDE, "shape_type": "polygon"}]),
        "drawn and clipped to the image", check=_equal(OUTSIDE_MASK)),
    # --- transforms --------------------------------------------------------------------
    Row("transform-ignore-fill-overflows-int8-mask", _rotate_int8_mask,
        "DTypeError naming fill and dtype", DTypeError,
        r"mask_fill=255 does not fit a torch\.int8 mask \(values -128\.\.127\)"),
    Row("transform-empty-image", _pad_empty_image, "ShapeError naming the shape", ShapeError,
        r"image is empty: shape \(3, 0, 6\) has no pixels"),
    # --- losses and metrics ------------------------------------------------------------
    Row("loss-label-ge-num-classes", _loss_label_too_big, "DataError naming the label",
        DataError, r"target contains label 3; multiclass mode expects labels in \[0, 2\]"),
    Row("metric-label-ge-num-classes", _metric_label_too_big, "DataError naming the label",
        DataError, r"target contains label\(s\) \[5\] outside \[0, 2\].*num_classes=3"),
    Row("loss-void-255-ignored", _void_255_in_loss, "255 pixels left out (= cropped loss)",
        check=_check_pair_equal),
    Row("metric-void-255-ignored", _void_255_in_metric, "255 pixels left out: IoU 1/2",
        check=_equal(0.5)),
    Row("metric-nan-logits", _metric_nan, "NonFiniteError naming the shape", NonFiniteError,
        r"preds of shape \(2, 3, 4, 5\) contain NaN scores \(at 1 pixels\)"),
    Row("metric-inf-logits", _metric_inf, "±inf are valid scores: IoU 2/4", check=_equal(0.5)),
    Row("loss-float-target-rescaled-to-0-1", _float_target_rescaled,
        "DataError naming the value", DataError,
        r"float target must hold only 0 and 1 .*values such as \[0\.00392\]"),
    Row("loss-logits-passed-as-probabilities", _logits_as_probabilities,
        "DataError naming the range", DataError,
        r"from_logits=False expects probabilities in \[0, 1\], got input values in \[-2, 1\.5\]"),
    Row("metric-logits-passed-as-probabilities", _metric_logits_as_probabilities,
        "DataError naming range and shape", DataError,
        r"got scores in \[-2, 1\.5\] \(shape \(1, 1, 2, 2\)\)"),
    Row("metric-float-target", _metric_float_target, "DTypeError naming dtype", DTypeError,
        r"target must be an integer label map .*torch\.float32"),
    Row("loss-uint8-input", _loss_uint8_input, "DTypeError naming dtype", DTypeError,
        r"input must be a floating-point tensor, got dtype torch\.uint8"),
    Row("loss-float64-input", _loss_float64_input, "computed in float64, same value",
        check=_check_pair_equal),
    Row("loss-target-shape-mismatch", _loss_shape_mismatch, "ShapeError naming both shapes",
        ShapeError, r"target has shape \(2, 8, 7\), expected \(2, 8, 8\)"),
    Row("metric-uint8-target", _metric_uint8_target, "accepted, same as int64",
        check=_equal((2 / 3, 2 / 3))),
    # --- models ------------------------------------------------------------------------
    Row("model-float64-input", _model_forward((1, 3, 8, 8), torch.float64),
        "DTypeError naming both dtypes", DTypeError, r"torch\.float64.*torch\.float32"),
    Row("model-uint8-input", _model_forward((1, 3, 8, 8), torch.uint8),
        "DTypeError naming the dtype", DTypeError, r"got torch\.uint8; convert"),
    Row("model-wrong-channel-count", _model_forward((1, 4, 8, 8), torch.float32),
        "ShapeError naming the shape", ShapeError,
        r"expects 3 input channels, got shape \(1, 4, 8, 8\)"),
    Row("model-no-batch-axis", _model_forward((3, 8, 8), torch.float32),
        "ShapeError with unsqueeze hint", ShapeError, r"got shape \(3, 8, 8\); add a batch"),
    Row("model-1x1-image", _model_forward((1, 3, 1, 1), torch.float32), "logits (1,1,1,1)",
        check=_equal((1, 1, 1, 1))),
    Row("model-7x3-image", _model_forward((2, 3, 7, 3), torch.float32), "logits (2,1,7,3)",
        check=_equal((2, 1, 7, 3))),
    Row("model-group-norm-1x1-image", _tiny_input("group", train=False), "logits (1,2,1,1)",
        check=_equal((1, 2, 1, 1))),
    Row("model-instance-norm-1x1-image", _tiny_input("instance", train=False),
        "logits (1,2,1,1)", check=_equal((1, 2, 1, 1))),
    Row("model-batch-norm-training-batch-of-one-1x1", _tiny_input("batch", train=True),
        "logits (1,2,1,1)", check=_equal((1, 2, 1, 1))),
    Row("model-250x333-image", _model_forward((1, 3, 250, 333), torch.float32),
        "logits (1,1,250,333): no 'sizes of tensors must match'",
        check=_equal((1, 1, 250, 333))),
    Row("model-unknown-encoder", _unknown_encoder, "EncoderError with a hint", EncoderError,
        r"unknown encoder 'resnet19'; did you mean 'resnet18'\?"),
    Row("model-broken-encoder-plugin", _broken_plugin,
        "EncoderError naming entry point and distribution", EncoderError,
        r"encoder plugin 'broken_rel' failed to load from entry point .*"
        r"distribution catseg-reliability-broken 1\.2\) \(ImportError: needs libfoo\.so\)",
        after=_forget_plugin),
    # --- predictor ---------------------------------------------------------------------
    Row("predict-zero-byte-file", _predict(_empty_upload), "DataError naming the file",
        DataError, r"upload\.jpg is empty"),
    Row("predict-missing-file", _predict(lambda ctx: ctx.tmp / "nope.png"),
        "MissingFileError naming the path", MissingFileError, r"file not found: .*nope\.png"),
    Row("predict-exif-rotated-phone-photo", _predict(_phone_photo), "upright (16, 8) mask",
        check=_mask_shape((16, 8))),
    Row("predict-1x1-image", _predict(lambda ctx: torch.rand(3, 1, 1)), "(1, 1) mask",
        check=_mask_shape((1, 1))),
    Row("predict-7x3-image", _predict(lambda ctx: torch.rand(3, 3, 7)), "(3, 7) mask",
        check=_mask_shape((3, 7))),
    Row("predict-4000x3000-jpeg", _predict(_big_photo, image_size=(96, 128)),
        "(3000, 4000) mask", check=_mask_shape((3000, 4000))),
    Row("predict-4000x3000-tiled", _big_tiled, "tiled ≈ untiled probabilities",
        check=_check_tiled),
    Row("predict-unicode-space-path",
        _predict(lambda ctx: _unicode_photo(ctx.tmp / "mes photos" / "chat été.png")),
        "(4, 5) mask", check=_mask_shape((4, 5))),
    Row("predict-rgba-array", _predict_rgba_equals_rgb, "alpha dropped: same mask as RGB",
        check=_check_masks_equal),
    Row("predict-two-channel-array", _predict(lambda ctx: np.zeros((6, 6, 2), np.uint8)),
        "ShapeError naming the channels", ShapeError, r"has 2 channels but the model takes 3"),
    Row("predict-float-tensor-0-255", _predict(lambda ctx: torch.rand(3, 4, 4) * 255),
        "DataError: 'pass 0..255 images as uint8'", DataError,
        r"must hold values in \[0, 1\], got .*pass 0\.\.255 images as uint8"),
    Row("predict-float64-tensor", _predict_float64_tensor, "same as float32",
        check=_check_close),
    Row("predict-nan-logits", lambda ctx: segmenter(ConstantLogits(float("nan"))).predict(
        torch.rand(3, 4, 4)), "NonFiniteError", NonFiniteError, r"NaN or infinite logits"),
    Row("predict-inf-logits", lambda ctx: segmenter(ConstantLogits(float("inf"))).predict(
        torch.rand(3, 4, 4)), "NonFiniteError", NonFiniteError, r"NaN or infinite logits"),
    Row("overlay-float-image-0-255", _overlay_float_0_255,
        "DataError (not a white image)", DataError, r"\[0, 1\].*uint8"),
    Row("predict-decompression-bomb", _bomb_in_predict, "DataError naming the file", DataError,
        r"huge\.png is refused by .*decompression-bomb"),
    # --- checkpoints -------------------------------------------------------------------
    Row("checkpoint-pickle-would-run-code", _pickle_runs_code,
        "CheckpointError; marker file absent", CheckpointError,
        r"downloaded\.pt was refused by the safe loader \(nothing in it was executed\)",
        after=_marker_absent),
    Row("checkpoint-from-another-model-config", _other_config,
        "CheckpointError naming tensors and shapes", CheckpointError,
        r"mixed\.pt: the checkpoint's weights do not match the model config: .*with other "
        r"shapes .*: file \(4, 3, 3, 3\) vs "
        r"model \(8, 3, 3, 3\)"),
    Row("checkpoint-whole-model-pickle", _tutorial_whole_model,
        "CheckpointError naming the file", CheckpointError,
        r"unet_model\.pth was refused by the safe loader"),
    Row("checkpoint-tampered-mean",
        _tampered({"preprocessing": {"mean": ["x", 0.5, 0.5], "std": [1, 1, 1]}}),
        "CheckpointError naming file and field", CheckpointError,
        r"tampered\.pt: invalid model record: .*mean"),
    Row("checkpoint-tampered-image-size", _tampered({"image_size": ["a", "b"]}),
        "CheckpointError naming file and field", CheckpointError,
        r"tampered\.pt: invalid model record: image_size"),
    Row("checkpoint-tampered-state-dict-keys", _tampered(state_dict={1: torch.zeros(1)}),
        "CheckpointError naming file and field", CheckpointError,
        r"tampered\.pt is a corrupt catseg checkpoint: .*state_dict"),
    Row("checkpoint-truncated-copy", _truncated_checkpoint, "CheckpointError naming the file",
        CheckpointError, r"copied_halfway\.pt is truncated or corrupt"),
]  # fmt: skip


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    return Ctx(tmp_path, monkeypatch)


def test_catalogue_has_enough_distinct_rows() -> None:
    assert len(ROWS) >= 25
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue(row: Row, ctx: Ctx) -> None:
    run_row(row, ctx)
