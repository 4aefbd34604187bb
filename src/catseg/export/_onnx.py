"""to_onnx: export a UNet or a Segmenter to one checked, self-describing ONNX file."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from catseg._files import atomic_write
from catseg._runtime import quiet_warnings, require
from catseg._validation import check_bool, check_path, check_size
from catseg._version import catseg_version
from catseg.errors import CheckpointError, ConfigError, ExportError
from catseg.export._runner import OnnxRunner
from catseg.models import UNet
from catseg.models.config import RECORD_FIELDS, UNetConfig

INPUT_NAME = "images"
"""Name of the exported graph's input: ``(batch, in_channels, height, width)`` float32."""

OUTPUT_NAME = "logits"
"""Name of the exported graph's output: ``(batch, num_classes, height, width)`` float32."""

MIN_OPSET = 18
MAX_OPSET = 23
_DIM_NAMES = {0: "batch", 2: "height", 3: "width"}
# Sizes used for tracing and for the post-export check: odd, so that any pad-to-stride
# branch of a model is traced, and different, so that a baked-in size is caught.
_TRACE_SIZE = (67, 93)
_CHECK_SIZES = ((37, 53), (41, 29))
_ATOL = 1e-4
# one known-harmless deprecation warning raised inside torch.export itself
_EXPORTER_NOISE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_REGISTRY_LOG = logging.getLogger("torch.onnx._internal.exporter._registration")


def _not_torchvision_notice(record: logging.LogRecord) -> bool:  # logged per op, by torch
    return not record.getMessage().startswith("torchvision is not installed")


def _unpack(model_or_segmenter: object) -> tuple[UNet, UNetConfig]:
    """Return the UNet and the record to store (a Segmenter's resolved one)."""
    if isinstance(model_or_segmenter, UNet):
        return model_or_segmenter, model_or_segmenter.config
    model = getattr(model_or_segmenter, "model", None)
    config = getattr(model_or_segmenter, "config", None)
    if isinstance(model, UNet) and isinstance(config, UNetConfig):
        return model, config
    detail = ""
    if hasattr(model_or_segmenter, "model"):
        detail = f" whose .model is {type(model).__name__}"
        if model is None:
            detail += " (a Segmenter that runs an ONNX file has no PyTorch model to export)"
    raise ConfigError(
        "model_or_segmenter must be a catseg UNet or a Segmenter (an object with a UNet "
        f"`.model` and a UNetConfig `.config`), got {type(model_or_segmenter).__name__}{detail}"
    )


@contextlib.contextmanager
def _inference_module(model: UNet) -> Iterator[nn.Module]:
    """Yield ``model`` in eval mode, restoring every submodule's mode afterwards.

    A model that is not entirely fp32 on the CPU is copied instead (the file is fp32).
    BatchNorm needs no folding here: the exporter's optimiser folds it into the
    convolutions.
    """
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    if any((t.device.type, t.dtype) != ("cpu", torch.float32) for t in floats):
        yield copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _rename_dims(graph: Any, renames: Mapping[str, str]) -> None:
    """Rename the exporter's symbolic dims (``s77``) to ``batch``/``height``/``width``."""
    ir = require("onnx_ir", "onnx")
    if not renames:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")

    def rename(value: Any) -> None:
        shape = value.shape
        if shape is None:
            return
        dims: list[Any] = []
        changed = False
        for dim in shape:
            if isinstance(dim, ir.SymbolicDim) and dim.value is not None:
                new = pattern.sub(lambda m: renames[m.group(0)], dim.value)
                changed |= new != dim.value
                dims.append(ir.SymbolicDim(new))
            else:
                dims.append(dim)
        if changed:
            value.shape = ir.Shape(dims)

    for value in graph.inputs:
        rename(value)
    for node in ir.traversal.RecursiveGraphIterator(graph):
        for value in node.outputs:
            rename(value)


