"""OnnxRunner: run an exported ONNX segmentation model with onnxruntime on torch tensors."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from catseg import _validation as check
from catseg._runtime import require
from catseg.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    ExportError,
    MissingFileError,
    ShapeError,
)

__all__ = ["OnnxRunner"]


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
        stride: The model's total stride from the ``stride`` metadata; None if absent.

    Raises:
        MissingFileError: If ``path`` does not exist.
        CheckpointError: If the file is not a loadable ONNX model, does not have
            exactly one 4-D input, its number of classes cannot be determined, or a
            catseg metadata value is malformed (the message names the key, the value
            and what is expected).
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
        >>> runner.in_channels, runner.num_classes, runner.metadata
        (1, 1, {})
        >>> runner(torch.ones(2, 1, 3, 5)).sum().item()
        -30.0
        >>> folder.cleanup()
    """

    def __init__(self, path: str | os.PathLike[str], *, providers: Sequence[str] | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"path must be a str or os.PathLike, got {type(path).__name__}")
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
            if (
                isinstance(providers, str)
                or not isinstance(providers, Sequence)
                or not all(isinstance(p, str) for p in providers)
            ):
                raise ConfigError(
                    f"providers must be None or a sequence of provider names, got {providers!r}"
                )
            chosen = list(providers)
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
                str(self.path), sess_options=options, providers=chosen
            )
        except Exception as err:  # onnxruntime's errors derive from Exception directly
            raise CheckpointError(
                f"{str(self.path)!r} is not a loadable ONNX model: {type(err).__name__}: {err}"
            ) from err
        self.providers: list[str] = list(self._session.get_providers())
        self.metadata: dict[str, Any] = _parse_metadata(
            self._session.get_modelmeta().custom_metadata_map
        )
        _check_metadata(self.metadata, self.path)

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
        self.stride: int | None = _meta_int(self.metadata, "stride")

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
        return _static_dim(dim)

    def segmenter_fields(self) -> dict[str, Any]:
        """The Segmenter settings stored in the metadata (validated), by name.

        Keys present among ``classes``, ``image_size``, ``mean``, ``std``, ``mode`` and
        ``threshold``; ``image_size`` is a tuple or ``None``.

        Examples:
            >>> "classes" in OnnxRunner.segmenter_fields.__doc__
            True
        """
        fields = {k: self.metadata[k] for k in _SEGMENTER_KEYS if k in self.metadata}
        if fields.get("image_size") is not None:
            fields["image_size"] = tuple(fields["image_size"])
        return fields

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

        Shape:
            ``(N, in_channels, H, W) -> (N, num_classes, H, W)``.
        """
        if not isinstance(x, Tensor):
            raise DTypeError(f"OnnxRunner expects a torch.Tensor, got {type(x).__name__}")
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
        try:
            (out,) = self._session.run([self.output_name], {self.input_name: array})
        except Exception as err:  # onnxruntime's errors derive from Exception directly
            raise ExportError(
                f"onnxruntime could not run {self.path.name} on input shape {tuple(x.shape)}: "
                f"{type(err).__name__}: {err}"
            ) from err
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


_SEGMENTER_KEYS = ("classes", "image_size", "mean", "std", "threshold", "mode")


def _optional_size(name: str, value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{name} must be null or [height, width] of positive ints, got {value!r}")
    return check.check_size(name, value)


def _mean(name: str, value: object) -> object:
    return _norm(name, value, None)


def _std(name: str, value: object) -> object:
    return _norm(name, value, 0.0)


def _norm(name: str, value: object, low: float | None) -> object:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name} must be a non-empty list of numbers, got {value!r}")
    for i, v in enumerate(value):
        check.check_finite_float(f"{name}[{i}]", v, low=low, low_open=low is not None)
    return value


def _bool(name: str, value: object) -> object:
    return check.check_bool(name, value)


def _string(name: str, value: object) -> object:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _mapping(name: str, value: object) -> object:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {value!r}")
    return value


def _classes(name: str, value: object) -> object:
    names = check.check_class_names(name, value)
    if not 1 <= len(names) <= 256:
        raise ConfigError(f"{name} must name between 1 and 256 labels, got {len(names)}")
    return names


def _threshold(name: str, value: object) -> object:
    if isinstance(value, list) and value:  # one per label (multilabel)
        return [check.check_probability(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return check.check_probability(name, value)


def _mode(name: str, value: object) -> object:
    return check.check_choice(name, value, ("binary", "multiclass", "multilabel"))


_METADATA_CHECKS: dict[str, Any] = {
    "in_channels": check.check_positive_int,
    "num_classes": check.check_positive_int,
    "stride": check.check_positive_int,
    "dynamic_size": _bool,
    "catseg_version": _string,
    "model_config": _mapping,
    "classes": _classes,
    "image_size": _optional_size,
    "mean": _mean,
    "std": _std,
    "threshold": _threshold,
    "mode": _mode,
}


def _check_metadata(meta: Mapping[str, Any], path: Path) -> None:
    """Raise CheckpointError naming the key unless every catseg metadata value is valid."""
    for key, rule in _METADATA_CHECKS.items():
        if key in meta:
            try:
                rule(f"metadata {key!r}", meta[key])
            except ConfigError as err:
                raise CheckpointError(f"{str(path)!r} has malformed ONNX metadata: {err}") from None
    if "classes" in meta and len(meta["classes"]) < 2 and meta.get("mode") != "multilabel":
        raise CheckpointError(
            f"{str(path)!r} has malformed ONNX metadata: 'classes' must name at least 2 "
            f"labels unless 'mode' is 'multilabel', got {meta['classes']!r}"
        )
    if "mean" in meta and "std" in meta and len(meta["mean"]) != len(meta["std"]):
        raise CheckpointError(
            f"{str(path)!r} has malformed ONNX metadata: 'mean' and 'std' must have the same "
            f"length, got {meta['mean']!r} and {meta['std']!r}"
        )
