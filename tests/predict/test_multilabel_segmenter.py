"""Segmenter and Prediction in ``mode="multilabel"``: K sigmoid maps, boolean layers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from catseg.errors import ConfigError
from catseg.models import UNet
from catseg.predict import Prediction, Segmenter
from catseg.visualize import colorize_layers, overlay_layers

PLAIN: dict[str, Any] = {"precision": "fp32", "fuse": False, "channels_last": False}


class ConstantLogits(nn.Module):
    """Returns the same logit per channel at every pixel."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits).view(1, -1, 1, 1))
        self.num_classes = len(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, x.shape[2], x.shape[3]).clone()


def _multilabel(model: nn.Module, classes: list[str], **extra: Any) -> Segmenter:
    return Segmenter(model, classes=classes, mode="multilabel", **PLAIN, **extra)


def test_layers_are_sigmoid_above_per_label_thresholds() -> None:
    # sigmoid(2) = 0.881, sigmoid(-2) = 0.119, sigmoid(0.5) = 0.622
    seg = _multilabel(ConstantLogits([2.0, -2.0, 0.5]), ["a", "b", "c"], threshold=(0.5, 0.1, 0.7))
    pred = seg.predict(torch.rand(3, 4, 5), return_probabilities=True)
    assert pred.layers.dtype == torch.bool
    assert pred.layers.shape == (3, 4, 5)
    assert pred.layers[:, 0, 0].tolist() == [True, True, False]
    assert pred.layers.all(dim=(1, 2)).tolist() == [True, True, False]
    assert pred.probabilities is not None
    expected = [1 / (1 + math.exp(-v)) for v in (2.0, -2.0, 0.5)]
    assert pred.probabilities[:, 2, 3].tolist() == pytest.approx(expected, abs=1e-6)
    assert seg.threshold == (0.5, 0.1, 0.7)
    assert seg.mode == "multilabel"


def test_the_issue_call_returns_boolean_layers() -> None:
    """Issue 26: ``mode`` was only in SegmenterOptions, so this call failed."""
    seg = Segmenter(
        UNet(3, 3, init_features=4, depth=2), classes=["sky", "tree", "car"], mode="multilabel"
    )
    layers = seg.predict(torch.rand(3, 21, 34)).mask
    assert (layers.shape, layers.dtype) == ((3, 21, 34), torch.bool)


def test_one_threshold_for_every_label_and_overlap_is_kept() -> None:
    seg = _multilabel(ConstantLogits([1.0, 1.0]), ["x", "y"], threshold=0.6)
    layers = seg.predict(torch.rand(3, 3, 3)).layers
    assert layers.all()  # both labels on every pixel: sigmoid(1) = 0.731 > 0.6


def test_single_label_multilabel_equals_binary() -> None:
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2)
    binary = Segmenter(model, classes=["_background_", "cat"], **PLAIN)
    multi = _multilabel(model, ["cat"])
    images = [torch.rand(3, 29, 37) for _ in range(3)]
    for image in images:
        b = binary.predict(image, return_probabilities=True)
        m = multi.predict(image, return_probabilities=True)
        assert torch.equal(m.layers[0], b.mask == 1)
        assert m.probabilities is not None
        assert b.probabilities is not None
        assert torch.equal(m.probabilities[0], b.probabilities[1])
    assert binary.mode == "binary"
    assert multi.mode == "multilabel"


def test_multiclass_and_binary_are_unchanged() -> None:
    seg = Segmenter(ConstantLogits([0.0, 3.0, 1.0]), classes=["a", "b", "c"], **PLAIN)
    pred = seg.predict(torch.rand(3, 4, 4))
    assert pred.mask.shape == (4, 4)
    assert pred.mask.dtype == torch.uint8
    assert (pred.mask == 1).all()
    assert seg.mode == "multiclass"
    assert pred.layers[:, 0, 0].tolist() == [False, True, False]


def test_tta_and_tiles_work_for_multilabel() -> None:
    torch.manual_seed(1)
    model = UNet(3, 2, init_features=4, depth=2)
    base = _multilabel(model, ["a", "b"])
    tiled = _multilabel(model, ["a", "b"], tile=(32, 8), tta=True)
    image = torch.rand(3, 50, 60)
    assert tiled.predict(image).layers.shape == base.predict(image).layers.shape == (2, 50, 60)


