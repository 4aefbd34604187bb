"""Folding BatchNorm into the preceding convolution for inference.

In eval mode ``bn(conv(x)) = γ·(W·x + b − μ)/√(σ² + ε) + β``, which is one convolution
with weights ``W·γ/√(σ² + ε)`` and bias ``(b − μ)·γ/√(σ² + ε) + β``. Folding removes a
memory pass per layer and is exact up to rounding (computed in float64).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)).eval()
    >>> _ = net[1].running_mean.uniform_(), net[1].running_var.uniform_(1, 2)
    >>> x = torch.randn(1, 2, 5, 5)
    >>> before = net(x)
    >>> fold_batchnorms(net)
    1
    >>> torch.allclose(net(x), before, atol=1e-5), type(net[1]).__name__
    (True, 'Identity')
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import Tensor, nn


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (running statistics, ``conv``'s width) into ``conv`` in place, with a bias.

    The weight keeps its dtype, device and memory format (e.g. ``channels_last``).

    Examples:
        >>> conv, bn = nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2)
        >>> fuse_conv_bn(conv, bn)
        >>> conv.bias is not None
        True
    """
    mean, var = cast(Tensor, bn.running_mean).double(), cast(Tensor, bn.running_var).double()
    with torch.no_grad():
        weight = conv.weight
        scale = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        new_bias = (bias - mean) * scale
        if bn.bias is not None:
            new_bias = new_bias + bn.bias.double()
        weight.copy_(weight.double() * scale.view(-1, 1, 1, 1))  # keeps dtype and memory format
        conv.bias = nn.Parameter(new_bias.to(weight.dtype))


def fold_batchnorms(module: nn.Module) -> int:
    """Fold every ``Conv2d → BatchNorm2d`` pair of ``module`` in place.

    Two patterns are recognised: consecutive children of an ``nn.Sequential``, and
    sibling attributes ``convK``/``bnK`` (the torchvision naming). Each folded BatchNorm
    (its eval statistics) becomes ``nn.Identity``; other norms depend on the input and
    stay, as do pairs of different widths. Returns the number of BatchNorm layers folded.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2)).eval()
        >>> fold_batchnorms(net)
        0
    """
    folded = 0
    for parent in list(module.modules()):
        children = parent._modules
        if isinstance(parent, nn.Sequential):
            pairs = list(itertools.pairwise(children))
        else:
            pairs = [("conv" + name[2:], name) for name in children if name.startswith("bn")]
        for first, second in pairs:
            conv, bn = children.get(first), children[second]
            if (
                isinstance(conv, nn.Conv2d)
                and type(bn) is nn.BatchNorm2d
                and bn.track_running_stats
                and bn.num_features == conv.out_channels
            ):
                fuse_conv_bn(conv, bn)
                children[second] = nn.Identity()
                folded += 1
    return folded
