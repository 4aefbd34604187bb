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
from catseg._validation import check_bool
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
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def make_backend(
    model: object,
    device: str | torch.device,
    precision: Precision,
    channels_last: bool,
    fuse: bool,
) -> Backend:
    """The backend of ``model``: a module (its own copy) or an :class:`OnnxRunner`."""
    check_bool("channels_last", channels_last)
    check_bool("fuse", fuse)
    if not isinstance(device, str | torch.device):
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
        )
    if isinstance(model, OnnxRunner):
        return _onnx_backend(model, device, precision)
    if isinstance(model, nn.Module):
        return _torch_backend(model, resolve_device(device), precision, channels_last, fuse)
    raise ConfigError(
        "model must be a torch.nn.Module or a catseg.export.OnnxRunner, got "
        f"{type(model).__qualname__}"
    )


def _torch_backend(
    model: nn.Module, device: torch.device, precision: Precision, channels_last: bool, fuse: bool
) -> Backend:
    """The Segmenter's own eval-mode (fused, channels-last) copy of ``model`` on its device.

    The model passed in is never modified: fusing returns a new module, otherwise the
    model is deep-copied before it is moved or switched to eval mode.
    """
    dtype = resolve_precision(precision, device)
    fuser = getattr(model, "fuse_for_inference", None)
    module: nn.Module = fuser() if fuse and callable(fuser) else copy.deepcopy(model)
    module = module.eval().requires_grad_(False).to(device)
    if channels_last:
        module = to_channels_last(module)

    def forward(x: Tensor) -> Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = module(x)
        if not isinstance(logits, Tensor):
            raise ShapeError(
                f"the model must return a logits tensor, got {type(logits).__qualname__}"
            )
        return logits.float()

    config = getattr(model, "config", None)
    return Backend(
        forward=forward,
        device=device,
        name="the model",
        config=config if isinstance(config, UNetConfig) else None,
        in_channels=_int_attribute(model, "in_channels"),
        num_outputs=_int_attribute(model, "num_classes"),
        stride=_int_attribute(model, "stride") or 1,
        autocast_dtype=dtype,
        module=module,
    )


def _onnx_backend(runner: OnnxRunner, device: str | torch.device, precision: Precision) -> Backend:
    """An ONNX Runtime session, run in pieces of the file's fixed batch size if it has one."""
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
    batch, _, height, width = (OnnxRunner.static_dim(d) for d in runner.input_shape)

    def forward(x: Tensor) -> Tensor:
        if batch is None or x.shape[0] == batch:
            return runner(x)
        n = x.shape[0]
        x = torch.cat([x, x[-1:].expand(-n % batch, -1, -1, -1)])
        return torch.cat([runner(x[i : i + batch]) for i in range(0, x.shape[0], batch)])[:n]

    return Backend(
        forward=forward,
        device=torch.device("cpu"),
        name=runner.path.name,
        config=runner.config,
        in_channels=runner.config.in_channels,
        num_outputs=runner.config.num_classes,
        stride=runner.stride or 1,
        static_size=(height, width) if height is not None and width is not None else None,
    )
