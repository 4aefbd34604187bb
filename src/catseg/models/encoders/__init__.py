"""Encoders (backbones) for the UNet: the contract, the registry and the built-ins.

Examples:
    >>> from catseg.models.encoders import list_encoders
    >>> [name for name in list_encoders() if name in {"unet", "resnet18"}]
    ['resnet18', 'unet']
"""

from __future__ import annotations

from catseg.models.encoders.base import Encoder, EncoderFactory, validate_encoder
from catseg.models.encoders.classic import ClassicEncoder, unet_encoder
from catseg.models.encoders.registry import (
    ENTRY_POINT_GROUP,
    Registry,
    default_registry,
    get_encoder,
    list_encoders,
    register_encoder,
)
from catseg.models.encoders.resnet import ResNetEncoder, resnet18, resnet34, resnet50

__all__ = [
    "ENTRY_POINT_GROUP",
    "ClassicEncoder",
    "Encoder",
    "EncoderFactory",
    "Registry",
    "ResNetEncoder",
    "default_registry",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "resnet18",
    "resnet34",
    "resnet50",
    "unet_encoder",
    "validate_encoder",
]
