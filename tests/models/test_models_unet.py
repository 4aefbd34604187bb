"""UNet: architecture, any input size, config round trips, input errors."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from catseg.errors import ConfigError, DTypeError, EncoderError, ShapeError
from catseg.models import UNet, UNetConfig, list_encoders
from catseg.models.encoders.classic import ClassicEncoder


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_unet_has_the_tutorials_parameter_count() -> None:
    # Widths 32, 64, 128, 256, 512; every 3x3 conv has a bias (as in the tutorial),
    # each BatchNorm has weight+bias (2 per channel).
    # block(i, o) = 9·i·o + o (conv1) + 2o (bn) + 9·o·o + o (conv2) + 2o (bn)
    def block(i: int, o: int) -> int:
        return 9 * i * o + o + 2 * o + 9 * o * o + o + 2 * o

    encoder = block(3, 32) + block(32, 64) + block(64, 128) + block(128, 256) + block(256, 512)
    # decoder: ConvTranspose2d(2c -> c, k=2, s=2) with bias, then block(2c -> c)
    decoder = sum(4 * (2 * c) * c + c + block(2 * c, c) for c in (256, 128, 64, 32))
    head = 32 * 1 + 1  # 1x1 conv with bias
    assert encoder == 4_716_192
    assert decoder == 3_049_760
    assert encoder + decoder + head == 7_765_985
    model = UNet(3, 1)
    assert n_params(model) == 7_765_985
    assert n_params(model.encoder) == encoder
    assert n_params(model.decoder) == decoder
    assert n_params(model.head) == head


def test_default_architecture_layers() -> None:
    model = UNet()
    assert model.stride == 16
    assert model.in_channels == 3
    assert model.num_classes == 1
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (512, 256, (2, 2), (2, 2)),
        (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2)),
        (64, 32, (2, 2), (2, 2)),
    ]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 18
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 1  # shared, used 4x


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (31, 31), (250, 333), (16, 16), (2, 97)])
def test_tiny_classic_any_size(size: tuple[int, int]) -> None:
    model = UNet(3, 2, init_features=4, depth=4).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 2, *size)
    assert torch.isfinite(out).all()


def test_padding_is_zero_padding_bottom_right() -> None:
    # The logits of a padded input equal the crop of the logits of the explicitly
    # zero-padded input: padding happens at the bottom and right only.
    model = UNet(1, 1, init_features=4, depth=2).eval()
    x = torch.rand(1, 1, 5, 6)
    padded = torch.zeros(1, 1, 8, 8)
    padded[:, :, :5, :6] = x
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[:, :, :5, :6])


def test_input_is_not_modified() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    x = torch.rand(2, 3, 9, 9)
    before = x.clone()
    model(x).sum().backward()
    assert torch.equal(x, before)


def test_returns_logits_not_probabilities() -> None:
    # With a zero head weight and bias 3 the output is exactly the bias: no sigmoid
    # (which would give 0.9526) or softmax is applied inside forward.
    model = UNet(3, 2, init_features=4, depth=2).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(3.0)
        out = model(torch.rand(2, 3, 16, 16))
    assert torch.equal(out, torch.full((2, 2, 16, 16), 3.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm": "layer"}, r"norm must be one of 'batch', 'group', 'instance', 'none'; got"),
        ({"activation": "tanh"}, r"activation must be one of .*got 'tanh'"),
        ({"upsample": "nearest"}, r"upsample must be one of .*got 'nearest'"),
        ({"dropout": 1.0}, r"dropout must be a finite number in \[0.0, 1.0\), got 1.0"),
        ({"depth": 0}, r"depth must be an int >= 1, got 0"),
        ({"init_features": 2.5}, r"init_features must be an int, got 2.5"),
        ({"decoder_channels": [8, 4]}, r"decoder_channels must have 4 entries .* got 2"),
        ({"encoder": "resnet18", "depth": 3}, r"classic 'unet' encoder only.*depth=3"),
    ],
)
def test_invalid_options_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UNet(3, 1, **kwargs)  # type: ignore[arg-type]


def test_unknown_encoder_did_you_mean() -> None:
    with pytest.raises(EncoderError, match=r"unknown encoder 'resnet19'; did you mean 'resnet18'"):
        UNet(encoder="resnet19")


def test_unknown_encoder_option_lists_accepted_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"encoder 'unet' has no option 'pretrained'; accepted options: "
        r"\['activation', 'depth', 'dropout', 'init_features', 'norm'\]",
    ):
        UNet(encoder_options={"pretrained": True})
    with pytest.raises(ConfigError, match=r"encoder 'resnet18' has no option 'width'; accepted "):
        UNet(encoder="resnet18", encoder_options={"width": 3})


def test_wrong_channel_count_names_shape() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(ShapeError, match=r"expects 3 input channels, got shape \(2, 1, 8, 8\)"):
        model(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("shape", [(3, 8, 8), (8, 8), (1, 1, 3, 8, 8)])
def test_non_4d_input(shape: tuple[int, ...]) -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(ShapeError, match=r"4-D batch \(N, 3, H, W\), got shape"):
        model(torch.rand(*shape))


def test_3d_input_hint() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(ShapeError, match=r"unsqueeze\(0\)"):
        model(torch.rand(3, 8, 8))


def test_integer_input_dtype_error() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(DTypeError, match=r"floating-point input, got torch.uint8"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_empty_spatial_input() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    with pytest.raises(ShapeError, match=r"H, W >= 1, got shape \(1, 3, 0, 8\)"):
        model(torch.zeros(1, 3, 0, 8))


CONFIGS = [
    {"in_channels": 1, "num_classes": 3, "init_features": 4, "depth": 2},
    {"init_features": 6, "depth": 3, "norm": "group", "activation": "silu", "upsample": "bilinear"},
    {"init_features": 4, "depth": 2, "norm": "instance", "activation": "gelu", "dropout": 0.2},
    {"init_features": 4, "depth": 2, "norm": "none", "decoder_channels": [5, 3]},
    {"encoder": "resnet18", "decoder_channels": [32, 16, 8, 8, 4], "activation": "leaky_relu"},
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_from_config_round_trip_identical_outputs(kwargs: dict[str, object]) -> None:
    model = UNet(**kwargs).eval()  # type: ignore[arg-type]
    data = json.loads(json.dumps(model.config.to_dict()))
    clone = UNet.from_config(data).eval()
    assert clone.config == model.config
    clone.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, model.in_channels, 19, 23)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
    # a UNetConfig object works too, and builds the same architecture
    assert list(UNet.from_config(model.config).state_dict()) == list(model.state_dict())


def test_config_to_dict_is_plain_json() -> None:
    cfg = UNet(3, 2, encoder="resnet34").config
    data = cfg.to_dict()
    assert data == {
        "in_channels": 3,
        "num_classes": 2,
        "encoder": "resnet34",
        "init_features": 32,
        "depth": 4,
        "decoder_channels": None,
        "norm": "batch",
        "activation": "relu",
        "upsample": "transpose",
        "dropout": 0.0,
        "encoder_options": {},
        "encoder_package": None,
        "preprocessing": None,
        "classes": None,
        "mode": "multiclass",
        "image_size": None,
        "threshold": 0.5,
    }
    assert json.loads(json.dumps(data)) == data
    assert UNetConfig.from_dict(data) == cfg


def test_config_is_frozen() -> None:
    cfg = UNetConfig()
    with pytest.raises(AttributeError):
        cfg.depth = 3  # type: ignore[misc]


def test_from_config_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown UNet config key\(s\) \['colour', 'depht'\]"):
        UNet.from_config({"depht": 3, "colour": "red"})
    with pytest.raises(ConfigError, match=r"must be a mapping, got list"):
        UNetConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_the_record_is_validated_once_for_every_fact() -> None:
    binary = UNet(3, 1, init_features=4, depth=2)
    assert binary.config.mode == "binary"
    assert binary.config.class_names == ("_background_", "foreground")
    with pytest.raises(ConfigError, match=r"classes has 3 names but a binary \(1-logit\) model"):
        binary.describe(classes=["bg", "cat", "dog"])
    with pytest.raises(ConfigError, match=r"mode 'binary' needs 1 logit, but num_classes is 3"):
        UNetConfig(num_classes=3, mode="binary")
    with pytest.raises(ConfigError, match=r"threshold must be a finite number in \(0.0, 1.0\)"):
        binary.describe(threshold=1.5)
    with pytest.raises(ConfigError, match=r"image_size \(20000, 20000\) has a side over 16384"):
        binary.describe(image_size=20000)
    with pytest.raises(ConfigError, match=r"preprocessing has 2 channels"):
        binary.describe(mean=(0.5, 0.5), std=(1.0, 1.0))
    with pytest.raises(ConfigError, match=r"mode must be one of"):
        binary.describe(mode="panoptic")  # type: ignore[arg-type]
    multilabel = UNet(3, 3, init_features=4, depth=2).describe(
        classes=["sky", "tree", "car"], mode="multilabel", threshold=[0.3, 0.4, 0.5]
    )
    assert multilabel.config.threshold == (0.3, 0.4, 0.5)
    assert UNet.from_config(multilabel.config.to_dict()).config == multilabel.config
    with pytest.raises(ConfigError, match=r"threshold holds 2 values"):
        multilabel.describe(threshold=[0.5, 0.5])


def test_instance_encoder_config_cannot_be_rebuilt() -> None:
    model = UNet(3, 1, encoder=ClassicEncoder(3, init_features=4, depth=2))
    assert model.config.encoder_instance == "ClassicEncoder"
    with pytest.raises(
        ConfigError,
        match=r"built from an encoder instance \(ClassicEncoder\).*"
        r"register_encoder",
    ):
        model.config.to_dict()
    with pytest.raises(ConfigError, match=r"encoder instance"):
        UNet.from_config(model.config)


def test_instance_encoder_with_options_raises() -> None:
    with pytest.raises(ConfigError, match=r"encoder_options apply to encoders given by name"):
        UNet(encoder=ClassicEncoder(3, init_features=4, depth=2), encoder_options={"depth": 2})


def test_list_encoders_has_builtins() -> None:
    assert {"unet", "resnet18", "resnet34", "resnet50"} <= set(list_encoders())


@settings(max_examples=12, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40), depth=st.integers(1, 3))
def test_any_size_equals_crop_of_explicitly_padded_input(
    height: int, width: int, depth: int
) -> None:
    # Property: for every size, forward == crop(forward(zero-pad to the stride)).
    torch.manual_seed(0)
    model = UNet(2, 1, init_features=2, depth=depth).eval()
    stride = 2**depth
    x = torch.rand(1, 2, height, width)
    padded = torch.zeros(1, 2, -(-height // stride) * stride, -(-width // stride) * stride)
    padded[:, :, :height, :width] = x
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 1, height, width)
        torch.testing.assert_close(out, model(padded)[:, :, :height, :width])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"encoder_name": "resnet34", "classes": 3},
            r"unexpected keyword argument 'encoder_name'; encoder_name: catseg says encoder=; "
            r"classes: catseg says num_classes=",
        ),
        ({"encoder_weights": "imagenet"}, r"catseg says encoder_weights=\"torchvision\" or"),
        ({"activation": "sigmoid"}, r"models return logits"),
        ({"colour": "red"}, r"not understood: got an unexpected keyword argument 'colour'$"),
        ({"in_channels": 3, "dpeth": 2}, r"unexpected keyword argument 'dpeth'"),
    ],
)
def test_unknown_and_smp_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UNet(**kwargs)
    with pytest.raises(ConfigError, match=r"too many positional arguments"):
        UNet(3, 1, "resnet18")  # type: ignore[misc]


def test_signature_is_the_constructors() -> None:
    import inspect

    params = inspect.signature(UNet).parameters
    assert list(params)[:3] == ["in_channels", "num_classes", "encoder"]
    assert "args" not in params
