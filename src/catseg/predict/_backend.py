"""Forward backends of a Segmenter: a PyTorch module or an ONNX Runtime session.

A backend is what the Segmenter needs to know about the model: a forward pass from
normalised float32 images on its device to float32 logits on the same device, and the
model's record (:class:`~catseg.models.config.UNetConfig`) when it has one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from catseg._modules import to_channels_last
from catseg._runtime import Precision, autocast, resolve_device, resolve_precision
from catseg.errors import ConfigError, ShapeError
from catseg.export._runner import OnnxRunner
from catseg.models.config import UNetConfig


@dataclass(frozen=True)
class Backend:
    """A forward pass and what is known about the model behind it."""

    forward: Callable[[Tensor], Tensor]  # (N, C, h, w) -> (N, K, h, w) float32 logits
    device: torch.device
    name: str
    config: UNetConfig | None  # the model's record; None for a module without one
    in_channels: int | None = None
    num_outputs: int | None = None
    stride: int = 1
    autocast_dtype: torch.dtype | None = None
    module: nn.Module | None = None
    static_size: tuple[int, int] | None = None


def _int_attribute(model: object, name: str) -> int | None:
    value = getattr(model, name, None)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


class _TorchForward:
    """The module's forward pass on the fast path: channels-last input, autocast, fp32 out."""

    def __init__(
        self, module: nn.Module, device: torch.device, dtype: torch.dtype | None, cl: bool
    ):
        self.module, self.device, self.dtype, self.channels_last = module, device, dtype, cl

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


def torch_backend(
    model: nn.Module,
    device: str | torch.device,
    precision: Precision,
    channels_last: bool,
    fuse: bool,
) -> Backend:
    """The Segmenter's own eval-mode (fused, channels-last) copy of ``model`` on its device.

    The model passed in is never modified: fusing returns a new module, otherwise the
    model is deep-copied before it is moved or switched to eval mode.
    """
    resolved = resolve_device(device)
    dtype = resolve_precision(precision, resolved)
    fuser = getattr(model, "fuse_for_inference", None)
    module: nn.Module = fuser() if fuse and callable(fuser) else copy.deepcopy(model)
    module = module.eval().requires_grad_(False).to(resolved)
    if channels_last:
        module = to_channels_last(module)
    config = getattr(model, "config", None)
    return Backend(
        forward=_TorchForward(module, resolved, dtype, channels_last),
        device=resolved,
        name="the model",
        config=config if isinstance(config, UNetConfig) else None,
        in_channels=_int_attribute(model, "in_channels"),
        num_outputs=_int_attribute(model, "num_classes"),
        stride=_int_attribute(model, "stride") or 1,
        autocast_dtype=dtype,
        module=module,
    )


class _OnnxForward:
    """Run an OnnxRunner, in pieces of its fixed batch size when the file has one."""

    def __init__(self, runner: OnnxRunner, batch: int | None) -> None:
        self.runner, self.batch = runner, batch

    def __call__(self, x: Tensor) -> Tensor:
        if self.batch is None or x.shape[0] == self.batch:
            return self.runner(x)
        n, step = x.shape[0], self.batch
        if n % step:
            x = torch.cat([x, x[-1:].expand(step - n % step, -1, -1, -1)])
        return torch.cat([self.runner(x[i : i + step]) for i in range(0, x.shape[0], step)])[:n]


def onnx_backend(runner: OnnxRunner, device: str | torch.device, precision: Precision) -> Backend:
    """An ONNX Runtime session; pre- and post-processing run on the CPU in fp32."""
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"precision={precision!r} does not apply to an ONNX model, which runs in the "
            "file's own precision (fp32 for files from to_onnx); leave precision='auto'"
        )
    if device not in ("auto", "cpu") and resolve_device(device).type != "cpu":
        raise ConfigError(
            f"device={str(device)!r} does not apply to an ONNX model: onnxruntime chooses "
            "its device through providers=...; leave device='auto'"
        )
    shape = runner.input_shape
    height, width = (OnnxRunner.static_dim(d) for d in shape[2:])
    config = runner.config
    return Backend(
        forward=_OnnxForward(runner, OnnxRunner.static_dim(shape[0])),
        device=torch.device("cpu"),
        name=runner.path.name,
        config=config,
        in_channels=config.in_channels,
        num_outputs=config.num_classes,
        stride=runner.stride or 1,
        static_size=(height, width) if height is not None and width is not None else None,
    )
