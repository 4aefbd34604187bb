"""Export a UNet (or a whole Segmenter) to ONNX and run the file with onnxruntime.

:func:`to_onnx` writes one self-contained ``.onnx`` file: the network in fp32 eval
mode with BatchNorm folded into the convolutions, taking ``images`` of shape
``(batch, in_channels, height, width)`` and returning ``logits`` of shape
``(batch, num_classes, height, width)``. With ``dynamic_size=True`` (the default) the
batch, height and width are free, including sizes that are not multiples of the
encoder's total stride: the UNet's pad-to-stride and crop-back are exported as shape
operations, and :func:`to_onnx` checks the file against PyTorch at a second size before
it replaces anything on disk.

Everything needed to use the file again is stored in its ``metadata_props``, one
JSON-encoded value per key:

=================  ==========================================================
key                value
=================  ==========================================================
``in_channels``    input channels of the network (int)
``num_classes``    logit channels (int; 1 means binary)
``model_config``   the UNet's ``UNetConfig.to_dict()`` (absent for encoder instances)
``dynamic_size``   whether height and width are free (bool)
``catseg_version`` version of catseg that wrote the file (str)
``classes``        class names (Segmenter only)
``image_size``     ``[height, width]`` the Segmenter resizes to, or ``null``
``mean``, ``std``  normalisation of the Segmenter (lists of floats)
``threshold``      binary threshold of the Segmenter (float)
=================  ==========================================================

:class:`OnnxRunner` loads such a file (or any ONNX model with one 4-D input) with
onnxruntime and runs it on torch tensors; :meth:`Segmenter.from_onnx
<catseg.predict.Segmenter.from_onnx>` builds on it.

Both need the ``onnx`` extra (``pip install "catseg[onnx]"``: onnx, onnxscript and
onnxruntime); importing this module does not import them.

Examples:
    >>> from catseg.export import INPUT_NAME, OUTPUT_NAME
    >>> INPUT_NAME, OUTPUT_NAME
    ('images', 'logits')
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from catseg._runtime import require
from catseg.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    MissingFileError,
    ShapeError,
)
from catseg.models import UNet

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxRunner", "to_onnx"]

INPUT_NAME = "images"
"""Name of the exported graph's input: ``(batch, in_channels, height, width)`` float32."""

OUTPUT_NAME = "logits"
"""Name of the exported graph's output: ``(batch, num_classes, height, width)`` float32."""

MIN_OPSET = 18
MAX_OPSET = 23
_SEGMENTER_FIELDS = ("classes", "image_size", "mean", "std", "threshold")
_DIM_NAMES = {0: "batch", 2: "height", 3: "width"}
# Sizes used for tracing and for the post-export check; neither is a multiple of 2, so
# every pad-to-stride branch of the model is traced and then exercised at another size.
_TRACE_SIZE = (67, 93)
_CHECK_SIZES = ((37, 53), (41, 29))
_ATOL = 1e-4


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence one known-harmless deprecation warning raised inside torch.export itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            category=FutureWarning,
        )
        yield


def _catseg_version() -> str:
    try:
        return importlib_metadata.version("catseg")
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "unknown"


