"""The UNet paper's encoder (``"unet"``): conv blocks and 2×2 max-pooling."""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from catseg._validation import check_positive_int
from catseg.models.blocks import ActivationName, ConvBlock, NormName
from catseg.models.encoders.registry import register_encoder

__all__ = ["ClassicEncoder"]


@register_encoder("unet")
class ClassicEncoder(nn.Module):
    """``depth + 1`` :class:`~catseg.models.blocks.ConvBlock` s separated by 2×2 max-pooling.

    Registered as ``"unet"``, the tutorial's widths 32 → 512 by default;
    ``UNet(init_features=..., depth=..., norm=..., activation=..., dropout=...)`` passes
    its arguments here as the encoder's options. There are no pretrained weights.

    Args:
        in_channels: Input channels.
        init_features: Width of the first block; each block doubles it.
        depth: Number of max-poolings (the deepest map, the UNet "bottleneck", is at
            stride ``2**depth``).
        norm: Normalisation name.
        activation: Activation name.
        dropout: Dropout probability at the end of each block.

    Attributes:
        out_channels: ``(f, 2f, ..., 2**depth·f)`` with ``f = init_features``.
        reductions: ``(1, 2, ..., 2**depth)``.

    Raises:
        ConfigError: If ``in_channels``, ``init_features`` or ``depth`` is < 1, or a
            name is unknown.

    Examples:
        >>> import torch
        >>> ClassicEncoder(3).out_channels
        (32, 64, 128, 256, 512)
        >>> encoder = ClassicEncoder(3, init_features=4, depth=2)
        >>> [tuple(f.shape) for f in encoder(torch.zeros(1, 3, 8, 8))]
        [(1, 4, 8, 8), (1, 8, 4, 4), (1, 16, 2, 2)]
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        init_features: int = 32,
        depth: int = 4,
        norm: NormName = "batch",
        activation: ActivationName = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        init_features = check_positive_int("init_features", init_features)
        depth = check_positive_int("depth", depth)
        self.out_channels: tuple[int, ...] = tuple(init_features * 2**i for i in range(depth + 1))
        self.reductions: tuple[int, ...] = tuple(2**i for i in range(depth + 1))
        widths = (check_positive_int("in_channels", in_channels), *self.out_channels)
        self.blocks = nn.ModuleList(
            # the first block reads raw pixels: its convolution stays fp32 under autocast
            ConvBlock(a, b, norm=norm, activation=activation, dropout=dropout, stem=i == 0)
            for i, (a, b) in enumerate(itertools.pairwise(widths))
        )
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the ``depth + 1`` feature maps of ``x``, shallow → deep."""
        features: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(self.pool(x) if i else x)
            features.append(x)
        return features
