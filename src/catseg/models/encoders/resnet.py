"""ResNet-18/34/50 encoders whose parameter names and shapes match torchvision's.

The module tree is ``conv1``, ``bn1``, ``layer1`` … ``layer4`` (no ``fc``), with
basic blocks ``conv1/bn1/conv2/bn2`` and bottleneck blocks ``conv1..3/bn1..3`` (the
stride on the 3×3 convolution), and projection shortcuts named
``downsample.0`` (1×1 convolution) / ``downsample.1`` (BatchNorm), so torchvision's
files fit. Weights load in one call (see :mod:`catseg.models.weights`)::

    UNet(3, 1, encoder="resnet34", encoder_weights="resnet34-b627a593.pth")  # a file
    UNet(3, 1, encoder="resnet34", encoder_weights="torchvision")  # torchvision's enum

``fc.*`` is dropped, any ``in_channels`` works by the stem rule, and the model records
the ImageNet mean/std the weights expect. The ``"torchvision"`` source needs
torchvision installed and uses its weight enums and download cache; catseg itself
downloads nothing.

Feature maps: the stem (``conv1``-``bn1``-ReLU) at stride 2, then ``layer1`` … ``layer4``
at strides 4, 8, 16 and 32.

Examples:
    >>> import torch
    >>> encoder = resnet18()
    >>> [tuple(f.shape[1:]) for f in encoder(torch.zeros(1, 3, 64, 64))]
    [(64, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from typing import Literal

from torch import Tensor, nn

from catseg.errors import ConfigError, EncoderError, OptionalDependencyError
from catseg.models.blocks import StemConv2d
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.preprocessing import IMAGENET, Preprocessing

__all__ = ["BasicBlock", "Bottleneck", "ResNetEncoder", "resnet18", "resnet34", "resnet50"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class _ResidualBlock(nn.Module, abc.ABC):
    """What the two block kinds share: ``relu(branch(x) + shortcut(x))``.

    A subclass builds its convolutions, then calls :meth:`_add_shortcut` (so the
    parameters keep torchvision's order), and implements :meth:`_branch`.
    """

    expansion: int
    relu: nn.ReLU
    downsample: nn.Sequential | None

    def _add_shortcut(self, in_channels: int, out_channels: int, stride: int) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    @abc.abstractmethod
    def _branch(self, x: Tensor) -> Tensor:
        """The residual branch (convolutions) of the block, before the shortcut is added."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Input batch.

        Returns:
            ``relu(branch(x) + shortcut(x))``.
        """
        identity = x if self.downsample is None else self.downsample(x)
        result: Tensor = self.relu(self._branch(x) + identity)
        return result


class BasicBlock(_ResidualBlock):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels: Input channels.
        width: Channels of both convolutions (and of the output).
        stride: Stride of the first convolution.

    Shape:
        ``(N, in_channels, H, W) -> (N, width, H / stride, W / stride)``.

    Examples:
        >>> import torch
        >>> BasicBlock(8, 16, stride=2)(torch.zeros(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self._add_shortcut(in_channels, width, stride)

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        result: Tensor = self.bn2(self.conv2(out))
        return result


class Bottleneck(_ResidualBlock):
    """1×1 reduce, 3×3 (strided), 1×1 expand ×4, with a residual connection (ResNet-50).

    Args:
        in_channels: Input channels.
        width: Channels of the inner convolutions; the output has ``4 * width``.
        stride: Stride of the 3×3 convolution.

    Shape:
        ``(N, in_channels, H, W) -> (N, 4·width, H / stride, W / stride)``.

    Examples:
        >>> import torch
        >>> Bottleneck(8, 4, stride=2)(torch.zeros(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self._add_shortcut(in_channels, out_channels, stride)

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        result: Tensor = self.bn3(self.conv3(out))
        return result


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier, returning five feature maps.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper).
        layers: Number of blocks in ``layer1`` … ``layer4``.
        in_channels: Input channels of ``conv1``.
        arch: torchvision's name for the same network (``"resnet34"``), which enables
            the ``"torchvision"`` weight source; ``None`` for none.

    Attributes:
        out_channels: ``(64, 64, 128, 256, 512)`` for basic blocks,
            ``(64, 256, 512, 1024, 2048)`` for bottlenecks.
        reductions: ``(2, 4, 8, 16, 32)``.
        weights_preprocessing: The ImageNet mean/std of torchvision's weights.
        weight_sources: ``("torchvision",)`` when ``arch`` is set.
        stem_weight: ``"conv1.weight"``, adapted by the stem rule for ``in_channels != 3``.
        ignored_weights: ``("fc.",)``: the classifier of a torchvision file is dropped.

    Raises:
        ConfigError: If ``block`` is unknown, ``layers`` does not have 4 positive
            entries, or ``in_channels`` < 1.

    Shape:
        ``(N, in_channels, H, W)`` with ``H, W`` multiples of 32 → maps at ``H/2 … H/32``.

    Examples:
        >>> ResNetEncoder("bottleneck", (3, 4, 6, 3)).out_channels
        (64, 256, 512, 1024, 2048)
    """

    def __init__(
        self,
        block: Literal["basic", "bottleneck"],
        layers: tuple[int, int, int, int],
        *,
        in_channels: int = 3,
        arch: str | None = None,
    ) -> None:
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ConfigError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ConfigError(f"layers must be 4 positive block counts, got {layers!r}")
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        block_cls: type[BasicBlock] | type[Bottleneck] = (
            BasicBlock if block == "basic" else Bottleneck
        )
        # the convolution on raw pixels stays fp32 under autocast (see StemConv2d)
        self.conv1 = StemConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        stages: list[nn.Sequential] = []
        for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block_cls(channels, width, stride))
                channels = width * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        expansion = block_cls.expansion
        self.out_channels: tuple[int, ...] = (64, *(w * expansion for w in (64, 128, 256, 512)))
        self.reductions: tuple[int, ...] = (2, 4, 8, 16, 32)
        self.arch = arch
        self.weights_preprocessing: Preprocessing = IMAGENET
        self.weight_sources: tuple[str, ...] = ("torchvision",) if arch else ()
        self.stem_weight = "conv1.weight"
        self.ignored_weights: tuple[str, ...] = ("fc.",)

    def load_weight_source(self, source: str) -> Mapping[str, Tensor]:
        """Return the RGB state dict of a named source (``"torchvision"``).

        Uses torchvision's ``<Arch>_Weights.DEFAULT`` enum, so the file comes from (or
        goes to) torchvision's download cache (``$TORCH_HOME/hub/checkpoints``).

        Args:
            source: ``"torchvision"``.

        Returns:
            torchvision's state dict, ``fc.*`` included (the loader drops it).

        Raises:
            OptionalDependencyError: If torchvision is not installed.
            EncoderError: If the source is unknown or the weights cannot be fetched.
        """
        if source not in self.weight_sources or self.arch is None:
            raise EncoderError(
                f"ResNet encoder {self.arch!r} has no weight source {source!r}; sources: "
                f"{list(self.weight_sources)}"
            )
        with foreign_errors(
            OptionalDependencyError,
            'encoder_weights="torchvision" needs torchvision',
            "install it with pip install torchvision, or pass the .pth file's path",
        ):  # ImportError, or torchvision's ops failing to load
            tv_models = importlib.import_module("torchvision.models")  # optional dependency
        enum = tv_models.get_model_weights(self.arch).DEFAULT
        with foreign_errors(
            EncoderError,
            f"torchvision could not provide the {self.arch} weights {enum}",
            "download the file once or pass its path",
        ):
            state: Mapping[str, Tensor] = enum.get_state_dict(progress=False)
        return state

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the stem output and the four stage outputs.

        Args:
            x: Input batch ``(N, in_channels, H, W)``.

        Returns:
            Five feature maps, strides 2 to 32.
        """
        stem = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(stem))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [stem, f1, f2, f3, f4]


