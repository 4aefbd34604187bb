"""Segmentation models: the configurable :class:`UNet` and its pluggable encoders.

Examples:
    >>> import torch
    >>> from catseg.models import UNet
    >>> model = UNet(3, 1, encoder="resnet18").eval()
    >>> model(torch.rand(1, 3, 33, 47)).shape
    torch.Size([1, 1, 33, 47])
"""

from __future__ import annotations

from catseg.models.encoders import (
    Encoder,
    EncoderFactory,
    Registry,
    get_encoder,
    list_encoders,
    register_encoder,
    validate_encoder,
)
from catseg.models.unet import UNet, UNetConfig

__all__ = [
    "Encoder",
    "EncoderFactory",
    "Registry",
    "UNet",
    "UNetConfig",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "validate_encoder",
]