def to_onnx(
    model_or_segmenter: object,
    path: str | os.PathLike[str],
    *,
    opset: int = 18,
    dynamic_size: bool = True,
    example_size: tuple[int, int] | None = None,
) -> Path:
    """Export a UNet or a Segmenter's UNet to an ONNX file, atomically.

    The model is traced in eval mode (submodule modes are restored; a model that is not
    fp32 on the CPU is copied first; its weights never change) and its record (a
    Segmenter's resolved one) is stored in the file's metadata, so :class:`OnnxRunner` and
    ``Segmenter.from_onnx`` need nothing but the file. Before the file replaces ``path``,
    onnxruntime's logits are compared with PyTorch's (max abs diff ≤ 1e-4, relative to the
    largest logit past 1), at another batch and size with ``dynamic_size=True``, so a
    graph that baked in the example size is never written.

    Args:
        model_or_segmenter: A :class:`~catseg.models.UNet`, or a Segmenter (an object
            with a UNet ``.model`` and its record as ``.config``).
        path: Destination file; its folder is created if missing. An existing file
            is replaced only once the new one is complete and checked.
        opset: ONNX opset of the file, ``18`` (the exporter's native opset) to ``23``.
        dynamic_size: If True, batch, height and width are free dimensions named
            ``batch``, ``height`` and ``width``; if False the file accepts only batch 1
            at ``example_size``.
        example_size: ``(height, width)`` of the example input. With
            ``dynamic_size=False`` it is the one size the file accepts (default: the
            Segmenter's ``image_size``, else 256×256); with ``dynamic_size=True`` it is
            only used for tracing (default 67×93, deliberately not a multiple of the
            stride).

    Returns:
        The path written.

    Raises:
        ConfigError: If ``model_or_segmenter`` is neither a UNet nor a Segmenter,
            ``path`` is not a path, ``opset`` is outside 18..23, ``dynamic_size`` is not
            a bool, or ``example_size`` is not two positive ints.
        ExportError: If the exported graph does not reproduce the PyTorch output (e.g.
            a custom encoder whose forward depends on the example size) or the
            exporter fails.
        OptionalDependencyError: If onnx, onnxscript or onnxruntime is not installed.

    Shape:
        The file maps ``images (N, in_channels, H, W)`` float32 to
        ``logits (N, num_classes, H, W)`` float32.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from catseg.models import UNet
        >>> folder = tempfile.TemporaryDirectory()
        >>> model = UNet(3, 2, init_features=4, depth=2).eval()
        >>> path = to_onnx(model, Path(folder.name) / "unet.onnx")
        >>> runner = OnnxRunner(path)
        >>> runner.num_classes, runner.in_channels, runner.config.num_classes
        (2, 3, 2)
        >>> x = torch.rand(2, 3, 37, 53)  # any batch and size
        >>> bool((runner(x) - model(x)).abs().max() < 1e-4)
        True
        >>> folder.cleanup()
    """
    model, record = _unpack(model_or_segmenter)
    path = check_path("path", path)
    if type(opset) is not int or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"opset must be an int in {MIN_OPSET}..{MAX_OPSET}, got {opset!r}")
    dynamic_size = check_bool("dynamic_size", dynamic_size)
    if example_size is not None:
        example_size = check_size("example_size", example_size)
    for name in ("onnx", "onnxscript", "onnxruntime"):
        require(name, "onnx")

    in_channels = int(model.in_channels)
    size = example_size or (_TRACE_SIZE if dynamic_size else record.image_size or (256, 256))
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2 if dynamic_size else 1, in_channels, *size, generator=generator)

    if record.encoder_instance is not None:  # the record, and the encoder's class name only
        kept = ("in_channels", "num_classes", "encoder", *RECORD_FIELDS)
        record = UNetConfig(**{f: getattr(record, f) for f in kept})
    meta = {
        "model_config": json.dumps(record.to_dict()),
        "dynamic_size": json.dumps(bool(dynamic_size)),
        "stride": str(model.stride),
        "catseg_version": json.dumps(catseg_version()),
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    with _inference_module(model) as module:
        program = _export_program(module, example, opset, dynamic_size, int(model.num_classes))
        program.model.metadata_props.update(meta)

        def write(tmp: Path) -> None:
            program.save(tmp, external_data=False)
            _verify(tmp, module, in_channels, dynamic_size, size)

        return atomic_write(path, write)


def _export_program(
    module: nn.Module, example: Tensor, opset: int, dynamic: bool, num_classes: int
) -> Any:
    """Run torch.onnx's exporter; name the free dims ``batch``, ``height``, ``width``."""
    dynamic_shapes = ({axis: torch.export.Dim.DYNAMIC for axis in _DIM_NAMES},) if dynamic else None
    try:
        with quiet_warnings(_EXPORTER_NOISE, FutureWarning), torch.no_grad():
            _REGISTRY_LOG.addFilter(_not_torchvision_notice)  # under quiet_warnings' lock
            try:
                program = torch.onnx.export(
                    module,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=dynamic_shapes,
                    verbose=False,
                )
            finally:
                _REGISTRY_LOG.removeFilter(_not_torchvision_notice)
    except Exception as err:  # torch.export raises many unrelated types
        raise ExportError(
            f"torch.onnx.export failed on {type(module).__name__} at input shape "
            f"{tuple(example.shape)}: {type(err).__name__}: {err}"
        ) from err
    if program is None:  # pragma: no cover - only the legacy exporter returns None
        raise ExportError("torch.onnx.export returned no program")
    if dynamic:
        ir = require("onnx_ir", "onnx")
        graph = program.model.graph
        dims: list[Any] = list(graph.inputs[0].shape or ())
        renames = {
            str(dims[axis].value): name
            for axis, name in _DIM_NAMES.items()
            if axis < len(dims) and isinstance(getattr(dims[axis], "value", None), str)
        }
        _rename_dims(graph, renames)
        # The crop makes the output exactly (batch, C, height, width); the exporter only
        # knows it as min(height, padded height), so say it (the check below confirms).
        dim = ir.SymbolicDim
        graph.outputs[0].shape = ir.Shape([dim("batch"), num_classes, dim("height"), dim("width")])
    return program


def _verify(
    file: Path, module: nn.Module, in_channels: int, dynamic: bool, size: tuple[int, int]
) -> None:
    """Raise ExportError unless onnxruntime reproduces ``module`` on ``file``."""
    try:
        runner = OnnxRunner(file, providers=["CPUExecutionProvider"])
    except CheckpointError as err:
        raise ExportError(f"onnxruntime cannot load the exported graph: {err}") from err
    check = next(s for s in _CHECK_SIZES if s != size) if dynamic else size
    x = torch.rand(1, in_channels, *check, generator=torch.Generator().manual_seed(1))
    # the tolerance grows with the largest logit past 1 (fp32 rounding grows with the
    # magnitude; a graph that baked in a size is off by far more)
    with torch.inference_mode():
        expected = module(x).float()
    tolerance = _ATOL * max(1.0, float(expected.abs().max()))
    try:
        got = runner(x)
        diff = float((got - expected).abs().max()) if got.shape == expected.shape else math.inf
    except ExportError:  # the graph cannot even run at this size
        diff = math.inf
    if not diff <= tolerance:
        raise ExportError(
            f"the exported ONNX graph does not reproduce the PyTorch model at input shape "
            f"{tuple(x.shape)} (max abs diff {diff:.3g} > {tolerance:.3g}); the model's forward "
            "probably depends on the example size in Python code (export with "
            "dynamic_size=False, or compute shapes with tensor operations)"
        )