def test_prediction_pictures_blend_overlapping_labels() -> None:
    layers = torch.zeros(2, 1, 3, dtype=torch.bool)
    layers[0, 0, :2] = True
    layers[1, 0, 1] = True
    pred = Prediction(layers, None, ["a", "b"], Image.new("RGB", (3, 1), (100, 100, 100)))
    picture = pred.colorize()
    # VOC colours: label a = colour 1 (128, 0, 0), label b = colour 2 (0, 128, 0)
    assert [picture.getpixel((x, 0)) for x in range(3)] == [(128, 0, 0), (64, 64, 0), (0, 0, 0)]
    over = pred.overlay(alpha=0.5)
    assert over.getpixel((0, 0)) == (114, 50, 50)
    assert over.getpixel((1, 0)) == (82, 82, 50)
    assert over.getpixel((2, 0)) == (100, 100, 100)
    assert pred.size == (1, 3)
    with pytest.raises(ConfigError, match="multilabel"):
        pred.save(Path("never.png"))


def test_layer_pictures_validate_input() -> None:
    with pytest.raises(ConfigError, match="palette has 2 colours"):
        colorize_layers(torch.ones(2, 1, 1, dtype=torch.bool), palette=[0, 0, 0, 255, 0, 0])
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        colorize_layers(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="must match"):
        overlay_layers(Image.new("RGB", (2, 2)), torch.ones(1, 3, 3, dtype=torch.bool))


def test_multilabel_option_errors() -> None:
    with pytest.raises(ConfigError, match="threshold holds 2 values"):
        Segmenter(ConstantLogits([0.0]), classes=["bg", "a"], threshold=(0.5, 0.5), mode="binary")
    with pytest.raises(ConfigError, match="mode must be one of"):
        Segmenter(ConstantLogits([0.0]), mode="multi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="classes has 1 names but a binary"):
        Segmenter(ConstantLogits([0.0]), classes=["cat"])
    assert _multilabel(ConstantLogits([0.0]), ["cat"]).classes == ["cat"]
    with pytest.raises(ConfigError, match="threshold holds 3 values"):
        _multilabel(ConstantLogits([0.0, 0.0]), ["a", "b"], threshold=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="threshold holds 2 values"):
        Segmenter(ConstantLogits([0.0, 0.0]), classes=["a", "b"], threshold=(0.5, 0.5))
    with pytest.raises(ConfigError, match="mode 'binary' needs 1 logit"):
        Segmenter(ConstantLogits([0.0, 0.0]), classes=["a", "b"], mode="binary")
    with pytest.raises(ConfigError, match="classes has 2 names but a 3-label multilabel"):
        _multilabel(ConstantLogits([0.0, 0.0, 0.0]), ["a", "b"])


def test_saved_record_keeps_mode_and_thresholds(tmp_path: Path) -> None:
    seg = _multilabel(UNet(3, 2, init_features=4, depth=2), ["a", "b"], threshold=(0.3, 0.6))
    again = Segmenter.from_pretrained(seg.save_pretrained(tmp_path / "m"))
    assert (again.mode, again.threshold, again.classes) == ("multilabel", (0.3, 0.6), ["a", "b"])


def test_onnx_metadata_carries_mode(tmp_path: Path) -> None:
    from catseg.export import OnnxRunner, to_onnx

    torch.manual_seed(0)
    seg = _multilabel(UNet(3, 2, init_features=4, depth=2), ["disc", "bar"], threshold=(0.4, 0.6))
    path = to_onnx(seg, tmp_path / "ml.onnx")
    assert OnnxRunner(path).config.mode == "multilabel"
    onnx_seg = Segmenter.from_onnx(path)
    assert onnx_seg.mode == "multilabel"
    assert onnx_seg.threshold == (0.4, 0.6)
    image = torch.rand(3, 24, 40)
    assert torch.equal(onnx_seg.predict(image).layers, seg.predict(image).layers)
