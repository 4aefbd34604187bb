"""ONNX export: onnxruntime reproduces PyTorch fp32 for every built-in encoder and size."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from catseg.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    ExportError,
    MissingFileError,
    OptionalDependencyError,
    ShapeError,
)
from catseg.export import INPUT_NAME, OUTPUT_NAME, OnnxRunner, to_onnx
from catseg.models import UNet, UNetConfig, list_encoders
from catseg.models.encoders import ClassicEncoder
from catseg.models.preprocessing import Preprocessing
from catseg.predict import Segmenter

# (batch, height, width): a multiple of every stride, two sizes that are not, and batch 2.
SIZES = [(1, 64, 64), (1, 37, 53), (2, 45, 70)]
NUM_CLASSES = 3


def _randomize_batchnorm(model: nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial statistics so that folding them is really tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                assert module.running_mean is not None
                assert module.running_var is not None
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))


def _small_unet(encoder: str, num_classes: int = NUM_CLASSES) -> UNet:
    if encoder == "unet":
        return UNet(3, num_classes, init_features=4, depth=4)  # total stride 16
    probe = UNet(3, num_classes, encoder=encoder)
    return UNet(3, num_classes, encoder=encoder, decoder_channels=[8] * len(probe.decoder))


@dataclass
class Exported:
    encoder: str
    model: UNet
    runner: OnnxRunner
    path: Path


@pytest.fixture(scope="module", params=list_encoders())
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Each built-in encoder exported once (dynamic size) and reused for every size."""
    encoder = str(request.param)
    torch.manual_seed(0)
    model = _small_unet(encoder)
    _randomize_batchnorm(model, seed=1)
    model.eval()
    path = to_onnx(model, tmp_path_factory.mktemp(encoder) / f"{encoder}.onnx")
    return Exported(encoder, model, OnnxRunner(path, providers=["CPUExecutionProvider"]), path)


@pytest.mark.slow
@pytest.mark.parametrize(("batch", "height", "width"), SIZES)
def test_onnxruntime_matches_pytorch_fp32(
    exported: Exported, batch: int, height: int, width: int
) -> None:
    gen = torch.Generator().manual_seed(height * 1000 + width)
    x = torch.rand(batch, 3, height, width, generator=gen)
    before = x.clone()
    with torch.no_grad():
        expected = exported.model(x)  # the unfused fp32 model is the reference
    got = exported.runner(x)
    assert got.dtype == torch.float32
    assert got.shape == (batch, NUM_CLASSES, height, width)
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4, f"{exported.encoder} at {tuple(x.shape)}: max abs diff {diff}"
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert torch.equal(x, before)  # the input is not modified
    if height == 37:  # a channels_last input gives the same logits
        assert torch.equal(exported.runner(x.to(memory_format=torch.channels_last)), got)


@pytest.mark.slow
def test_exported_file_has_named_dynamic_dims_and_metadata(exported: Exported) -> None:
    proto = onnx.load(str(exported.path))
    (graph_input,) = proto.graph.input
    (graph_output,) = proto.graph.output
    assert graph_input.name == INPUT_NAME
    assert graph_output.name == OUTPUT_NAME
    in_dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert in_dims == ["batch", 3, "height", "width"]
    assert out_dims == ["batch", NUM_CLASSES, "height", "width"]
    assert proto.opset_import[0].version == 18
    meta = exported.runner.metadata
    # each fact once: the record as one entry, beside what only the file knows
    assert sorted(meta) == ["catseg_version", "dynamic_size", "model_config", "stride"]
    assert meta["dynamic_size"] is True
    assert meta["stride"] == exported.model.stride
    assert meta["model_config"] == exported.model.config.to_dict()
    assert isinstance(meta["catseg_version"], str)
    assert exported.runner.config == exported.model.config
    assert UNet.from_config(exported.runner.config).config == exported.model.config


@dataclass
class FakeSegmenter:
    """The attributes to_onnx reads from a catseg.predict.Segmenter (duck typed)."""

    model: UNet
    config: UNetConfig