def resnet18(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-18 encoder (basic blocks ``(2, 2, 2, 2)``; 11,176,512 parameters).

    Args:
        in_channels: Input channels (pretrained weights are adapted by the stem rule).

    Returns:
        The encoder (random weights; load weights with ``UNet(encoder_weights=...)``).

    Examples:
        >>> sum(p.numel() for p in resnet18().parameters())
        11176512
    """
    return ResNetEncoder("basic", (2, 2, 2, 2), in_channels=in_channels, arch="resnet18")


def resnet34(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-34 encoder (basic blocks ``(3, 4, 6, 3)``; 21,284,672 parameters).

    Arguments and result as for :func:`resnet18`.

    Examples:
        >>> resnet34().layer3[5].conv2.weight.shape
        torch.Size([256, 256, 3, 3])
    """
    return ResNetEncoder("basic", (3, 4, 6, 3), in_channels=in_channels, arch="resnet34")


def resnet50(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-50 encoder (bottlenecks ``(3, 4, 6, 3)``; 23,508,032 parameters).

    Arguments and result as for :func:`resnet18`.

    Examples:
        >>> resnet50().weight_sources
        ('torchvision',)
    """
    return ResNetEncoder("bottleneck", (3, 4, 6, 3), in_channels=in_channels, arch="resnet50")
