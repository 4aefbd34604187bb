"""Bad-input catalogue for prediction, export and visualisation (issues #20, #21).

Each row is one thing a user may pass to ``Segmenter``, ``to_onnx``/``OnnxRunner`` or
``overlay``/``colorize`` and the catseg error (class and message) it gets: bad values
are refused where they enter, naming the argument (or the ONNX metadata key) and what
is expected, instead of a bare Python error or a silent wrong answer later on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)

from catseg.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    ExportError,
)
from catseg.export import OnnxRunner, to_onnx
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.visualize import colorize, overlay

CLASSES = ["_background_", "cat"]


def tiny() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, init_features=4, depth=2).eval()  # stride 4


def segmenter(**options: Any) -> Segmenter:
    return Segmenter(tiny(), classes=CLASSES, precision="fp32", **options)


def _graph_file(tmp: Path, name: str, meta: dict[str, Any], shape: list[Any]) -> Path:
    """A one-node ONNX file (y = -x) with the given metadata and input shape."""
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        "g",
        [value("x", TensorProto.FLOAT, shape)],
        [value("y", TensorProto.FLOAT, [shape[0], 1, *shape[2:]])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    helper.set_model_props(
        model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    )
    path = tmp / name
    onnx.save(model, str(path))
    return path


def _meta(**record: Any) -> Callable[[Path], Any]:
    """A file whose record (the ``model_config`` entry) holds the given values."""
    meta = {"model_config": {"in_channels": 1, "num_classes": 1, **record}}

    def call(tmp: Path) -> Any:
        shape: list[Any] = ["n", 1, "h", "w"]
        return Segmenter.from_onnx(_graph_file(tmp, "downloaded.onnx", meta, shape))

    return call


def _static_file_other_size(tmp: Path) -> Any:
    path = _graph_file(tmp, "fixed.onnx", {}, [1, 1, 32, 48])
    return Segmenter.from_onnx(path, image_size=(64, 64))


def _runtime_failure(tmp: Path) -> Any:
    value = helper.make_tensor_value_info
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 2, 2])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "g",
        [value("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [value("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        initializer=[shape],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
        tmp / "r.onnx",
    )
    return OnnxRunner(tmp / "r.onnx")(torch.ones(1, 1, 3, 3))


ROWS: list[Row] = [
    # --- Segmenter options: finite, integer, bool where the value must be one ---------
    Row("segmenter-tile-smaller-than-stride", lambda tmp: segmenter(tile=(2, 0)),
        "ConfigError", ConfigError,
        r"tile size 2 is smaller than the model's stride 4.*e\.g\. tile=\(4, 0\)"),
    Row("segmenter-tile-fractional", lambda tmp: segmenter(tile=(64.5, 8)),
        "ConfigError", ConfigError,
        r"tile must be None or \(size, overlap\): two ints .*got \(64\.5, 8\)"),
    Row("segmenter-tile-overlap-inf", lambda tmp: segmenter(tile=(64, float("inf"))),
        "ConfigError", ConfigError, r"tile must be None or \(size, overlap\).*got \(64, inf\)"),
    Row("segmenter-tta-string", lambda tmp: segmenter(tta="no"), "ConfigError", ConfigError,
        r"tta must be True or False, got 'no'"),
    Row("segmenter-threshold-nan", lambda tmp: segmenter(threshold=float("nan")),
        "ConfigError", ConfigError,
        r"threshold must be a finite number in \(0\.0, 1\.0\), got nan"),
    Row("segmenter-mode-unknown", lambda tmp: segmenter(mode="multi"), "ConfigError", ConfigError,
        r"mode must be one of 'binary', 'multiclass', 'multilabel'; got 'multi'"),
    Row("segmenter-batch-size-fractional", lambda tmp: segmenter(batch_size=2.5),
        "ConfigError", ConfigError, r"batch_size must be a positive int, got 2\.5"),
    Row("segmenter-batch-size-bool", lambda tmp: segmenter(batch_size=True),
        "ConfigError", ConfigError, r"batch_size must be a positive int, got True"),
    Row("segmenter-model-path", lambda tmp: Segmenter("unet.pt", classes=CLASSES),
        "ConfigError", ConfigError,
        r"model must be a torch\.nn\.Module or a catseg\.export\.OnnxRunner"),
    # --- ONNX files: metadata and sizes checked up front ------------------------------
    Row("onnx-metadata-threshold-text", _meta(classes=CLASSES, threshold="high"),
        "CheckpointError", CheckpointError,
        r"downloaded\.onnx: invalid model record: threshold must be a finite number in "
        r"\(0\.0, 1\.0\), got 'high'"),
    Row("onnx-metadata-image-size-strings", _meta(classes=CLASSES, image_size=["a", "b"]),
        "CheckpointError", CheckpointError, r"invalid model record: image_size must be an int or "
        r"\(height, width\) of positive ints, got \['a', 'b'\]"),
    Row("onnx-metadata-classes-string", _meta(classes="cat"), "CheckpointError", CheckpointError,
        r"invalid model record: classes must be a list of class names, got 'cat'"),
    Row("onnx-metadata-std-zero", _meta(preprocessing={"mean": [0.5], "std": [0.0]}),
        "CheckpointError", CheckpointError,
        r"std\[0\] must be a finite number in \(0\.0, inf\], got 0\.0"),
    Row("onnx-metadata-unknown-key", _meta(stride="{oops"), "CheckpointError", CheckpointError,
        r"invalid model record: unknown UNet config key\(s\) \['stride'\]"),
    Row("onnx-static-file-other-size", _static_file_other_size, "ConfigError", ConfigError,
        r"fixed\.onnx accepts only 32x48 \(H x W\) inputs, so image_size must be \(32, 48\)"),
    Row("onnx-runtime-failure", _runtime_failure, "ExportError", ExportError,
        r"onnxruntime could not run r\.onnx on input shape \(1, 1, 3, 3\)"),
    Row("onnx-runner-array-input", lambda tmp: OnnxRunner(
        _graph_file(tmp, "m.onnx", {}, ["n", 1, "h", "w"]))(np.zeros((1, 1, 2, 2), np.float32)),
        "DTypeError", DTypeError, r"OnnxRunner expects a torch\.Tensor, got ndarray"),
    Row("onnx-runner-providers-int", lambda tmp: OnnxRunner(
        _graph_file(tmp, "m.onnx", {}, ["n", 1, "h", "w"]), providers=3),
        "ConfigError", ConfigError,
        r"providers must be None or a sequence of provider names, got 3"),
    Row("to-onnx-conv-layer", lambda tmp: to_onnx(torch.nn.Conv2d(3, 1, 1), tmp / "x.onnx"),
        "ConfigError", ConfigError,
        r"model_or_segmenter must be a catseg UNet or a Segmenter.*got Conv2d"),
    Row("to-onnx-path-int", lambda tmp: to_onnx(tiny(), 7), "ConfigError", ConfigError,
        r"path must be a path \(str or os\.PathLike\), got 7"),
    # --- visualisation ------------------------------------------------------------------
    Row("overlay-alpha-nan", lambda tmp: overlay(np.zeros((2, 2, 3), np.uint8),
        np.zeros((2, 2), np.uint8), alpha=float("nan")), "ConfigError", ConfigError,
        r"alpha must be a finite number in \[0\.0, 1\.0\], got nan"),
    Row("colorize-palette-int", lambda tmp: colorize(np.zeros((2, 2), np.uint8), palette=3),
        "ConfigError", ConfigError, r"palette must be 'voc', 'binary' or a flat sequence of ints"),
]  # fmt: skip


def test_rows_are_distinct() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_predict(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