@pytest.mark.slow
def test_static_segmenter_export_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    # One export covers: a Segmenter's metadata, a static file at the Segmenter's
    # image_size, a binary model built from an encoder instance (no rebuildable config),
    # a model left in training mode with channels_last weights, opset 20, and replacing
    # an existing file in a folder that holds nothing else afterwards.
    model = UNet(3, 1, encoder=ClassicEncoder(3, init_features=4, depth=2))
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    record = dataclasses.replace(  # the Segmenter's resolved record, not the model's
        model.config,
        classes=("_background_", "cat"),
        image_size=(40, 56),
        preprocessing=Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        threshold=0.4,
    )
    segmenter = FakeSegmenter(model, record)
    target = tmp_path / "cat.onnx"
    target.write_bytes(b"old contents")

    assert to_onnx(segmenter, target, opset=20, dynamic_size=False) == target

    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.onnx"]  # no temp file left
    proto = onnx.load(str(target))
    assert proto.opset_import[0].version == 20
    runner = OnnxRunner(target)
    assert sorted(runner.metadata) == ["catseg_version", "dynamic_size", "model_config", "stride"]
    assert (runner.metadata["dynamic_size"], runner.metadata["stride"]) == (False, 4)
    assert isinstance(runner.metadata["catseg_version"], str)
    # an encoder instance has no rebuildable architecture: the record's facts are stored
    for field in ("in_channels", "num_classes", "classes", "mode", "image_size", "threshold"):
        assert getattr(runner.config, field) == getattr(record, field), field
    assert runner.config.preprocessing == record.preprocessing
    assert runner.config.mode == "binary"
    assert (runner.in_channels, runner.num_classes) == (3, 1)
    # the model passed in is untouched: still training, same weights
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        expected = model.eval()(x)
    got = runner(x)
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(got > 0, expected > 0)  # identical binary masks
    with pytest.raises(ShapeError, match=r"cat\.onnx expects input shape \[1, 3, 40, 56\]"):
        runner(torch.rand(1, 3, 41, 56))
    # A Segmenter runs the fixed-size file one image at a time, at its one size only.
    with pytest.raises(ConfigError, match=r"accepts only 40x56 \(H x W\) inputs, so image_size"):
        Segmenter(runner, image_size=(64, 64))
    seg = Segmenter(runner)
    images = [torch.rand(3, 30 + i, 50) for i in range(3)]
    masks = [p.mask for p in seg.predict_batch(images)]
    model.eval()
    record = seg.config
    reference = Segmenter(
        model, classes=record.classes, image_size=record.image_size, precision="fp32"
    )
    for mask, image in zip(masks, images, strict=True):
        assert (mask == reference.predict(image).mask).float().mean() > 0.999


class SizeBakingEncoder(nn.Module):
    """A custom encoder whose Python branch on the width is decided once, at tracing."""

    out_channels = (4,)
    reductions = (1,)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.conv(x)
        if x.shape[-1] > 80:  # true for the traced example (93 wide), false at 53
            y = y * 2
        return [y]


