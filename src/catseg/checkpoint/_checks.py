"""Validation shared by saving and loading checkpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from catseg.errors import CheckpointError


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
    wanted = sum(math.prod(shape) for shape in expected.values())
    held = sum(t.numel() for t in state.values())
    raise CheckpointError(
        f"{what} do not match the model config: {', '.join(parts)} (the config builds "
        f"{wanted} weight values, the file holds {held})"
    )
