"""The contract test every encoder plugin should have (run with pytest in this folder)."""

from __future__ import annotations

import torch
from catseg_tiny_encoder import TinyEncoder, tiny_encoder

from catseg.models import UNet, get_encoder, list_encoders, validate_encoder


def test_encoder_keeps_the_contract() -> None:
    validate_encoder(tiny_encoder(), in_channels=3)
    validate_encoder(tiny_encoder(in_channels=1), in_channels=1)


def test_discovered_through_the_entry_point() -> None:
    # needs the package installed: pip install -e examples/custom_encoder_plugin
    assert "tiny" in list_encoders()
    assert isinstance(get_encoder("tiny"), TinyEncoder)
    model = UNet(3, 2, encoder="tiny").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 45, 61)).shape == (1, 2, 45, 61)


def test_options_are_recorded() -> None:
    model = UNet(3, 1, encoder="tiny", encoder_options={"widths": [4, 8, 16]})
    assert model.encoder.out_channels == (4, 8, 16)
    assert UNet.from_config(model.config.to_dict()).encoder.out_channels == (4, 8, 16)
