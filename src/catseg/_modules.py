"""Helpers on torch modules shared by several catseg packages."""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers.

    Examples:
        >>> from torch import nn
        >>> layer = nn.Linear(2, 2)
        >>> unwrap_model(nn.DataParallel(layer)) is layer
        True
    """
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        return model
