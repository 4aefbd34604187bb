"""Private helpers on ``torch.nn`` modules shared by the checkpoint, training and export rooms.

Examples:
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> unwrap_model(nn.DataParallel(net)) is net
    True
"""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model"]

_MAX_WRAPPERS = 32


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside any nesting of DataParallel, DDP and ``torch.compile`` wrappers.

    ``DataParallel``/``DistributedDataParallel`` keep the real model in ``.module``,
    ``torch.compile`` in ``._orig_mod``; wrappers may be nested in either order
    (``torch.compile(DDP(model))`` or ``DDP(torch.compile(model))``). A model that is
    not wrapped is returned as it is.

    Args:
        model: A model, wrapped or not.

    Returns:
        The innermost module, whose ``state_dict`` keys carry no ``module.`` or
        ``_orig_mod.`` prefix.

    Examples:
        >>> from torch import nn
        >>> net = nn.Conv2d(3, 4, 1)
        >>> unwrap_model(net) is net
        True
        >>> unwrap_model(nn.DataParallel(nn.DataParallel(net))) is net
        True
    """
    for _ in range(_MAX_WRAPPERS):  # a bound, in case a module wraps itself
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            inner = model.module
        else:
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module) or inner is model:
            return model
        model = inner
    return model
