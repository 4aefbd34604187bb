"""ResNet-18/34/50 encoders whose parameter names and shapes match torchvision's.

The module tree is torchvision's without ``fc`` (``conv1``, ``bn1``, ``layer1`` …
``layer4``, blocks ``convK``/``bnK``, shortcuts ``downsample.0``/``downsample.1``), so
torchvision's files load in one call (see :mod:`catseg.models.weights`)::

    UNet(3, 1, encoder="resnet34", encoder_weights="resnet34-b627a593.pth")  # a file
    UNet(3, 1, encoder="resnet34", encoder_weights="torchvision")  # torchvision's enum

``fc.*`` is dropped, any ``in_channels`` works by the stem rule, and the model records
the ImageNet mean/std the weights expect. The ``"torchvision"`` source needs torchvision
and uses its download cache; catseg itself downloads nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Literal

from torch import Tensor, nn

from catseg._validation import check_choice, check_positive_int
from catseg.errors import ConfigError, EncoderError, OptionalDependencyError
from catseg.models.blocks import StemConv2d
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.encoders.registry import register_encoder
from catseg.models.preprocessing import IMAGENET, Preprocessing

__all__ = ["BasicBlock", "Bottleneck", "ResNetEncoder", "resnet18", "resnet34", "resnet50"]


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False)


class _Residual(nn.Module):
    """``relu(branch(x) + shortcut(x))``; the shortcut projects when the shape changes."""

    relu: nn.ReLU
    downsample: nn.Sequential | None

    def _add_shortcut(self, in_channels: int, out_channels: int, stride: int) -> None:
        # called last in __init__, so that the parameters keep torchvision's order
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                _conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels)
            )

    def _join(self, branch: Tensor, x: Tensor) -> Tensor:
        out: Tensor = self.relu(branch + (x if self.downsample is None else self.downsample(x)))
        return out


class BasicBlock(_Residual):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels: Input channels.
        width: Channels of both convolutions (and of the output).
        stride: Stride of the first convolution.

    Examples:
        >>> import torch
        >>> BasicBlock(8, 16, stride=2)(torch.zeros(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(in_channels, width, 3, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), nn.BatchNorm2d(width)
        self._add_shortcut(in_channels, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x``."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self._join(self.bn2(self.conv2(out)), x)


class Bottleneck(_Residual):
    """1×1 reduce, 3×3 (strided), 1×1 expand ×4, with a residual connection (ResNet-50).

    Args:
        in_channels: Input channels.
        width: Channels of the inner convolutions; the output has ``4 * width``.
        stride: Stride of the 3×3 convolution (torchvision's "ResNet v1.5").

    Examples:
        >>> import torch
        >>> Bottleneck(8, 4, stride=2)(torch.zeros(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(in_channels, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, width * 4, 1), nn.BatchNorm2d(width * 4)
        self._add_shortcut(in_channels, width * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self._join(self.bn3(self.conv3(out)), x)


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier: the stem and ``layer1`` … ``layer4``, strides 2 to 32.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper).
        layers: Number of blocks in ``layer1`` … ``layer4``.
        in_channels: Input channels of ``conv1``.
        arch: torchvision's name for the same network (``"resnet34"``), which enables
            the ``"torchvision"`` weight source; ``None`` for none.

    Attributes:
        out_channels: ``(64, 64, 128, 256, 512)``, ×4 after the stem for bottlenecks.
        reductions: ``(2, 4, 8, 16, 32)``.
        weights_preprocessing: The ImageNet mean/std of torchvision's weights.
        weight_sources: ``("torchvision",)`` when ``arch`` is set.
        stem_weight: ``"conv1.weight"``, adapted by the stem rule for ``in_channels != 3``.
        ignored_weights: ``("fc.",)``: the classifier of a torchvision file is dropped.

    Raises:
        ConfigError: If ``block`` is unknown, ``layers`` does not have 4 positive
            entries, or ``in_channels`` < 1.

    Examples:
        >>> import torch
        >>> ResNetEncoder("bottleneck", (3, 4, 6, 3)).out_channels
        (64, 256, 512, 1024, 2048)
        >>> [tuple(f.shape[1:]) for f in resnet18()(torch.zeros(1, 3, 64, 64))]
        [(64, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
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
        check_choice("block", block, ("basic", "bottleneck"))
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ConfigError(f"layers must be 4 positive block counts, got {layers!r}")
        kind = BasicBlock if block == "basic" else Bottleneck
        # the convolution on raw pixels stays fp32 under autocast (see StemConv2d)
        in_channels = check_positive_int("in_channels", in_channels)
        self.conv1 = StemConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels, stages = 64, []
        for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for j in range(count):
                blocks.append(kind(channels, width, 2 if i > 0 and j == 0 else 1))
                channels = width * kind.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = (64, *(w * kind.expansion for w in (64, 128, 256, 512)))
        self.reductions = (2, 4, 8, 16, 32)
        self.arch = arch
        self.weights_preprocessing: Preprocessing = IMAGENET
        self.weight_sources: tuple[str, ...] = ("torchvision",) if arch else ()
        self.stem_weight = "conv1.weight"
        self.ignored_weights = ("fc.",)

    def load_weight_source(self, source: str) -> Mapping[str, Tensor]:
        """The state dict (``fc.*`` included) of torchvision's ``<Arch>_Weights.DEFAULT``.

        The file comes from (or goes to) torchvision's cache (``$TORCH_HOME/hub``).

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
            tv_models = importlib.import_module("torchvision.models")
        enum = tv_models.get_model_weights(self.arch).DEFAULT
        with foreign_errors(
            EncoderError,
            f"torchvision could not provide the {self.arch} weights {enum}",
            "download the file once or pass its path",
        ):
            state: Mapping[str, Tensor] = enum.get_state_dict(progress=False)
        return state

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the stem output and the four stage outputs of ``x`` (strides 2 to 32)."""
        features = [self.relu(self.bn1(self.conv1(x)))]
        x = self.maxpool(features[0])
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


@register_encoder("resnet18")
def resnet18(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-18 encoder (basic blocks ``(2, 2, 2, 2)``), random weights.

    Load weights with ``UNet(encoder_weights=...)``; other ``in_channels`` adapt them by
    the stem rule. :func:`resnet34` and :func:`resnet50` work alike.

    Examples:
        >>> sum(p.numel() for p in resnet18().parameters())
        11176512
    """
    return ResNetEncoder("basic", (2, 2, 2, 2), in_channels=in_channels, arch="resnet18")


@register_encoder("resnet34")
def resnet34(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-34 encoder (basic blocks ``(3, 4, 6, 3)``), as :func:`resnet18`.

    Examples:
        >>> sum(p.numel() for p in resnet34().parameters())
        21284672
    """
    return ResNetEncoder("basic", (3, 4, 6, 3), in_channels=in_channels, arch="resnet34")


@register_encoder("resnet50")
def resnet50(*, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-50 encoder (bottlenecks ``(3, 4, 6, 3)``), as :func:`resnet18`.

    Examples:
        >>> sum(p.numel() for p in resnet50().parameters())
        23508032
    """
    return ResNetEncoder("bottleneck", (3, 4, 6, 3), in_channels=in_channels, arch="resnet50")
