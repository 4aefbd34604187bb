"""Encoders (backbones) for the UNet: the contract, the registry and the built-ins.

Examples:
    >>> from catseg.models.encoders import list_encoders
    >>> [name for name in list_encoders() if name in {"unet", "resnet18"}]
    ['resnet18', 'unet']
"""

from __future__ import annotations

from catseg.models.encoders.base import (
    Encoder,
    EncoderFactory,
    PretrainedEncoder,
    validate_encoder,
)
from catseg.models.encoders.classic import ClassicEncoder, unet_encoder
from catseg.models.encoders.registry import (
    ENTRY_POINT_GROUP,
    FAMILY_SEPARATOR,
    EncoderFamily,
    Registry,
    default_registry,
    encoder_options,
    get_encoder,
    list_encoders,
    register_encoder,
    register_encoder_family,
)
from catseg.models.encoders.resnet import ResNetEncoder, resnet18, resnet34, resnet50

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAMILY_SEPARATOR",
    "ClassicEncoder",
    "Encoder",
    "EncoderFactory",
    "EncoderFamily",
    "PretrainedEncoder",
    "Registry",
    "ResNetEncoder",
    "default_registry",
    "encoder_options",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "register_encoder_family",
    "resnet18",
    "resnet34",
    "resnet50",
    "unet_encoder",
    "validate_encoder",
]