def test_export_that_bakes_in_the_example_size_is_refused(tmp_path: Path) -> None:
    model = UNet(3, 1, encoder=SizeBakingEncoder()).eval()
    target = tmp_path / "baked.onnx"
    with pytest.raises(ExportError, match=r"does not reproduce the PyTorch model at input shape"):
        to_onnx(model, target)
    assert not list(tmp_path.iterdir())  # nothing written, no temp file left


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import catseg.export._onnx as onnx_export

    class DiskFullProgram:  # stands in for torch.onnx.ONNXProgram: the write dies half-way
        def __init__(self) -> None:
            self.model = SimpleNamespace(metadata_props={})

        def save(self, destination: Path, *, external_data: bool) -> None:
            Path(destination).write_bytes(b"half a model")
            raise OSError("No space left on device")

    monkeypatch.setattr(onnx_export, "_export_program", lambda *args: DiskFullProgram())
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(OSError, match="No space left"):
        to_onnx(UNet(3, 1, init_features=4, depth=2), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # temp file removed


# --- errors (no export needed) ----------------------------------------------------------


def test_to_onnx_rejects_other_objects(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"model_or_segmenter must be a catseg UNet or a Segm.*Conv2d"
    ):
        to_onnx(nn.Conv2d(3, 1, 1), tmp_path / "x.onnx")

    class NoFields:
        model = UNet(3, 1, init_features=4, depth=2)

    with pytest.raises(ConfigError, match="got NoFields"):
        to_onnx(NoFields(), tmp_path / "x.onnx")

    class OnnxBacked:  # what Segmenter.from_onnx builds: no PyTorch model
        model = None
        config = UNetConfig()

    with pytest.raises(ConfigError, match=r"\.model is NoneType \(a Segmenter that runs an ONNX"):
        to_onnx(OnnxBacked(), tmp_path / "x.onnx")

    class DictRecord:  # a record that is not a UNetConfig
        model = UNet(3, 1, init_features=4, depth=2)
        config: ClassVar[dict[str, Any]] = {"classes": ["bg", "cat"]}

    with pytest.raises(ConfigError, match=r"a UNetConfig `\.config`.*got DictRecord"):
        to_onnx(DictRecord(), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("opset", [12, 17, 24, 18.0, True])
def test_to_onnx_rejects_bad_opset(tmp_path: Path, opset: Any) -> None:
    with pytest.raises(ConfigError, match=r"opset must be an int in 18\.\.23, got"):
        to_onnx(UNet(3, 1, init_features=4, depth=2), tmp_path / "x.onnx", opset=opset)


def test_to_onnx_rejects_non_bool_dynamic_size(tmp_path: Path) -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(ConfigError, match="dynamic_size must be True or False, got 'yes'"):
        to_onnx(model, tmp_path / "x.onnx", dynamic_size="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(0, 16), (16,), (16.0, 16), "64x64"])
def test_to_onnx_rejects_bad_example_size(tmp_path: Path, size: Any) -> None:
    with pytest.raises(ConfigError, match=r"example_size must be an int or \(height, width\)"):
        to_onnx(UNet(3, 1, init_features=4, depth=2), tmp_path / "x.onnx", example_size=size)


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_missing_extra_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    with pytest.raises(
        OptionalDependencyError, match=rf"'{missing}'.*pip install \"catseg\[onnx\]\""
    ):
        to_onnx(UNet(3, 1, init_features=4, depth=2), tmp_path / "x.onnx")
    if missing == "onnxruntime":
        with pytest.raises(OptionalDependencyError, match=r"catseg\[onnx\]"):
            OnnxRunner(tmp_path / "x.onnx")


def test_import_does_not_load_onnx() -> None:
    code = (
        "import sys, catseg.export; "
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def _save_graph(path: Path, inputs: list[Any], outputs: list[Any], nodes: list[Any]) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
        str(path),
    )
    return path


@pytest.fixture
def negate_runner(tmp_path: Path) -> OnnxRunner:
    """A foreign (non-catseg) model: y = -x on (n, 2, h, w), no metadata."""
    value = helper.make_tensor_value_info
    path = _save_graph(
        tmp_path / "negate.onnx",
        [value("x", TensorProto.FLOAT, ["n", 2, "h", "w"])],
        [value("y", TensorProto.FLOAT, ["n", 2, "h", "w"])],
        [helper.make_node("Neg", ["x"], ["y"])],
    )
    return OnnxRunner(path)


def test_runner_on_a_foreign_model(negate_runner: OnnxRunner) -> None:
    assert negate_runner.metadata == {}
    assert (negate_runner.in_channels, negate_runner.num_classes) == (2, 2)
    assert (negate_runner.input_name, negate_runner.output_name) == ("x", "y")
    x = torch.arange(12, dtype=torch.float32).reshape(1, 2, 2, 3)
    assert torch.equal(negate_runner(x), -x)
    assert "negate.onnx" in repr(negate_runner)


def test_runner_rejects_bad_inputs(negate_runner: OnnxRunner) -> None:
    with pytest.raises(DTypeError, match=r"expects a torch\.Tensor, got ndarray"):
        negate_runner(torch.zeros(1, 2, 3, 3).numpy())  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match=r"expects float32 images, got torch\.float64"):
        negate_runner(torch.zeros(1, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"expects \(N, C, H, W\) images, got shape \(2, 3, 3\)"):
        negate_runner(torch.zeros(2, 3, 3))
    with pytest.raises(ShapeError, match=r"expects input shape \['n', 2, 'h', 'w'\].*axis 1"):
        negate_runner(torch.zeros(1, 3, 3, 3))


def test_runner_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"ONNX file '.*nope\.onnx' does not exist"):
        OnnxRunner(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a protobuf")
    with pytest.raises(CheckpointError, match=r"corrupt\.onnx' is not a loadable ONNX model"):
        OnnxRunner(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.onnx' is not a loadable ONNX model"):
        OnnxRunner(empty)
    value = helper.make_tensor_value_info
    two_inputs = _save_graph(
        tmp_path / "two.onnx",
        [value("a", TensorProto.FLOAT, [1, 1, 2, 2]), value("b", TensorProto.FLOAT, [1, 1, 2, 2])],
        [value("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_node("Add", ["a", "b"], ["y"])],
    )
    with pytest.raises(CheckpointError, match=r"must have one 4-D input"):
        OnnxRunner(two_inputs)


def test_runner_rejects_unknown_providers(tmp_path: Path) -> None:
    value = helper.make_tensor_value_info
    path = _save_graph(
        tmp_path / "m.onnx",
        [value("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [value("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_node("Neg", ["x"], ["y"])],
    )
    with pytest.raises(ConfigError, match=r"\['NoSuchExecutionProvider'\] are not available"):
        OnnxRunner(path, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ConfigError, match="providers must be None or a sequence of provider names"):
        OnnxRunner(path, providers="CPUExecutionProvider")
    assert OnnxRunner(path, providers=["CPUExecutionProvider"]).providers == [
        "CPUExecutionProvider"
    ]


def test_to_onnx_rejects_a_path_of_another_type() -> None:
    with pytest.raises(ConfigError, match=r"path must be a path \(str or os\.PathLike\), got 3"):
        to_onnx(UNet(3, 1, init_features=4, depth=2), 3)  # type: ignore[arg-type]


def test_onnxruntime_failure_is_an_export_error(tmp_path: Path) -> None:
    """A graph that runs at one size only: onnxruntime fails at run time -> ExportError."""
    value = helper.make_tensor_value_info
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 2, 2])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "g",
        [value("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [value("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        initializer=[shape],
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
        str(path),
    )
    runner = OnnxRunner(path)
    assert runner(torch.ones(1, 1, 2, 2)).shape == (1, 1, 2, 2)
    with pytest.raises(ExportError, match=r"onnxruntime could not run fixed\.onnx on input shape"):
        runner(torch.ones(1, 1, 3, 3))
    assert issubclass(ExportError, RuntimeError)


def _with_metadata(tmp_path: Path, name: str, meta: dict[str, str]) -> Path:
    """A 3-channel, 1-logit graph (the channels summed) carrying ``meta``."""
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
        "g",
        [value("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [value("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    helper.set_model_props(model, meta)
    onnx.save(model, str(tmp_path / name))
    return tmp_path / name


INVALID = "invalid model record: "


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("model_config", '{"threshold": 1.5}', INVALID + r"threshold must be .* got 1\.5"),
        ("model_config", '{"classes": ["a", "b", "c"]}', INVALID + r"classes has 3 names but"),
        (
            "model_config",
            '{"preprocessing": {"mean": [0.5, 0.5], "std": [1, 1]}}',
            INVALID + r"preprocessing has 2 channels",
        ),
        ("model_config", '{"mode": "panoptic"}', INVALID + r"mode must be one of"),
        ("model_config", '{"image_size": [0, 8]}', INVALID + r"image_size must be an int"),
        ("model_config", '{"colour": 3}', INVALID + r"unknown UNet config key\(s\)"),
        ("model_config", '"cat"', INVALID + r"expected an object of config fields, got str"),
        ("model_config", "{not json", INVALID + r"expected an object of config fields, got str"),
        ("model_config", '{"num_classes": 2}', INVALID + r"num_classes is 2 but the graph has 1"),
        ("model_config", '{"in_channels": 2}', INVALID + r"in_channels is 2 but the graph has 3"),
        (
            "model_config",
            '{"depth": 1000}',
            r"invalid model record: depth=1000 is over the limit of 12",
        ),
        ("stride", "2.5", r"metadata 'stride' is 2\.5, expected an int in 1\.\.4095"),
        ("stride", "0", r"metadata 'stride' is 0, expected an int"),
    ],
)
def test_malformed_metadata_names_the_file_and_field(
    tmp_path: Path, key: str, text: str, message: str
) -> None:
    path = _with_metadata(tmp_path, "meta.onnx", {key: text})
    with pytest.raises(CheckpointError, match=rf"meta\.onnx: {message}"):
        OnnxRunner(path)


def test_record_of_a_catseg_file_is_read(tmp_path: Path) -> None:
    record = UNetConfig(num_classes=1, classes=("bg", "cat"), image_size=(24, 40), threshold=0.3)
    meta = {"model_config": json.dumps(record.to_dict()), "stride": "16"}
    runner = OnnxRunner(_with_metadata(tmp_path, "cat.onnx", meta))
    assert runner.config == record
    assert (runner.in_channels, runner.num_classes, runner.stride) == (3, 1, 16)
