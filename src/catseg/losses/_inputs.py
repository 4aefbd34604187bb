"""Input and target checks, target encodings and activations shared by every loss.

Targets by mode (``ignore_index`` marks pixels, or in multilabel mode (pixel, label)
pairs, that are left out):

* binary: ``(N, H, W)`` integer, or ``(N, 1, H, W)`` integer or float ``{0, 1}``;
* multiclass: ``(N, H, W)`` integer labels in ``[0, C - 1]``;
* multilabel: ``(N, K, H, W)`` multi-hot, integer, float ``{0, 1}`` or bool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from catseg.errors import DataError, DTypeError, ShapeError
from catseg.losses._options import LossMode

__all__ = [
    "activate",
    "check_input",
    "class_labels",
    "compute_dtype",
    "float_input",
    "no_autocast",
    "sigmoid_target",
    "weighted_mean",
]


def check_input(input: Tensor, target: Tensor, mode: LossMode, from_logits: bool = True) -> None:
    """Check the tensor types, the input dtype and rank, and the channel count for ``mode``."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise DTypeError(
            f"input and target must be tensors, got {type(input).__name__} and "
            f"{type(target).__name__}"
        )
    if not input.is_floating_point():
        raise DTypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.ndim != 4:
        raise ShapeError(f"input must have shape (N, C, H, W), got {tuple(input.shape)}")
    channels = input.shape[1]
    if mode == "binary" and channels != 1:
        raise ShapeError(
            f"binary mode expects input with 1 channel, got shape {tuple(input.shape)} "
            "(use mode='multiclass' for C >= 2, or mode='multilabel')"
        )
    if mode == "multiclass" and channels < 2:
        raise ShapeError(
            f"multiclass mode expects input with C >= 2 channels, got shape "
            f"{tuple(input.shape)} (use mode='binary' for one logit channel)"
        )
    if mode == "multilabel" and channels < 1:
        raise ShapeError(f"multilabel mode expects K >= 1 channels, got {tuple(input.shape)}")
    if not from_logits and input.numel():
        low, high = (float(v) for v in torch.aminmax(input.detach()))
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"from_logits=False expects probabilities in [0, 1], got input values in "
                f"[{low:.4g}, {high:.4g}]; pass raw model outputs with from_logits=True "
                "(the default)"
            )


