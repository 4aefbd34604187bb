"""Validation shared by saving and loading checkpoints."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from catseg.errors import CheckpointError, ConfigError

__all__ = ["check_meta", "check_plain", "check_weights_fit", "unwrap"]

LEAF_TYPES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.Tensor,
    torch.dtype,
    torch.device,
    torch.Size,
)


def check_weights_fit(model: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} with other shapes (first: {'; '.join(wrong[:3])})")
    raise CheckpointError(f"{what} do not match the model config: {', '.join(parts)}")


def unwrap(model: nn.Module) -> nn.Module:
    # DataParallel / DistributedDataParallel keep the real model in .module,
    # torch.compile in ._orig_mod; the checkpoint must hold the plain model's keys.
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(inner := getattr(model, "_orig_mod", None), nn.Module):
            model = inner
        else:
            return model


def check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` would not read back."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, LEAF_TYPES):
            continue
        if isinstance(item, (dict, OrderedDict)):
            for key, sub in item.items():
                if not isinstance(key, (str, int, float, bool, type(None))):
                    raise ConfigError(f"{at} has a key of type {type(key).__name__}: {key!r}")
                stack.append((sub, f"{at}[{key!r}]"))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((sub, f"{at}[{i}]") for i, sub in enumerate(item))
        else:
            raise ConfigError(
                f"{at} is a {type(item).__module__}.{type(item).__qualname__}; checkpoints hold "
                "only tensors, numbers, strings, None and dicts/lists/tuples of them "
                "(convert NumPy arrays with torch.from_numpy, objects to dicts)"
            )


def check_meta(
    classes: Sequence[str],
    image_size: Sequence[int] | None,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    in_channels: int,
) -> tuple[list[str], tuple[int, int] | None, tuple[float, ...], tuple[float, ...]]:
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ConfigError(f"classes must be a sequence of non-empty strings, got {classes!r}")
    names = list(classes)
    wanted = 2 if num_classes == 1 else num_classes
    if len(names) != wanted:
        mode = "a binary (1-logit) model" if num_classes == 1 else f"{num_classes} logits"
        raise ConfigError(
            f"classes has {len(names)} names but {mode} needs {wanted} "
            "(label 0 first, e.g. ['_background_', 'cat'])"
        )
    size: tuple[int, int] | None = None
    if image_size is not None:
        values = tuple(image_size)
        if len(values) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ConfigError(
                f"image_size must be None or (height, width) positive ints, got {image_size!r}"
            )
        size = (int(values[0]), int(values[1]))
    norm: list[tuple[float, ...]] = []
    for name, seq in (("mean", mean), ("std", std)):
        floats = tuple(float(v) for v in seq)
        if len(floats) != in_channels or not all(math.isfinite(v) for v in floats):
            raise ConfigError(
                f"{name} must hold {in_channels} finite numbers (one per input channel), "
                f"got {tuple(seq)!r}"
            )
        norm.append(floats)
    if not all(v > 0 for v in norm[1]):
        raise ConfigError(f"std values must be > 0, got {norm[1]!r}")
    return names, size, norm[0], norm[1]
