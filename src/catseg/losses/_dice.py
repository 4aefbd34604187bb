"""The soft Dice coefficient: the one implementation behind catseg.losses."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from catseg.errors import ConfigError, DataError, DTypeError, ShapeError

__all__ = ["DiceMode", "ReductionScope", "check_options", "soft_dice"]

DiceMode = Literal["binary", "multiclass"]
"""``"binary"``: one logit channel (sigmoid); ``"multiclass"``: C ≥ 2 channels (softmax)."""

ReductionScope = Literal["batch", "image"]
"""``"batch"``: sums over the whole batch; ``"image"``: per image, then the mean."""

_MODES = ("binary", "multiclass")
_SCOPES = ("batch", "image")


def check_options(
    mode: str,
    smooth: float,
    eps: float,
    reduction_scope: str,
    ignore_index: int | None,
    class_weights: Sequence[float] | Tensor | None,
) -> Tensor | None:
    """Validate the scalar options; return class weights as a float64 CPU tensor."""
    if mode not in _MODES:
        raise ConfigError(f"mode must be one of {_MODES}, got {mode!r}")
    if reduction_scope not in _SCOPES:
        raise ConfigError(f"reduction_scope must be one of {_SCOPES}, got {reduction_scope!r}")
    if not (isinstance(smooth, (int, float)) and smooth >= 0.0 and smooth < float("inf")):
        raise ConfigError(f"smooth must be a finite number >= 0, got {smooth!r}")
    if not (isinstance(eps, (int, float)) and eps > 0.0 and eps < float("inf")):
        raise ConfigError(f"eps must be a finite number > 0, got {eps!r}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise ConfigError(f"ignore_index must be an int or None, got {ignore_index!r}")
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float64).detach().cpu()
    if weights.ndim != 1 or weights.numel() == 0:
        raise ConfigError(
            f"class_weights must be a non-empty 1-D sequence, got shape {tuple(weights.shape)}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ConfigError(f"class_weights must be finite and >= 0, got {weights.tolist()}")
    return weights


def _target_to_one_hot(
    target: Tensor, input_shape: torch.Size, mode: str, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Return ``(g, valid)``: float one-hot target (N,C,H,W) and valid mask (N,1,H,W)."""
    n, c, h, w = input_shape
    if target.is_floating_point():
        if mode != "binary" or tuple(target.shape) != (n, 1, h, w):
            raise DTypeError(
                f"a float target is accepted only in binary mode with shape {(n, 1, h, w)}; "
                f"got dtype {target.dtype} and shape {tuple(target.shape)} in {mode} mode "
                "(pass an integer label map (N, H, W) instead)"
            )
        g = target.float() if target.dtype != torch.float64 else target
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
    if target.dtype == torch.bool or target.is_complex():
        raise DTypeError(f"target must be an integer label map, got dtype {target.dtype}")
    if target.ndim == 4 and tuple(target.shape) == (n, 1, h, w) and mode == "binary":
        target = target[:, 0]
    if tuple(target.shape) != (n, h, w):
        raise ShapeError(
            f"target has shape {tuple(target.shape)}, expected {(n, h, w)} to match input "
            f"shape {tuple(input_shape)}"
        )
    labels = target.long()
    if ignore_index is not None:
        valid = labels != ignore_index
        labels = labels.masked_fill(~valid, 0)
    else:
        valid = torch.ones_like(labels, dtype=torch.bool)
    num_labels = 2 if mode == "binary" else c
    if labels.numel():
        low, high = torch.aminmax(labels)
        if int(low) < 0 or int(high) >= num_labels:
            bad = int(low) if int(low) < 0 else int(high)
            raise DataError(
                f"target contains label {bad}; {mode} mode expects labels in "
                f"[0, {num_labels - 1}] or ignore_index={ignore_index}"
            )
    if mode == "binary":
        g = labels.unsqueeze(1).float()
    else:
        g = torch.nn.functional.one_hot(labels, num_classes=c).permute(0, 3, 1, 2).float()
    return g, valid.unsqueeze(1)


def _per_class_dice(
    input: Tensor,
    target: Tensor,
    mode: str,
    from_logits: bool,
    smooth: float,
    eps: float,
    squared: bool,
    ignore_index: int | None,
    reduction_scope: str,
) -> Tensor:
    """Soft Dice per class, shape (C,), in float32 (float64 for float64 input)."""
    compute_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    x = input.to(compute_dtype)
    if from_logits:
        probs = torch.sigmoid(x) if mode == "binary" else torch.softmax(x, dim=1)
    else:
        probs = x
    g, valid = _target_to_one_hot(target, input.shape, mode, ignore_index)
    g = g.to(device=probs.device, dtype=compute_dtype)
    mask = valid.to(device=probs.device, dtype=compute_dtype)
    probs = probs * mask
    g = g * mask

    dims = (0, 2, 3) if reduction_scope == "batch" else (2, 3)
    intersection = (probs * g).sum(dims)
    if squared:
        cardinality = (probs * probs).sum(dims) + (g * g).sum(dims)
    else:
        cardinality = probs.sum(dims) + g.sum(dims)
    dice = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    if reduction_scope == "image":
        dice = dice.mean(0)  # (C,)

    return dice


