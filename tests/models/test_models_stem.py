"""The stem rule (issue 27, point 7): the first convolution of RGB weights adapted to any
``in_channels`` k, checked by hand-computed filters and by the property it promises: a
k-channel input whose channels all equal g gives the RGB model's output on (g, g, g)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from catseg.errors import ConfigError
from catseg.models import IMAGENET, Preprocessing, UNet, adapt_stem_weight


def test_adapt_stem_weight_hand_values() -> None:
    w = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)  # sum 7
    assert adapt_stem_weight(w, 1).flatten().tolist() == [7.0]
    assert adapt_stem_weight(w, 2).flatten().tolist() == [3.5, 3.5]
    assert adapt_stem_weight(w, 3).flatten().tolist() == [1.0, 2.0, 4.0]
    assert adapt_stem_weight(w, 4).flatten().tolist() == [0.75, 1.5, 3.0, 1.75]
    six = adapt_stem_weight(w, 6).flatten().tolist()
    assert six == pytest.approx([0.5, 1.0, 2.0, 7 / 6, 7 / 6, 7 / 6], rel=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 6])
def test_equal_channels_give_the_rgb_output(channels: int) -> None:
    torch.manual_seed(channels)
    weight = torch.randn(16, 3, 7, 7)
    grey = torch.rand(2, 1, 20, 24)
    rgb_out = F.conv2d(grey.expand(-1, 3, -1, -1), weight, stride=2, padding=3)
    adapted = adapt_stem_weight(weight, channels)
    assert adapted.shape == (16, channels, 7, 7)
    out = F.conv2d(grey.expand(-1, channels, -1, -1), adapted, stride=2, padding=3)
    diff = (out - rgb_out).abs().max() / rgb_out.abs().max()
    assert diff < 1e-6, f"k={channels}: relative difference {diff:.3g}"


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_unet_applies_the_rule_and_records_matching_preprocessing(channels: int) -> None:
    source = UNet(3, 1, encoder="resnet18").encoder.state_dict()
    model = UNet(channels, 1, encoder="resnet18", encoder_weights=source)
    want = adapt_stem_weight(source["conv1.weight"], channels)
    assert torch.equal(model.encoder.conv1.weight, want)
    # a channel with the summed filter gets the averaged mean/std; kept RGB ones keep theirs
    mean, std = round(sum(IMAGENET.mean) / 3, 6), round(sum(IMAGENET.std) / 3, 6)
    kept = 3 if channels > 3 else 0
    expected = Preprocessing(
        IMAGENET.mean[:kept] + (mean,) * (channels - kept),
        IMAGENET.std[:kept] + (std,) * (channels - kept),
    )
    assert model.preprocessing == expected
    assert IMAGENET.for_channels(channels) == expected
    assert IMAGENET.for_channels(1) == Preprocessing((0.449,), (0.226,))


@pytest.mark.parametrize(
    ("weight", "in_channels", "message"),
    [
        (torch.ones(3), 1, r"weight must be a 4-d float tensor, got torch.float32 of shape \(3,\)"),
        (torch.ones(2, 3, 1, 1, dtype=torch.long), 1, "got torch.int64 of shape"),
        (None, 1, "weight must be a 4-d float tensor, got None"),
        (torch.ones(2, 0, 1, 1), 1, r"weight must not be empty, got shape \(2, 0, 1, 1\)"),
        (torch.ones(2, 3, 1, 1), 0, "in_channels must be a positive int, got 0"),
        (torch.ones(2, 3, 1, 1), True, "in_channels must be a positive int, got True"),
    ],
)
def test_adapt_stem_weight_refuses_bad_arguments(
    weight: object, in_channels: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        adapt_stem_weight(weight, in_channels)  # type: ignore[arg-type]


def test_preprocessing_from_dict_refuses_a_number() -> None:
    with pytest.raises(ConfigError, match=r"mean must be a non-empty sequence of numbers, got 5"):
        Preprocessing.from_dict({"mean": 5, "std": 1})
