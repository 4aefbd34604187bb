"""Encoders (backbones) for the UNet: the contract, the registry and the built-ins.

Examples:
    >>> from catseg.models.encoders import list_encoders
    >>> [name for name in list_encoders() if name in {"unet", "resnet18"}]
    ['resnet18', 'unet']
"""

from __future__ import annotations

from catseg.models.encoders.base import Encoder, EncoderFactory, PretrainedEncoder, validate_encoder
from catseg.models.encoders.classic import ClassicEncoder
from catseg.models.encoders.registry import Registry, get_encoder, list_encoders, register_encoder
from catseg.models.encoders.resnet import ResNetEncoder, resnet18, resnet34, resnet50

__all__ = [
    "ClassicEncoder",
    "Encoder",
    "EncoderFactory",
    "PretrainedEncoder",
    "Registry",
    "ResNetEncoder",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "resnet18",
    "resnet34",
    "resnet50",
    "validate_encoder",
]