def soft_dice(
    input: Tensor,
    target: Tensor,
    *,
    mode: DiceMode = "binary",
    from_logits: bool = True,
    smooth: float = 1.0,
    eps: float = 1e-7,
    squared: bool = False,
    ignore_index: int | None = 255,
    class_weights: Sequence[float] | Tensor | None = None,
    include_background: bool = True,
    reduction_scope: ReductionScope = "batch",
) -> Tensor:
    """Differentiable soft Dice coefficient (higher is better, in ``[0, 1]``).

    Args:
        input: Logits (``from_logits=True``) or probabilities; one channel in binary
            mode, C ≥ 2 channels in multiclass mode.
        target: Integer label map; in binary mode also a float ``{0, 1}`` mask with a
            channel axis, as the tutorial's dataset produced.
        mode: ``"binary"`` (sigmoid over one channel) or ``"multiclass"`` (softmax).
        from_logits: Apply sigmoid/softmax to ``input``; ``False`` takes probabilities.
        smooth: Added to numerator and denominator (``1.0``: the tutorial's value).
        eps: Lower bound of the denominator, so ``smooth=0`` never divides by zero.
        squared: Use ``Σp² + Σg²`` in the denominator.
        ignore_index: Target value whose pixels are left out entirely; ``None`` keeps all.
        class_weights: One weight per input channel for the average over classes.
        include_background: Multiclass only: keep channel 0 in the class average.
        reduction_scope: ``"batch"`` sums over the whole batch; ``"image"`` computes one
            coefficient per image and averages.

    Returns:
        A scalar tensor (float32, or float64 for a float64 input) holding the
        coefficient, differentiable with respect to ``input``.

    Raises:
        ConfigError: If an option is outside its allowed values (naming it), or
            ``class_weights`` has the wrong length or sums to zero over used classes.
        ShapeError: If ``input`` is not 4-D, has the wrong channel count for ``mode``,
            or ``target`` does not match its batch and spatial shape.
        DTypeError: If ``input`` is not floating point, or ``target`` has a dtype that
            is neither integer nor (binary mode) float.
        DataError: If ``target`` holds a label outside the classes that is not
            ``ignore_index``, a float target holds values other than 0 and 1 (e.g. a
            mask rescaled to ``[0, 1]``), or ``from_logits=False`` and ``input`` holds
            values outside ``[0, 1]`` (logits passed as probabilities).

    Shape:
        - input: ``(N, 1, H, W)`` (binary) or ``(N, C, H, W)`` with C ≥ 2 (multiclass).
        - target: ``(N, H, W)`` integer; binary also ``(N, 1, H, W)`` integer or float.
        - output: ``()``.

    Examples:
        >>> import torch
        >>> from catseg.losses import soft_dice
        >>> probs = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]])
        >>> target = torch.tensor([[[1, 0], [1, 0]]])
        >>> soft_dice(probs, target, from_logits=False)   # (2*1.5 + 1) / (1.8 + 2 + 1)
        tensor(0.8333)
        >>> logits = torch.zeros(1, 3, 2, 2)              # uniform softmax: p = 1/3
        >>> soft_dice(logits, torch.tensor([[[0, 1], [2, 255]]]), mode="multiclass",
        ...           smooth=0.0)                          # 2*(1/3) / (1 + 1) per class
        tensor(0.3333)
    """
    weights = check_options(mode, smooth, eps, reduction_scope, ignore_index, class_weights)
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise DTypeError(
            f"input and target must be tensors, got {type(input).__name__} and "
            f"{type(target).__name__}"
        )
    if not input.is_floating_point():
        raise DTypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.ndim != 4:
        raise ShapeError(f"input must have shape (N, C, H, W), got {tuple(input.shape)}")
    if not from_logits and input.numel():
        low, high = (float(v) for v in torch.aminmax(input.detach()))
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"from_logits=False expects probabilities in [0, 1], got input values in "
                f"[{low:.4g}, {high:.4g}]; pass raw model outputs with from_logits=True "
                "(the default)"
            )
    channels = input.shape[1]
    if mode == "binary" and channels != 1:
        raise ShapeError(
            f"binary mode expects input with 1 channel, got shape {tuple(input.shape)} "
            "(use mode='multiclass' for C >= 2)"
        )
    if mode == "multiclass" and channels < 2:
        raise ShapeError(
            f"multiclass mode expects input with C >= 2 channels, got shape "
            f"{tuple(input.shape)} (use mode='binary' for one logit channel)"
        )
    first = 0 if (mode == "binary" or include_background) else 1
    if weights is not None:
        if weights.numel() != channels:
            raise ConfigError(
                f"class_weights has {weights.numel()} entries, expected one per input channel "
                f"({channels})"
            )
        if float(weights[first:].sum()) <= 0.0:
            raise ConfigError(
                f"class_weights {weights.tolist()} sum to zero over the classes used "
                f"(include_background={include_background})"
            )
    # Autocast off: the sums must stay in fp32 even inside a bf16/fp16 autocast region.
    device_type = input.device.type
    no_autocast = (
        torch.autocast(device_type=device_type, enabled=False)
        if device_type in ("cpu", "cuda")
        else contextlib.nullcontext()
    )
    with no_autocast:
        dice = _per_class_dice(
            input, target, mode, from_logits, smooth, eps, squared, ignore_index, reduction_scope
        )
        if weights is None:
            return dice[first:].mean()
        used = weights[first:].to(device=dice.device, dtype=dice.dtype)
        return (dice[first:] * used).sum() / used.sum()
