"""The checks every loss shares: its options, its input and its target (one rule each)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor

from catseg._validation import Mode, check_finite_float
from catseg.errors import ConfigError, DataError, DTypeError, ShapeError

LossMode = Mode
"""``"binary"``: one logit channel (sigmoid); ``"multiclass"``: C ≥ 2 channels (softmax);
``"multilabel"``: K independent sigmoid channels with multi-hot targets ``(N, K, H, W)``."""

ReductionScope = Literal["batch", "image"]
"""``"batch"``: sums over the whole batch; ``"image"``: per image, then the mean."""

SCOPES: tuple[ReductionScope, ...] = ("batch", "image")
MAX_OPTION = 1e30
"""The largest value of a numeric loss option: float32 keeps 10⁸ of headroom for the sums."""


def check_option(name: str, value: object, *, positive: bool = False) -> float:
    """A numeric loss option: finite, in ``[0, MAX_OPTION]`` (``(0, ...]`` if ``positive``)."""
    return check_finite_float(name, value, low=0.0, high=MAX_OPTION, low_open=positive)


def check_class_weights(value: float | Sequence[float] | Tensor | None, name: str) -> Tensor | None:
    """Class weights as a float64 CPU tensor: 1-D, non-empty, finite, >= 0."""
    if value is None:
        return None
    try:
        weights = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be a 1-D sequence of numbers, got {value!r}") from None
    if weights.ndim != 1 or weights.numel() == 0:
        raise ConfigError(
            f"{name} must be a non-empty 1-D sequence, got shape {tuple(weights.shape)}"
        )
    if not bool(((weights >= 0) & (weights <= MAX_OPTION)).all()):
        raise ConfigError(f"{name} must be finite numbers in [0.0, 1e+30], got {weights.tolist()}")
    return weights


def check_weight_count(weights: Tensor, name: str, channels: int) -> None:
    if weights.numel() != channels:
        raise ConfigError(
            f"{name} has {weights.numel()} entries, expected one per input channel ({channels})"
        )


def check_term_weights(a: tuple[str, object], b: tuple[str, object]) -> tuple[float, float]:
    """Two term weights (finite, >= 0), not both 0."""
    first, second = check_option(*a), check_option(*b)
    if first == 0 and second == 0:
        raise ConfigError(f"{a[0]} and {b[0]} are both 0; the loss would be 0")
    return first, second


def _check_input(input: Tensor, target: Tensor, mode: LossMode, from_logits: bool) -> None:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise DTypeError(
            f"input and target must be tensors, got {type(input).__name__} and "
            f"{type(target).__name__}"
        )
    if not input.is_floating_point():
        raise DTypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.ndim != 4:
        raise ShapeError(f"input must have shape (N, C, H, W), got {tuple(input.shape)}")
    if mode == "binary" and input.shape[1] != 1:
        raise ShapeError(
            f"binary mode expects input with 1 channel, got shape {tuple(input.shape)} "
            "(use mode='multiclass' for C >= 2, or mode='multilabel')"
        )
    if mode == "multiclass" and input.shape[1] < 2:
        raise ShapeError(
            f"multiclass mode expects input with C >= 2 channels, got shape "
            f"{tuple(input.shape)} (use mode='binary' for one logit channel)"
        )
    if not input.numel():
        raise ShapeError(
            f"input has no values (shape {tuple(input.shape)}); a loss needs at least one "
            "image, channel and pixel"
        )
    if not from_logits:
        low, high = (float(v) for v in torch.aminmax(input.detach()))
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"from_logits=False expects probabilities in [0, 1], got input values in "
                f"[{low:.4g}, {high:.4g}]; pass raw model outputs with from_logits=True "
                "(the default)"
            )


@contextlib.contextmanager
def float_input(
    input: Tensor, target: Tensor, mode: LossMode, from_logits: bool = True
) -> Iterator[Tensor]:
    """Check ``input``/``target`` for ``mode``; yield ``input`` as float32 (float64 stays).

    Autocast is off inside the block, so that sums stay in fp32 in a bf16/fp16 region.
    """
    _check_input(input, target, mode, from_logits)
    dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    kind = input.device.type
    with (
        torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext()
    ):
        yield input.to(dtype)


def weighted_mean(values: Tensor, weights: Tensor, dim: int | None = None) -> Tensor:
    """``Σ w·v / Σ w`` over everything (or over ``dim``); 0 (gradient 0) where ``Σ w = 0``.

    Multiplying by the weights (not selecting with them) keeps a NaN of a left-out entry
    visible, so a NaN logit anywhere makes the loss NaN.
    """
    dims = tuple(range(values.ndim)) if dim is None else (dim,)
    total = weights.sum(dims)
    return (values * weights).sum(dims) / torch.where(total > 0, total, 1.0)


def _shape_error(target: Tensor, expected: tuple[int, ...], input_shape: torch.Size) -> ShapeError:
    return ShapeError(
        f"target has shape {tuple(target.shape)}, expected {expected} to match input "
        f"shape {tuple(input_shape)}"
    )


def _labels(
    target: Tensor, num_labels: int, mode: str, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """``(labels, valid)`` of an integer target: int64 labels with ignored pixels set to 0."""
    labels = target.long()
    valid = torch.ones_like(labels, dtype=torch.bool)
    if ignore_index is not None:
        valid = labels != ignore_index
        labels = labels.masked_fill(~valid, 0)
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= num_labels:
            raise DataError(
                f"target contains label {low if low < 0 else high}; {mode} mode expects "
                f"labels in [0, {num_labels - 1}] or ignore_index={ignore_index}"
            )
    return labels, valid


def _float_zero_one(target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    g = target if target.dtype == torch.float64 else target.float()
    valid = torch.ones_like(g, dtype=torch.bool)
    if ignore_index is not None:
        valid = g != ignore_index
        g = torch.where(valid, g, torch.zeros((), dtype=g.dtype, device=g.device))
    fractional = (g != 0) & (g != 1)
    if bool(fractional.any()):
        shown = [round(float(v), 5) for v in torch.unique(g[fractional])[:3]]
        raise DataError(
            f"a float target must hold only 0 and 1 (or ignore_index={ignore_index}), got "
            f"values such as {shown}; a mask rescaled to [0, 1] (ToTensor turns label 1 "
            "into 1/255 = 0.00392) must be loaded as an integer label map instead"
        )
    return g, valid


def sigmoid_target(
    target: Tensor, input_shape: torch.Size, mode: LossMode, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Binary or multilabel target as ``(g, valid)`` of the input's shape ``(N, C, H, W)``.

    Binary: ``(N, H, W)`` integer or ``(N, 1, H, W)`` integer or float ``{0, 1}``;
    multilabel: ``(N, K, H, W)`` integer, float ``{0, 1}`` or bool.
    """
    n, c, h, w = input_shape
    _check_target_dtype(target, mode, input_shape)
    if mode == "binary":
        if tuple(target.shape) not in ((n, h, w), (n, 1, h, w)):
            raise _shape_error(target, (n, h, w), input_shape)
        target = target.reshape(n, 1, h, w)
    elif tuple(target.shape) != (n, c, h, w):
        raise _shape_error(target, (n, c, h, w), input_shape)
    if target.dtype == torch.bool:
        return target.float(), torch.ones_like(target)
    if target.is_floating_point():
        return _float_zero_one(target, ignore_index)
    labels, valid = _labels(target, 2, mode, ignore_index)
    return labels.float(), valid


def class_labels(
    target: Tensor, input_shape: torch.Size, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Multiclass target as ``(labels, valid)``: int64 ``(N, H, W)`` with ignored set to 0."""
    n, c, h, w = input_shape
    _check_target_dtype(target, "multiclass", input_shape)
    if tuple(target.shape) != (n, h, w):
        raise _shape_error(target, (n, h, w), input_shape)
    return _labels(target, c, "multiclass", ignore_index)


def _check_target_dtype(target: Tensor, mode: LossMode, input_shape: torch.Size) -> None:
    n, _, h, w = input_shape
    if target.is_complex() or (target.dtype == torch.bool and mode != "multilabel"):
        raise DTypeError(f"target must be an integer label map, got dtype {target.dtype}")
    binary_ok = mode == "binary" and tuple(target.shape) == (n, 1, h, w)
    if target.is_floating_point() and not (binary_ok or mode == "multilabel"):
        raise DTypeError(
            f"a float target is accepted only in binary mode with shape {(n, 1, h, w)} "
            f"or in multilabel mode; got dtype {target.dtype} and shape "
            f"{tuple(target.shape)} in {mode} mode (pass an integer label map (N, H, W) "
            "instead)"
        )
