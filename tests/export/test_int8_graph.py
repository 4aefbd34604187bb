"""The int8 graph rewrites: exact in fp32, applied only where they are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from catseg.export import to_onnx
from catseg.export._int8_graph import read_shapes_before_dequantize, rewrite_block_upsampling
from catseg.models import UNet


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])


def _transposed(kernel: tuple[int, int], stride: tuple[int, int], bias: bool) -> onnx.ModelProto:
    """One ConvTranspose (4 -> 3 channels) on a free-size input."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, *kernel)).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(
        "ConvTranspose", inputs, ["y"], kernel_shape=list(kernel), strides=list(stride)
    )
    graph = helper.make_graph(
        [node],
        "up",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize(("kernel", "bias"), [((2, 2), True), ((2, 3), False), ((1, 1), True)])
def test_block_upsampling_rewrite_is_exact(kernel: tuple[int, int], bias: bool) -> None:
    model = _transposed(kernel, kernel, bias)
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 7)).astype(np.float32)
    expected = _run(model, x)
    assert rewrite_block_upsampling(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert "ConvTranspose" not in ops
    assert ops[0] == "Conv"
    assert {t.name for t in model.graph.initializer}.isdisjoint({"w", "b"})  # old weights gone
    got = _run(model, x)
    assert got.shape == (2, 3, 5 * kernel[0], 7 * kernel[1])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_other_transposed_convolutions_are_left_alone() -> None:
    model = _transposed((3, 3), (2, 2), True)  # overlapping kernel: not a block upsampling
    before = model.SerializeToString()
    assert rewrite_block_upsampling(model) == 0
    assert model.SerializeToString() == before


def test_unet_graph_rewrite_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = to_onnx(UNet(3, 2, init_features=4, depth=3).eval(), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    x = np.random.default_rng(2).standard_normal((2, 3, 37, 53)).astype(np.float32)
    expected = _run(model, x)
    assert rewrite_block_upsampling(model) == 3
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-4, atol=1e-5)


def test_shapes_are_read_before_dequantizing() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        helper.make_node("Shape", ["d"], ["shape"]),
        helper.make_node("Shape", ["x"], ["shape_x"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("shape_x", TensorProto.INT64, [2]),
        ],
        [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    assert read_shapes_before_dequantize(model) == 1
    assert [n.input[0] for n in model.graph.node if n.op_type == "Shape"] == ["q", "x"]
    out = _run(model, np.zeros((5, 3), np.float32))
    np.testing.assert_array_equal(out, [5, 3])