def _jsonable(name: str, value: object) -> Any:
    """Turn a Segmenter attribute into plain JSON data or raise ConfigError naming it."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().tolist()
    elif isinstance(value, tuple):
        value = [_jsonable(name, v) for v in value]
    elif hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        value = value.tolist()
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"segmenter.{name} = {value!r} cannot be stored in the ONNX metadata as JSON"
        ) from err
    return value


def _unpack(model_or_segmenter: object) -> tuple[UNet, dict[str, Any]]:
    """Return the UNet and the Segmenter fields (empty for a bare UNet)."""
    if isinstance(model_or_segmenter, UNet):
        return model_or_segmenter, {}
    model = getattr(model_or_segmenter, "model", None)
    if isinstance(model, UNet) and all(
        hasattr(model_or_segmenter, field) for field in _SEGMENTER_FIELDS
    ):
        fields = {f: _jsonable(f, getattr(model_or_segmenter, f)) for f in _SEGMENTER_FIELDS}
        return model, fields
    raise TypeError(
        "to_onnx expects a catseg UNet or a Segmenter (an object with a UNet `.model` and "
        f"{', '.join(f'`.{f}`' for f in _SEGMENTER_FIELDS)}), "
        f"got {type(model_or_segmenter).__name__}"
    )


def _check_size(name: str, size: object) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ConfigError(f"{name} must be (height, width) with two ints >= 1, got {size!r}")
    return int(size[0]), int(size[1])


def _export_copy(model: UNet) -> nn.Module:
    """A new CPU fp32 eval-mode module with BatchNorm folded in; ``model`` is untouched."""
    fused: nn.Module = model.fuse_for_inference().to(device="cpu", dtype=torch.float32)
    to: Any = fused.to  # nn.Module.to accepts memory_format; its stubs do not say so
    contiguous: nn.Module = to(memory_format=torch.contiguous_format)
    return contiguous.eval()


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


def _max_abs_diff(runner: OnnxRunner, module: nn.Module, x: Tensor) -> float:
    with torch.inference_mode():
        expected = module(x)
    got = runner(x)
    if got.shape != expected.shape:
        return float("inf")
    return float((got - expected).abs().max())


def to_onnx(
    model_or_segmenter: object,
    path: str | os.PathLike[str],
    *,
    opset: int = 18,
    dynamic_size: bool = True,
    example_size: tuple[int, int] | None = None,
) -> Path:
    """Export a UNet or a Segmenter's UNet to an ONNX file, atomically.

    The exported network is a fused copy of the model (BatchNorm folded into the
    convolutions, eval mode, fp32, CPU); the model passed in is not changed. A
    Segmenter's ``classes``, ``image_size``, ``mean``, ``std`` and ``threshold`` are
    stored in the file's metadata (see the module docstring), so :class:`OnnxRunner` and
    ``Segmenter.from_onnx`` need nothing but the file. Before the file replaces
    ``path``, it is run with onnxruntime and compared with the PyTorch model (max abs
    diff ≤ 1e-4 on logits); with ``dynamic_size=True`` the comparison uses batch and
    sizes other than the traced ones, so a graph that baked in the example size is
    never written.

    Args:
        model_or_segmenter: A :class:`~catseg.models.UNet`, or a Segmenter (an object
            with a UNet ``.model`` and ``.classes``, ``.image_size``, ``.mean``,
            ``.std``, ``.threshold``).
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
        TypeError: If ``model_or_segmenter`` is neither a UNet nor a Segmenter.
        ConfigError: If ``opset`` is outside 18..23, ``example_size`` is not two
            positive ints, a Segmenter field cannot be stored as JSON, or the exported
            graph does not reproduce the PyTorch output (e.g. a custom encoder whose
            forward depends on the example size).
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
        >>> runner.num_classes, runner.in_channels, runner.metadata["num_classes"]
        (2, 3, 2)
        >>> x = torch.rand(2, 3, 37, 53)  # any batch and size
        >>> bool((runner(x) - model(x)).abs().max() < 1e-4)
        True
        >>> folder.cleanup()
    """
    model, fields = _unpack(model_or_segmenter)
    if (
        not isinstance(opset, int)
        or isinstance(opset, bool)
        or not (MIN_OPSET <= opset <= MAX_OPSET)
    ):
        raise ConfigError(f"opset must be an int in {MIN_OPSET}..{MAX_OPSET}, got {opset!r}")
    if example_size is not None:
        example_size = _check_size("example_size", example_size)
    for name in ("onnx", "onnxscript", "onnxruntime"):
        require(name, "onnx")
    path = Path(path)

    module = _export_copy(model)
    in_channels = int(model.in_channels)
    if dynamic_size:
        height, width = example_size or _TRACE_SIZE
        batch = 2
    else:
        image_size = fields.get("image_size")
        default = tuple(image_size) if image_size is not None else (256, 256)
        height, width = example_size or _check_size("segmenter.image_size", default)
        batch = 1
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(batch, in_channels, height, width, generator=generator)

    dynamic_shapes = None
    if dynamic_size:
        dynamic_shapes = ({axis: torch.export.Dim.DYNAMIC for axis in _DIM_NAMES},)
    with _quiet_exporter(), torch.no_grad():
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
    if program is None:  # pragma: no cover - only the legacy exporter returns None
        raise ConfigError("torch.onnx.export returned no program")
    graph = program.model.graph
    if dynamic_size:
        dims: list[Any] = list(graph.inputs[0].shape or ())
        renames = {
            str(dims[axis].value): name
            for axis, name in _DIM_NAMES.items()
            if axis < len(dims) and isinstance(getattr(dims[axis], "value", None), str)
        }
        _rename_dims(graph, renames)

    meta: dict[str, Any] = {
        "in_channels": in_channels,
        "num_classes": int(model.num_classes),
        "dynamic_size": bool(dynamic_size),
        "catseg_version": _catseg_version(),
    }
    with contextlib.suppress(ConfigError):  # an encoder instance has no rebuildable config
        meta["model_config"] = model.config.to_dict()
    meta.update(fields)
    for key, value in meta.items():
        program.model.metadata_props[key] = json.dumps(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        program.save(tmp, external_data=False)
        _verify(tmp, module, in_channels, dynamic_size, (height, width))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _verify(
    file: Path, module: nn.Module, in_channels: int, dynamic: bool, size: tuple[int, int]
) -> None:
    """Raise ConfigError unless onnxruntime reproduces ``module`` on ``file``."""
    runner = OnnxRunner(file, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    if dynamic:
        check = next(s for s in _CHECK_SIZES if s != size)
        x = torch.rand(1, in_channels, *check, generator=generator)
    else:
        x = torch.rand(1, in_channels, *size, generator=generator)
    diff = _max_abs_diff(runner, module, x)
    if not diff <= _ATOL:
        raise ConfigError(
            f"the exported ONNX graph does not reproduce the PyTorch model at input shape "
            f"{tuple(x.shape)} (max abs diff {diff:.3g} > {_ATOL}); the model's forward "
            "probably depends on the example size in Python code (export with "
            "dynamic_size=False, or compute shapes with tensor operations)"
        )


class OnnxRunner:
    """Run an exported ONNX segmentation model with onnxruntime on torch tensors.

    Args:
        path: The ``.onnx`` file (written by :func:`to_onnx` or any model with one
            4-D float input and a 4-D logits output).
        providers: onnxruntime execution providers in priority order; default: CUDA
            if this onnxruntime build has it, then the CPU.

    Attributes:
        path: The file loaded.
        providers: The providers the session uses.
        metadata: The file's ``metadata_props``, each value parsed as JSON (kept as
            a string when it is not JSON); ``{}`` when the file has none.
        input_name: Name of the graph input.
        output_name: Name of the first graph output (the logits).
        num_classes: Logit channels, from the output shape or the metadata.
        in_channels: Input channels, from the input shape or the metadata; None if
            neither tells.

    Raises:
        MissingFileError: If ``path`` does not exist.
        CheckpointError: If the file is not a loadable ONNX model, does not have
            exactly one 4-D input, or its number of classes cannot be determined.
        ConfigError: If a requested provider is not available.
        OptionalDependencyError: If onnxruntime is not installed.

    Shape:
        ``x (N, in_channels, H, W)`` float32 ``-> logits (N, num_classes, H, W)`` float32.

    Examples:
        Any ONNX model with one 4-D input runs; here a one-node graph built by hand
        (files from :func:`to_onnx` also carry metadata):

        >>> import tempfile
        >>> from pathlib import Path
        >>> import onnx
        >>> import torch
        >>> from onnx import TensorProto, helper
        >>> graph = helper.make_graph(
        ...     [helper.make_node("Neg", ["x"], ["y"])],
        ...     "negate",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        ... )
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = Path(folder.name) / "negate.onnx"
        >>> onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
        >>> runner = OnnxRunner(path)
        >>> runner.in_channels, runner.num_classes, runner.metadata
        (1, 1, {})
        >>> runner(torch.ones(2, 1, 3, 5)).sum().item()
        -30.0
        >>> folder.cleanup()
    """

    def __init__(self, path: str | os.PathLike[str], *, providers: Sequence[str] | None = None):
        ort = require("onnxruntime", "onnx")
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"ONNX file {str(self.path)!r} does not exist")
        available = list(ort.get_available_providers())
        if providers is None:
            chosen = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        else:
            if isinstance(providers, str):
                raise ConfigError(f"providers must be a sequence of names, got {providers!r}")
            chosen = list(providers)
            missing = [p for p in chosen if p not in available]
            if missing or not chosen:
                raise ConfigError(
                    f"onnxruntime providers {missing or chosen} are not available; "
                    f"this onnxruntime offers {available}"
                )
        try:
            self._session = ort.InferenceSession(str(self.path), providers=chosen)
        except Exception as err:  # onnxruntime's errors derive from Exception directly
            raise CheckpointError(
                f"{str(self.path)!r} is not a loadable ONNX model: {type(err).__name__}: {err}"
            ) from err
        self.providers: list[str] = list(self._session.get_providers())
        self.metadata: dict[str, Any] = _parse_metadata(
            self._session.get_modelmeta().custom_metadata_map
        )

        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or not outputs:
            raise CheckpointError(
                f"{str(self.path)!r} must have one 4-D input (N, C, H, W) and an output, got "
                f"inputs {[(i.name, i.shape) for i in inputs]}"
            )
        self.input_name: str = inputs[0].name
        self.output_name: str = outputs[0].name
        self._input_shape: list[Any] = list(inputs[0].shape)
        self.in_channels: int | None = _static_dim(self._input_shape[1]) or _meta_int(
            self.metadata, "in_channels"
        )
        out_shape = list(outputs[0].shape)
        num_classes = (_static_dim(out_shape[1]) if len(out_shape) == 4 else None) or _meta_int(
            self.metadata, "num_classes"
        )
        if num_classes is None:
            raise CheckpointError(
                f"{str(self.path)!r}: cannot tell the number of classes (output shape "
                f"{out_shape}, no 'num_classes' metadata)"
            )
        self.num_classes: int = num_classes

    def __repr__(self) -> str:
        return (
            f"OnnxRunner({str(self.path)!r}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, providers={self.providers})"
        )

    def __call__(self, x: Tensor) -> Tensor:
        """Run the model on a batch of images.

        Args:
            x: float32 images, any device and memory format (copied to the CPU).

        Returns:
            float32 logits on ``x``'s device.

        Raises:
            TypeError: If ``x`` is not a tensor.
            DTypeError: If ``x`` is not float32.
            ShapeError: If ``x`` is not 4-D, has the wrong channel count, or a size
                the file does not accept (static files take one size).

        Shape:
            ``(N, in_channels, H, W) -> (N, num_classes, H, W)``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"OnnxRunner expects a torch.Tensor, got {type(x).__name__}")
        if x.dtype != torch.float32:
            raise DTypeError(f"OnnxRunner expects float32 images, got {x.dtype}")
        if x.ndim != 4:
            raise ShapeError(f"OnnxRunner expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        for axis, (got, want) in enumerate(zip(x.shape, self._input_shape, strict=True)):
            expected = _static_dim(want)
            if expected is not None and got != expected:
                raise ShapeError(
                    f"{self.path.name} expects input shape {self._input_shape} "
                    f"(N, C, H, W), got {tuple(x.shape)} (axis {axis} differs)"
                )
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{self.path.name} expects {self.in_channels} input channels, got shape "
                f"{tuple(x.shape)}"
            )
        array = x.detach().to("cpu").contiguous().numpy()
        (out,) = self._session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(out).to(x.device)


def _static_dim(dim: object) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _meta_int(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, text in props.items():
        try:
            parsed[key] = json.loads(text)
        except ValueError:
            parsed[key] = text
    return parsed