def compute_dtype(input: Tensor) -> torch.dtype:
    """float64 for float64 input, float32 otherwise (also for bf16/fp16)."""
    return torch.float64 if input.dtype == torch.float64 else torch.float32


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Autocast off, so that sums stay in fp32 inside a bf16/fp16 autocast region."""
    if device.type in ("cpu", "cuda"):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


@contextlib.contextmanager
def float_input(
    input: Tensor, target: Tensor, mode: LossMode, from_logits: bool = True
) -> Iterator[Tensor]:
    """Check ``input``/``target`` for ``mode``, then yield ``input`` in its compute dtype.

    The opening of every loss: :func:`check_input`, autocast off for the block, and the
    input cast to :func:`compute_dtype` (float32, or float64 for float64 input).
    """
    check_input(input, target, mode, from_logits)
    with no_autocast(input.device):
        yield input.to(compute_dtype(input))


def weighted_mean(values: Tensor, weights: Tensor, dim: int | None = None) -> Tensor:
    """``Σ w·v / Σ w`` over everything (or over ``dim``); 0 where the weights sum to 0.

    Multiplying by the weights (not selecting with them) keeps a NaN of a left-out entry
    visible, so a NaN logit anywhere makes the loss NaN.
    """
    if dim is None:
        total = weights.sum()
        return (values * weights).sum() / total.clamp_min(torch.finfo(total.dtype).tiny)
    total = weights.sum(dim)
    return (values * weights).sum(dim) / total.clamp_min(torch.finfo(total.dtype).tiny)


def activate(x: Tensor, mode: LossMode) -> Tensor:
    """Probabilities from logits: softmax over channels (multiclass) or sigmoid."""
    return torch.softmax(x, dim=1) if mode == "multiclass" else torch.sigmoid(x)


def _shape_error(target: Tensor, expected: tuple[int, ...], input_shape: torch.Size) -> ShapeError:
    return ShapeError(
        f"target has shape {tuple(target.shape)}, expected {expected} to match input "
        f"shape {tuple(input_shape)}"
    )


def _check_label_range(labels: Tensor, num_labels: int, mode: str, ignore: int | None) -> None:
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= num_labels:
            bad = low if low < 0 else high
            raise DataError(
                f"target contains label {bad}; {mode} mode expects labels in "
                f"[0, {num_labels - 1}] or ignore_index={ignore}"
            )


def _checked_labels(
    target: Tensor, num_labels: int, mode: str, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """``(labels, valid)`` of an integer target: int64 labels with ignored pixels set to 0."""
    labels = target.long()
    if ignore_index is not None:
        valid = labels != ignore_index
        labels = labels.masked_fill(~valid, 0)
    else:
        valid = torch.ones_like(labels, dtype=torch.bool)
    _check_label_range(labels, num_labels, mode, ignore_index)
    return labels, valid


def _float_zero_one(target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    g = target if target.dtype == torch.float64 else target.float()
    if ignore_index is not None:
        valid = g != ignore_index
        g = torch.where(valid, g, torch.zeros((), dtype=g.dtype, device=g.device))
    else:
        valid = torch.ones_like(g, dtype=torch.bool)
    if g.numel() and (float(g.min()) < 0.0 or float(g.max()) > 1.0):
        raise DataError(
            f"float target values must lie in [0, 1] (or equal ignore_index={ignore_index}), "
            f"got range [{float(g.min())}, {float(g.max())}]"
        )
    fractional = (g != 0) & (g != 1)
    if bool(fractional.any()):
        shown = [round(float(v), 5) for v in torch.unique(g[fractional])[:3]]
        raise DataError(
            f"a float target must hold only 0 and 1 (or ignore_index={ignore_index}), got "
            f"values such as {shown}; a mask rescaled to [0, 1] (ToTensor turns label 1 "
            "into 1/255 = 0.00392) must be loaded as an integer label map instead"
        )
    return g, valid


def _zero_one(target: Tensor, mode: str, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """``(g, valid)`` of a {0, 1} target of the input's shape: float g, bool valid."""
    if target.dtype == torch.bool:
        return target.float(), torch.ones_like(target, dtype=torch.bool)
    if target.is_floating_point():
        return _float_zero_one(target, ignore_index)
    labels, valid = _checked_labels(target, 2, mode, ignore_index)
    return labels.float(), valid


def _check_target_dtype(target: Tensor, mode: LossMode, input_shape: torch.Size) -> None:
    n, _, h, w = input_shape
    if target.is_complex() or (target.dtype == torch.bool and mode != "multilabel"):
        raise DTypeError(f"target must be an integer label map, got dtype {target.dtype}")
    if target.is_floating_point() and mode == "multiclass":
        raise DTypeError(
            f"a float target is accepted only in binary mode with shape {(n, 1, h, w)} "
            f"or in multilabel mode; got dtype {target.dtype} and shape "
            f"{tuple(target.shape)} in multiclass mode (pass an integer label map (N, H, W) "
            "instead)"
        )


def sigmoid_target(
    target: Tensor, input_shape: torch.Size, mode: LossMode, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Binary or multilabel target as ``(g, valid)`` of the input's shape ``(N, C, H, W)``."""
    _check_target_dtype(target, mode, input_shape)
    n, c, h, w = input_shape
    if mode == "binary":
        if target.is_floating_point() and tuple(target.shape) != (n, 1, h, w):
            raise DTypeError(
                f"a float target is accepted only in binary mode with shape {(n, 1, h, w)} "
                f"or in multilabel mode; got dtype {target.dtype} and shape "
                f"{tuple(target.shape)} in binary mode (pass an integer label map (N, H, W) "
                "instead)"
            )
        if tuple(target.shape) not in ((n, h, w), (n, 1, h, w)):
            raise _shape_error(target, (n, h, w), input_shape)
        target = target.reshape(n, 1, h, w)
    elif tuple(target.shape) != (n, c, h, w):
        raise _shape_error(target, (n, c, h, w), input_shape)
    return _zero_one(target, mode, ignore_index)


def class_labels(
    target: Tensor, input_shape: torch.Size, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Multiclass target as ``(labels, valid)``: int64 ``(N, H, W)`` with ignored set to 0."""
    _check_target_dtype(target, "multiclass", input_shape)
    n, c, h, w = input_shape
    if tuple(target.shape) != (n, h, w):
        raise _shape_error(target, (n, h, w), input_shape)
    return _checked_labels(target, c, "multiclass", ignore_index)
