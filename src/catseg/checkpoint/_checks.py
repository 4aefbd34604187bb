"""Validation shared by saving and loading checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from catseg.checkpoint._bounds import Budget, short, tensor_problem, walk_plain
from catseg.errors import CatsegError, CheckpointError, ConfigError

MAX_CHANNELS = 1024
"""Most input channels a checkpoint's model config may ask for."""
MAX_CLASSES = 65_536
"""Most classes (output maps) a checkpoint's model config may ask for."""
MAX_DEPTH_STAGES = 12
"""Deepest classic encoder (number of poolings) a checkpoint's config may ask for."""
MAX_WIDTH = 65_536
"""Widest layer (channels) a checkpoint's config may ask for."""
_MAX_DECODER_STAGES = 32


def _numel(shape: Sequence[int]) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total


def check_weights_fit(model: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Refuse weights whose names or shapes differ from ``model``'s (which may be on meta)."""
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
    wanted = sum(_numel(shape) for shape in expected.values())
    held = sum(t.numel() for t in state.values())
    raise CheckpointError(
        f"{what} do not match the model config: {', '.join(parts)} (the config builds "
        f"{wanted} weight values, the file holds {held})"
    )


def weight_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor cannot be a model weight, or ``None`` if it can."""
    problem = tensor_problem(tensor)
    if problem is not None:
        return problem
    if tensor.is_complex():
        return f"is a complex tensor ({tensor.dtype}); model weights are real"
    return None


def check_config_bounds(config: Mapping[str, Any], fail: Callable[[str], CatsegError]) -> None:
    """Refuse a model config that would build an absurdly large model, before building it.

    Only the sizes are checked here (ints of the known fields); everything else is checked
    by :class:`~catseg.models.config.UNetConfig` when the model is built.
    """

    def bounded(key: str, limit: int) -> int | None:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if value > limit:
            raise fail(f"model_config {key}={short(value)} is over the limit of {limit}")
        return value

    bounded("in_channels", MAX_CHANNELS)
    bounded("num_classes", MAX_CLASSES)
    depth = bounded("depth", MAX_DEPTH_STAGES)
    features = bounded("init_features", MAX_WIDTH)
    if depth is not None and features is not None and features * 2**depth > MAX_WIDTH:
        raise fail(
            f"model_config init_features={features}, depth={depth} gives a deepest layer of "
            f"{features * 2**depth} channels, over the limit of {MAX_WIDTH}"
        )
    widths = config.get("decoder_channels")
    if isinstance(widths, (list, tuple)):
        if len(widths) > _MAX_DECODER_STAGES:
            raise fail(
                f"model_config decoder_channels has {len(widths)} entries, over the limit of "
                f"{_MAX_DECODER_STAGES}"
            )
        for width in widths:
            if isinstance(width, int) and not isinstance(width, bool) and width > MAX_WIDTH:
                raise fail(
                    f"model_config decoder_channels holds {width}, over the limit of {MAX_WIDTH}"
                )


def check_plain(value: Any, where: str) -> None:
    """Refuse anything ``load_checkpoint`` would not read back (a ConfigError naming it)."""
    walk_plain(value, where, Budget(), ConfigError)
