"""The UNet paper's encoder (``"unet"``): conv blocks and 2×2 max-pooling.

With the defaults (``init_features=32``, ``depth=4``) the widths are the tutorial's
32 → 64 → 128 → 256 → 512, at strides 1, 2, 4, 8 and 16. The deepest map is the
UNet "bottleneck".

Examples:
    >>> import torch
    >>> from catseg.models.encoders.classic import ClassicEncoder
    >>> encoder = ClassicEncoder(3, init_features=4, depth=2)
    >>> [tuple(f.shape) for f in encoder(torch.zeros(1, 3, 8, 8))]
    [(1, 4, 8, 8), (1, 8, 4, 4), (1, 16, 2, 2)]
"""

from __future__ import annotations

from torch import Tensor, nn

from catseg.errors import ConfigError
from catseg.models.blocks import ActivationName, ConvBlock, NormName

__all__ = ["ClassicEncoder", "unet_encoder"]


class ClassicEncoder(nn.Module):
    """``depth + 1`` :class:`~catseg.models.blocks.ConvBlock` s separated by 2×2 max-pooling.

    Args:
        in_channels: Input channels.
        init_features: Width of the first block; each block doubles it.
        depth: Number of max-poolings (the deepest map is at stride ``2**depth``).
        norm: Normalisation name.
        activation: Activation name.
        dropout: Dropout probability at the end of each block.

    Attributes:
        out_channels: ``(f, 2f, ..., 2**depth·f)`` with ``f = init_features``.
        reductions: ``(1, 2, ..., 2**depth)``.

    Raises:
        ConfigError: If ``in_channels``, ``init_features`` or ``depth`` is < 1, or a
            name is unknown.

    Shape:
        ``(N, in_channels, H, W)`` with ``H, W`` multiples of ``2**depth`` →
        list of ``(N, 2**i·f, H / 2**i, W / 2**i)`` for ``i = 0..depth``.

    Examples:
        >>> ClassicEncoder(3).out_channels
        (32, 64, 128, 256, 512)
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
        for name, value in (
            ("in_channels", in_channels),
            ("init_features", init_features),
            ("depth", depth),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        self.out_channels: tuple[int, ...] = tuple(init_features * 2**i for i in range(depth + 1))
        self.reductions: tuple[int, ...] = tuple(2**i for i in range(depth + 1))
        widths = (in_channels, *self.out_channels)
        self.blocks = nn.ModuleList(
            ConvBlock(
                widths[i],
                widths[i + 1],
                norm=norm,
                activation=activation,
                dropout=dropout,
                stem=i == 0,  # the convolution on raw pixels stays fp32 under autocast
            )
            for i in range(depth + 1)
        )
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the ``depth + 1`` feature maps, shallow → deep.

        Args:
            x: Input batch ``(N, in_channels, H, W)``.

        Returns:
            The feature maps.
        """
        features: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = block(x)
            features.append(x)
        return features


def unet_encoder(
    *,
    in_channels: int = 3,
    init_features: int = 32,
    depth: int = 4,
    norm: NormName = "batch",
    activation: ActivationName = "relu",
    dropout: float = 0.0,
) -> ClassicEncoder:
    """Factory of the ``"unet"`` encoder (the tutorial's widths 32 → 512 by default).

    ``UNet(init_features=..., depth=..., norm=..., activation=..., dropout=...)``
    passes its arguments here as the encoder's options; there are no pretrained
    weights for this encoder.

    Args:
        in_channels: Input channels.
        init_features: Width of the first block; each block doubles it.
        depth: Number of max-poolings.
        norm: Normalisation name.
        activation: Activation name.
        dropout: Dropout probability at the end of each block.

    Returns:
        A fresh :class:`ClassicEncoder`.

    Raises:
        ConfigError: If an option is invalid (named).

    Examples:
        >>> unet_encoder(in_channels=1).reductions
        (1, 2, 4, 8, 16)
        >>> unet_encoder(init_features=8, depth=2).out_channels
        (8, 16, 32)
    """
    return ClassicEncoder(
        in_channels,
        init_features=init_features,
        depth=depth,
        norm=norm,
        activation=activation,
        dropout=dropout,
    )
