"""Private helpers on ``torch.nn`` modules shared by the checkpoint, training and export rooms.

Examples:
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> unwrap_model(nn.DataParallel(net)) is net
    True
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import torch
from torch import nn

from catseg.errors import ConfigError

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)

_MAX_WRAPPERS = 32
_PARALLEL = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside any nesting of DataParallel, DDP and ``torch.compile`` wrappers.

    ``DataParallel``/``DistributedDataParallel`` keep the real model in ``.module``,
    ``torch.compile`` in ``._orig_mod``; wrappers may be nested in either order. The result's
    ``state_dict`` keys carry no ``module.`` or ``_orig_mod.`` prefix.

    Examples:
        >>> from torch import nn
        >>> net = nn.Conv2d(3, 4, 1)
        >>> unwrap_model(net) is net
        True
        >>> unwrap_model(nn.DataParallel(nn.DataParallel(net))) is net
        True
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for _ in range(_MAX_WRAPPERS):  # a bound, in case a module wraps itself
        inner = model.module if isinstance(model, _PARALLEL) else getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module) or inner is model:
            return model
        model = inner
    return model


def to_channels_last(module: _ModuleT) -> _ModuleT:
    """Convert ``module``'s 4-D parameters and buffers to channels-last, in place; return it.

    ``Module.to(memory_format=...)`` works on every supported torch, but only newer torch
    stubs declare that overload; this one typed call keeps ``mypy --strict`` clean on both.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> conv = to_channels_last(nn.Conv2d(3, 4, 3))
        >>> conv.weight.is_contiguous(memory_format=torch.channels_last)
        True
    """
    converted: _ModuleT = cast(Any, module).to(memory_format=torch.channels_last)
    return converted
