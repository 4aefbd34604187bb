"""Exact ONNX graph rewrites that let onnxruntime run more of a UNet in int8 on the CPU.

onnxruntime's CPU provider has no int8 ``ConvTranspose``: a quantised graph runs it in
fp32, with layout transposes around it. A transposed convolution whose kernel equals its
stride (the UNet's 2×2 upsampling) is exactly a 1×1 convolution to ``kh·kw·C`` channels
(which quantises) followed by a reshuffle of those channels into ``kh × kw`` blocks (pure
uint8 data movement, in NHWC order, that onnxruntime merges with its own transposes).

After quantisation, ``Shape`` nodes that read a dequantised tensor are pointed at the
quantised one, so a whole activation is no longer dequantised only to read its shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Transposed convolutions rewritten and the "Shape" rewiring apply to 2-D (N, C, H, W) graphs.
_NHWC = [0, 2, 3, 1]
_NCHW = [0, 3, 1, 2]


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_block_upsampling(node: Any, initializers: dict[str, Any]) -> bool:
    """A 2-D ConvTranspose with kernel == stride, no padding, group 1 and constant weights."""
    if node.op_type != "ConvTranspose" or len(node.input) < 2:
        return False
    weight = initializers.get(node.input[1])
    if weight is None or len(weight.dims) != 4:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in initializers:
        return False
    attrs = _attributes(node)
    kernel = list(attrs.get("kernel_shape", weight.dims[2:]))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    return (
        kernel == list(weight.dims[2:])
        and list(attrs.get("strides", [1, 1])) == kernel
        and attrs.get("group", 1) == 1
        and not any(attrs.get("pads", [0]))
        and not any(attrs.get("output_padding", [0]))
        and all(d == 1 for d in attrs.get("dilations", [1]))
        and auto_pad in (b"NOTSET", "NOTSET")
        and "output_shape" not in attrs
    )


def _replacement(node: Any, initializers: dict[str, Any], new_tensors: list[Any]) -> list[Any]:
    """The 1×1 Conv + NHWC block reshuffle that computes ``node`` exactly."""
    from onnx import helper, numpy_helper

    weight = numpy_helper.to_array(initializers[node.input[1]])  # (C_in, C_out, kh, kw)
    c_in, c_out, kh, kw = (int(d) for d in weight.shape)
    p = f"{node.output[0]}__catseg_up"

    def tensor(suffix: str, value: np.ndarray[Any, Any]) -> str:
        new_tensors.append(numpy_helper.from_array(np.ascontiguousarray(value), p + suffix))
        return p + suffix

    def ints(suffix: str, *values: int) -> str:
        return tensor(suffix, np.array(values, np.int64))

    # output channel (a·kw + b)·C_out + c of the 1×1 conv is pixel (a, b) of channel c's block
    inputs = [node.input[0], tensor("_w", weight.transpose(2, 3, 1, 0).reshape(-1, c_in, 1, 1))]
    if len(node.input) > 2 and node.input[2]:
        bias = numpy_helper.to_array(initializers[node.input[2]])
        inputs.append(tensor("_b", np.tile(bias, kh * kw)))
    steps: list[tuple[str, list[str], str, dict[str, Any]]] = [
        ("Conv", inputs, "_conv", {"kernel_shape": [1, 1]}),
        ("Transpose", [p + "_conv"], "_nhwc", {"perm": _NHWC}),
        # (N, H, W, kh·kw·C) -> (N, H, W, kh, kw, C) -> (N, H, kh, W, kw, C)
        ("Reshape", [p + "_nhwc", ints("_s6", 0, 0, 0, kh, kw, c_out)], "_6d", {}),
        ("Transpose", [p + "_6d"], "_6t", {"perm": [0, 1, 3, 2, 4, 5]}),
        # -> (N, kh·H, kw·W, C), with H and W read from the input's shape
        ("Shape", [node.input[0]], "_shape", {}),
        ("Slice", [p + "_shape", ints("_i2", 2), ints("_i4", 4)], "_hw", {}),
        ("Mul", [p + "_hw", ints("_k", kh, kw)], "_hw2", {}),
        ("Concat", [ints("_n", 0), p + "_hw2", ints("_c", c_out)], "_s4", {"axis": 0}),
        ("Reshape", [p + "_6t", p + "_s4"], "_up", {}),
    ]
    made = [
        helper.make_node(op, ins, [p + out], name=p + out, **attrs) for op, ins, out, attrs in steps
    ]
    last = helper.make_node("Transpose", [p + "_up"], list(node.output), name=p + "_t", perm=_NCHW)
    return [*made, last]


def rewrite_block_upsampling(model: Any) -> int:
    """Replace each block ConvTranspose (kernel == stride) by an exact int8-friendly form.

    Args:
        model: An ``onnx.ModelProto``; modified in place.

    Returns:
        The number of ConvTranspose nodes rewritten.
    """
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    new_tensors: list[Any] = []
    nodes: list[Any] = []
    count = 0
    for node in graph.node:
        if _is_block_upsampling(node, initializers):
            nodes.extend(_replacement(node, initializers, new_tensors))
            count += 1
        else:
            nodes.append(node)
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(new_tensors)
        used = {name for node in graph.node for name in node.input}
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return count


def read_shapes_before_dequantize(model: Any) -> int:
    """Point ``Shape`` nodes that read a DequantizeLinear output at its quantised input.

    Args:
        model: An ``onnx.ModelProto``; modified in place.

    Returns:
        The number of Shape nodes rewired.
    """
    dequantized = {
        n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
    }
    count = 0
    for node in model.graph.node:
        if node.op_type == "Shape" and node.input[0] in dequantized:
            node.input[0] = dequantized[node.input[0]]
            count += 1
    return count
