"""Forward backends of a Segmenter: a PyTorch module or an ONNX Runtime session.

A backend is everything the Segmenter needs to know about the model: a forward pass
from normalised float32 images on its device to float32 logits on the same device,
its input channels, output channels and stride when known, and the values a model
file stores (class names, input size, normalisation, threshold).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from catseg._modules import to_channels_last
from catseg._runtime import autocast, resolve_device, resolve_precision
from catseg.errors import ConfigError, ShapeError
from catseg.export._runner import OnnxRunner
from catseg.predict._options import SegmenterOptions

__all__ = ["Backend", "onnx_backend", "torch_backend"]


@dataclass(frozen=True)
class Backend:
    """A forward pass and what is known about the model behind it."""

    forward: Callable[[Tensor], Tensor]  # (N, C, h, w) -> (N, K, h, w) float32 logits
    device: torch.device
    name: str
    in_channels: int | None = None
    num_outputs: int | None = None
    stride: int = 1
    autocast_dtype: torch.dtype | None = None
    module: nn.Module | None = None
    static_size: tuple[int, int] | None = None
    stored: Mapping[str, Any] = field(default_factory=dict)


def _int_attribute(model: object, name: str) -> int | None:
    value = getattr(model, name, None)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


class _TorchForward:
    """The module's forward pass on the fast path: channels-last input, autocast, fp32 out."""

    def __init__(
        self,
        module: nn.Module,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> None:
        self.module = module
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last

    def __call__(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            logits = self.module(x)
        if not isinstance(logits, Tensor):
            raise ShapeError(
                f"the model must return a logits tensor, got {type(logits).__qualname__}"
            )
        return logits.float()


def torch_backend(model: nn.Module, options: SegmenterOptions) -> Backend:
    """The Segmenter's own eval-mode (fused, channels-last) copy of ``model`` on its device.

    The model passed in is never modified: fusing returns a new module, otherwise the
    model is deep-copied before it is moved or switched to eval mode.
    """
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device)
    fuser = getattr(model, "fuse_for_inference", None)
    module: nn.Module = fuser() if options.fuse and callable(fuser) else model
    if module is model:
        module = copy.deepcopy(model)
    module = module.eval().requires_grad_(False).to(device)
    if options.channels_last:
        module = to_channels_last(module)
    return Backend(
        forward=_TorchForward(module, device, dtype, options.channels_last),
        device=device,
        name="the model",
        in_channels=_int_attribute(model, "in_channels"),
        num_outputs=_int_attribute(model, "num_classes"),
        stride=_int_attribute(model, "stride") or 1,
        autocast_dtype=dtype,
        module=module,
    )


class _OnnxForward:
    """Run an OnnxRunner, in pieces of its fixed batch size when the file has one."""

    def __init__(self, runner: OnnxRunner, batch: int | None) -> None:
        self.runner = runner
        self.batch = batch

    def __call__(self, x: Tensor) -> Tensor:
        if self.batch is None or x.shape[0] == self.batch:
            return self.runner(x)
        step = self.batch
        n = x.shape[0]
        padded = -n % step
        if padded:
            x = torch.cat([x, x[-1:].expand(padded, -1, -1, -1)])
        out = torch.cat([self.runner(x[i : i + step]) for i in range(0, x.shape[0], step)])
        return out[:n]


def onnx_backend(runner: OnnxRunner, options: SegmenterOptions) -> Backend:
    """An ONNX Runtime session; pre- and post-processing run on the CPU in fp32."""
    if not isinstance(runner, OnnxRunner):  # pragma: no cover - callers dispatch on type
        raise ConfigError(f"expected an OnnxRunner, got {type(runner).__name__}")
    if options.precision not in ("auto", "fp32"):
        raise ConfigError(
            f"precision={options.precision!r} does not apply to an ONNX model, which runs in "
            "the file's own precision (fp32 for files from to_onnx); leave precision='auto'"
        )
    device = resolve_device("cpu" if options.device == "auto" else options.device)
    if device.type != "cpu":
        raise ConfigError(
            f"device={str(options.device)!r} does not apply to an ONNX model: onnxruntime "
            "chooses its device through providers=...; leave device='auto'"
        )
    shape = runner.input_shape
    height, width = (OnnxRunner.static_dim(d) for d in shape[2:])
    return Backend(
        forward=_OnnxForward(runner, OnnxRunner.static_dim(shape[0])),
        device=device,
        name=runner.path.name,
        in_channels=runner.in_channels,
        num_outputs=runner.num_classes,
        stride=runner.stride or 1,
        static_size=(height, width) if height is not None and width is not None else None,
        stored=runner.segmenter_fields(),
    )
