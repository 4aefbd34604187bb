"""Encoders (backbones) for the UNet: the contract, the registry and the built-ins.

Examples:
    >>> from catseg.models.encoders import list_encoders
    >>> [name for name in list_encoders() if name in {"unet", "resnet18"}]
    ['resnet18', 'unet']
"""

from __future__ import annotations

from catseg.models.encoders import registry
from catseg.models.encoders.base import (
    Encoder,
    EncoderFactory,
    PretrainedEncoder,
    validate_encoder,
)
from catseg.models.encoders.classic import ClassicEncoder, unet_encoder
from catseg.models.encoders.registry import *  # noqa: F403  (listed once in its __all__)
from catseg.models.encoders.resnet import ResNetEncoder, resnet18, resnet34, resnet50

__all__ = [
    "ClassicEncoder",
    "Encoder",
    "EncoderFactory",
    "PretrainedEncoder",
    "ResNetEncoder",
    "resnet18",
    "resnet34",
    "resnet50",
    "unet_encoder",
    "validate_encoder",
]
__all__ += registry.__all__  # the registry's whole API
