"""OnnxRunner: run an exported ONNX segmentation model with onnxruntime on torch tensors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from catseg._bounds import parse_json, short
from catseg._runtime import require
from catseg._validation import check_path
from catseg.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    ExportError,
    MissingFileError,
    ShapeError,
)
from catseg.models.config import UNetConfig, read_config


class OnnxRunner:
    """Run an exported ONNX segmentation model with onnxruntime on torch tensors.

    Args:
        path: The ``.onnx`` file (written by :func:`to_onnx` or any model with one
            4-D float input and a 4-D logits output).
        providers: onnxruntime execution providers in priority order; default: CUDA
            if this onnxruntime build has it, then the CPU.

    Attributes:
        path: The file loaded.
        metadata: The file's ``metadata_props``, each value parsed as JSON (kept as text
            where it is not JSON).
        providers: The providers the session uses.
        config: The model's record (:class:`~catseg.models.UNetConfig`) read from the
            ``model_config`` metadata entry with the same checks as a checkpoint's;
            a file not written by catseg gets defaults for its channel counts.
        input_name: Name of the graph input.
        output_name: Name of the first graph output (the logits).
        num_classes: Logit channels, from the output shape.
        in_channels: Input channels, from the record (the input shape for other files).
        stride: The model's total stride from the ``stride`` metadata; None if absent.

    Raises:
        MissingFileError: If ``path`` does not exist.
        CheckpointError: If the file is not a loadable ONNX model, does not have
            exactly one 4-D input, its number of classes cannot be determined, or its
            model record is invalid (the message names the file and the field).
        ConfigError: If ``path`` or ``providers`` has the wrong type, or a requested
            provider is not available.
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
        >>> runner.in_channels, runner.num_classes, runner.config.mode
        (1, 1, 'binary')
        >>> runner(torch.ones(2, 1, 3, 5)).sum().item()
        -30.0
        >>> folder.cleanup()
    """

    def __init__(self, path: str | os.PathLike[str], *, providers: Sequence[str] | None = None):
        self.path = check_path("path", path)
        ort = require("onnxruntime", "onnx")
        if not self.path.is_file():
            raise MissingFileError(f"ONNX file {str(self.path)!r} does not exist")
        available = list(ort.get_available_providers())
        preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
        chosen = [p for p in preferred if p in available] if providers is None else providers
        sequence = isinstance(chosen, Sequence) and not isinstance(chosen, str)
        if not sequence or not all(isinstance(p, str) for p in chosen):
            raise ConfigError(
                f"providers must be None or a sequence of provider names, got {providers!r}"
            )
        missing = [p for p in chosen if p not in available]
        if missing or not chosen:
            raise ConfigError(
                f"onnxruntime providers {missing or chosen} are not available; "
                f"this onnxruntime offers {available}"
            )
        try:
            options = ort.SessionOptions()
            # Idle worker threads sleep instead of spinning: a spinning pool would starve
            # the PyTorch pre/post-processing that runs between two calls on the same cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(chosen)
            )
        except Exception as err:  # onnxruntime's errors derive from Exception directly
            raise CheckpointError(
                f"{str(self.path)!r} is not a loadable ONNX model: {type(err).__name__}: {err}"
            ) from err
        self.providers: list[str] = list(self._session.get_providers())
        self.metadata = _parse(self._session.get_modelmeta().custom_metadata_map, self.path)

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
        out_shape = list(outputs[0].shape)
        num_classes = self.static_dim(out_shape[1]) if len(out_shape) == 4 else None
        if num_classes is None:
            raise CheckpointError(
                f"{self.path}: cannot tell the number of classes (output shape {out_shape})"
            )
        channels = self.static_dim(self._input_shape[1])
        if "model_config" in self.metadata:  # read like every record
            self.config = read_config(self.metadata["model_config"], self.path)
        else:  # not written by catseg: only the graph's facts are known
            self.config = UNetConfig(in_channels=channels or 3, num_classes=num_classes)
        self.in_channels: int = self.config.in_channels
        self.num_classes: int = num_classes
        for name, recorded, graph in (
            ("num_classes", self.config.num_classes, num_classes),
            ("in_channels", self.in_channels, channels or self.in_channels),
        ):
            if recorded != graph:
                raise CheckpointError(
                    f"{self.path}: invalid model record: {name} is {recorded} but the graph "
                    f"has {graph}"
                )
        stride = self.metadata.get("stride")
        ok = isinstance(stride, int) and not isinstance(stride, bool) and 0 < stride < 4096
        if stride is not None and not ok:
            raise CheckpointError(
                f"{self.path}: metadata 'stride' is {short(stride)}, expected an int in 1..4095"
            )
        self.stride: int | None = stride

    @property
    def input_shape(self) -> list[int | str | None]:
        """The graph input's shape: an int per fixed axis, a name or ``None`` per free one.

        Examples:
            >>> OnnxRunner.static_dim("height") is None, OnnxRunner.static_dim(3)
            (True, 3)
        """
        return list(self._input_shape)

    @staticmethod
    def static_dim(dim: object) -> int | None:
        """``dim`` if it is a fixed size (a positive int), else ``None``.

        Examples:
            >>> OnnxRunner.static_dim(0) is None
            True
        """
        return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None

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
            DTypeError: If ``x`` is not a float32 tensor.
            ShapeError: If ``x`` is not 4-D, has the wrong channel count, or has a size
                the file does not accept (static files take one size).
            ExportError: If onnxruntime fails on it.
        """
        if not isinstance(x, Tensor):
            raise DTypeError(f"OnnxRunner expects a torch.Tensor, got {type(x).__name__}")
        if x.dtype != torch.float32:
            raise DTypeError(f"OnnxRunner expects float32 images, got {x.dtype}")
        if x.ndim != 4:
            raise ShapeError(f"OnnxRunner expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        for axis, (got, want) in enumerate(zip(x.shape, self._input_shape, strict=True)):
            expected = self.static_dim(want)
            if expected is not None and got != expected:
                raise ShapeError(
                    f"{self.path.name} expects input shape {self._input_shape} "
                    f"(N, C, H, W), got {tuple(x.shape)} (axis {axis} differs)"
                )
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{self.path.name} expects {self.in_channels} input channels, got shape "
                f"{tuple(x.shape)}"
            )
        array = x.detach().to("cpu").contiguous().numpy()
        try:
            (out,) = self._session.run([self.output_name], {self.input_name: array})
        except Exception as err:  # onnxruntime's errors derive from Exception directly
            raise ExportError(
                f"onnxruntime could not run {self.path.name} on input shape {tuple(x.shape)}: "
                f"{type(err).__name__}: {err}"
            ) from err
        return torch.from_numpy(out).to(x.device)


def _parse(props: Mapping[str, str], path: Path) -> dict[str, Any]:
    """Each metadata value parsed as bounded JSON, kept as text where it is not JSON."""
    parsed: dict[str, Any] = {}
    for key, text in props.items():
        try:
            parsed[key] = parse_json(text.encode(), f"{path} (metadata {key!r})", CheckpointError)
        except CheckpointError:
            parsed[key] = text
    return parsed
