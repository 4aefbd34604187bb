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
    PretrainedEncoder,
    Registry,
    get_encoder,
    list_encoders,
    register_encoder,
    validate_encoder,
)
from catseg.models.finetune import freeze_encoder, param_groups, unfreeze_encoder
from catseg.models.preprocessing import IMAGENET, Preprocessing
from catseg.models.unet import UNet, UNetConfig
from catseg.models.weights import EncoderWeights, adapt_stem_weight, load_encoder_weights

__all__ = [
    "IMAGENET",
    "Encoder",
    "EncoderFactory",
    "EncoderWeights",
    "Preprocessing",
    "PretrainedEncoder",
    "Registry",
    "UNet",
    "UNetConfig",
    "adapt_stem_weight",
    "freeze_encoder",
    "get_encoder",
    "list_encoders",
    "load_encoder_weights",
    "param_groups",
    "register_encoder",
    "unfreeze_encoder",
    "validate_encoder",
]
