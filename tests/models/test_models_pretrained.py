"""Encoder options, families, ``encoder_weights`` (files, state dicts, catseg checkpoints) and
the stem rule, checked against hand-built torchvision-format files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.errors import CheckpointError, ConfigError, MissingFileError
from catseg.models import (
    IMAGENET,
    Preprocessing,
    Registry,
    UNet,
    UNetConfig,
    get_encoder,
)
from catseg.models.encoders import ClassicEncoder
from catseg.models.encoders import registry as registry_module
from catseg.models.encoders.resnet import resnet18


def torchvision_state(depth: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    """A stand-in for torchvision's ``resnet18-f37072fd.pth``: its key names, ``fc.*``
    included and no ``num_batches_tracked`` (as in torchvision's original files)."""
    torch.manual_seed(seed)
    encoder = get_encoder(depth)
    state = {}
    for key, value in encoder.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        noise = torch.randn_like(value) if value.is_floating_point() else value
        state[key] = noise.abs() + 0.1 if key.endswith("running_var") else noise
    width = encoder.out_channels[-1]
    state["fc.weight"] = torch.randn(1000, width)
    state["fc.bias"] = torch.randn(1000)
    return state


@pytest.fixture
def tv_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = torchvision_state()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return path, state


# ------------------------------------------------------------------ encoder options


def test_encoder_options_round_trip_through_config_and_checkpoint(tmp_path: Path) -> None:
    model = UNet(1, 2, encoder="unet", encoder_options={"init_features": 4, "depth": 2})
    assert model.config.init_features == 4
    assert model.config.depth == 2
    assert model.encoder.out_channels == (4, 8, 16)
    data = model.config.to_dict()
    assert json.loads(json.dumps(data)) == data
    clone = UNet.from_config(data)
    assert [tuple(v.shape) for v in clone.state_dict().values()] == [
        tuple(v.shape) for v in model.state_dict().values()
    ]
    path = save_checkpoint(tmp_path / "m.pt", model)
    rebuilt = load_checkpoint(path).build_model()
    assert rebuilt.config == model.config


def test_plugin_options_are_recorded_and_replayed(fresh_global: Registry) -> None:
    @fresh_global.register("test_wide")
    def wide(*, in_channels: int = 3, scale: int = 1, tag: str = "x") -> object:
        encoder = resnet18(in_channels=in_channels)
        encoder.seen = (scale, tag)  # type: ignore[assignment]
        return encoder

    model = UNet(3, 1, encoder="test_wide", encoder_options={"scale": 3, "tag": "y"})
    assert model.encoder.seen == (3, "y")
    assert model.config.encoder_options == {"scale": 3, "tag": "y"}
    clone = UNet.from_config(model.config.to_dict())
    assert clone.encoder.seen == (3, "y")
    with pytest.raises(
        ConfigError,
        match=r"encoder 'test_wide' has no options 'scael', 'tga'; accepted options: "
        r"\['scale', 'tag'\]",
    ):
        UNet(encoder="test_wide", encoder_options={"scael": 1, "tga": "z"})
    with pytest.raises(ConfigError, match=r"encoder_options\['scale'\] must be JSON-like"):
        UNet(encoder="test_wide", encoder_options={"scale": object()})


def test_classic_options_given_twice_conflict() -> None:
    with pytest.raises(ConfigError, match=r"depth is given twice: depth=3 and encoder_options"):
        UNetConfig(depth=3, encoder_options={"depth": 2})
    # the old keyword route and the options route build the same model
    assert (
        UNet(init_features=4, depth=2).config
        == UNet(encoder_options={"init_features": 4, "depth": 2}).config
    )


def test_unet_goes_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []

    def spy(  # options declared explicitly: **kwargs is refused
        *,
        in_channels: int,
        init_features: int,
        depth: int,
        norm: str,
        activation: str,
        dropout: float,
    ) -> object:
        kwargs: dict[str, Any] = dict(in_channels=in_channels, init_features=init_features)
        kwargs.update(depth=depth, norm=norm, activation=activation, dropout=dropout)
        calls.append(kwargs)
        return ClassicEncoder(**kwargs)

    fresh = Registry(entry_point_group=None)
    fresh.register("unet")(spy)
    monkeypatch.setattr(registry_module, "_REGISTRY", fresh)
    UNet(1, 1, init_features=4, depth=2, norm="group")
    assert calls == [
        {
            "in_channels": 1,
            "init_features": 4,
            "depth": 2,
            "norm": "group",
            "activation": "relu",
            "dropout": 0.0,
        }
    ]


def test_family_member_in_unet_round_trips(fresh_global: Registry) -> None:
    @fresh_global.register("testfam:")
    def resolve(member: str) -> object:
        return {"small": resnet18}[member]

    model = UNet(3, 1, encoder="testfam:small")
    assert UNet.from_config(model.config.to_dict()).config == model.config


# ------------------------------------------------------------------ encoder_weights


def test_torchvision_file_loads_every_tensor_exactly(tv_file: tuple[Path, dict]) -> None:
    path, state = tv_file
    model = UNet(3, 1, encoder="resnet18", encoder_weights=path)
    loaded = model.encoder.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            assert key not in loaded
        else:
            assert torch.equal(loaded[key], value), key
    assert all(int(v) == 0 for k, v in loaded.items() if k.endswith("num_batches_tracked"))
    assert model.preprocessing == IMAGENET
    # the caller's dict is not modified, the model does not alias it
    assert "fc.weight" in state
    model.encoder.conv1.weight.data.add_(1.0)
    assert not torch.equal(model.encoder.conv1.weight, state["conv1.weight"])


def test_state_dict_and_str_path_and_safetensors(tmp_path: Path, tv_file: tuple) -> None:
    path, state = tv_file
    a = UNet(3, 1, encoder="resnet18", encoder_weights=state)
    b = UNet(3, 1, encoder="resnet18", encoder_weights=str(path))
    assert torch.equal(a.encoder.layer4[1].conv2.weight, b.encoder.layer4[1].conv2.weight)
    file = tmp_path / "r18.safetensors"
    try:
        from safetensors.torch import save_file
    except ImportError:  # CI: safetensors is optional; reading it names the package
        from catseg.errors import OptionalDependencyError

        file.write_bytes(b"x")
        with pytest.raises(OptionalDependencyError, match=r"pip install safetensors"):
            UNet(3, 1, encoder="resnet18", encoder_weights=file)
        return
    save_file(state, str(file))  # the second environment (catseg[timm]) has safetensors
    c = UNet(3, 1, encoder="resnet18", encoder_weights=file)
    assert torch.equal(a.encoder.layer4[1].conv2.weight, c.encoder.layer4[1].conv2.weight)


def test_stem_rule_one_channel_matches_grey_repeated_to_rgb(tv_file: tuple) -> None:
    path, _ = tv_file
    rgb = UNet(3, 1, encoder="resnet18", encoder_weights=path).eval()
    grey = UNet(1, 1, encoder="resnet18", encoder_weights=path).eval()
    x = torch.rand(2, 1, 40, 56)
    with torch.no_grad():
        expected = rgb.encoder.conv1(x.expand(-1, 3, -1, -1))
        got = grey.encoder.conv1(x)
        assert torch.allclose(got, expected, atol=1e-5)
        # the whole encoder agrees too (same weights after the stem)
        deep_rgb = rgb.encoder(x.expand(-1, 3, -1, -1))[-1]
        deep_grey = grey.encoder(x)[-1]
        scale = deep_rgb.abs().max()  # random stand-in weights: large activations
        assert (deep_grey - deep_rgb).abs().max() <= 1e-5 * scale
    # the recorded preprocessing follows the same rule: the mean of the RGB values
    assert grey.preprocessing == Preprocessing((0.449,), (0.226,))


def test_wrong_keys_are_named_with_the_file(tmp_path: Path, tv_file: tuple) -> None:
    _, state = tv_file
    bad = dict(state)
    del bad["layer1.0.conv1.weight"]
    bad["layer9.weight"] = torch.zeros(1)
    bad["bn1.weight"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError) as info:
        UNet(3, 1, encoder="resnet18", encoder_weights=path)
    message = str(info.value)
    assert str(path) in message
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: layer9.weight" in message
    assert "bn1.weight (7,) vs (64,)" in message
    # resnet34's file into resnet18: unexpected keys named
    with pytest.raises(CheckpointError, match=r"unexpected keys: layer1.2.conv1.weight"):
        UNet(encoder="resnet18", encoder_weights=torchvision_state("resnet34"))


def test_bad_sources_raise_catseg_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"'nowhere.pth' is neither a file nor a weight"):
        UNet(encoder="resnet18", encoder_weights="nowhere.pth")
    with pytest.raises(ConfigError, match=r"encoder_weights must be a file path"):
        UNet(encoder="resnet18", encoder_weights=3)  # type: ignore[arg-type]
    pickled = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "obj": Path("x")}, pickled)
    with pytest.raises(CheckpointError, match=r"cannot be read safely.*weights_only=True"):
        UNet(encoder="resnet18", encoder_weights=pickled)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.pth is not .*a torch.save zip archive"):
        UNet(encoder="resnet18", encoder_weights=text)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match=r"holds a list, expected a state dict"):
        UNet(encoder="resnet18", encoder_weights=listed)


def test_catseg_checkpoint_reuses_encoder_and_preprocessing(tmp_path: Path) -> None:
    torch.manual_seed(1)
    donor = UNet(3, 4, encoder="resnet18")
    donor.describe(classes=["a", "b", "c", "d"], mean=(0.3, 0.4, 0.5), std=(0.2, 0.2, 0.2))
    path = save_checkpoint(tmp_path / "donor.pt", donor)
    model = UNet(3, 1, encoder="resnet18", encoder_weights=path)
    for key, value in donor.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    assert model.preprocessing == donor.preprocessing
    # the decoder is new (a different head), not copied
    assert model.head.out_channels == 1


def test_classic_encoder_has_no_named_source() -> None:
    with pytest.raises(MissingFileError, match=r"nor a weight source of ClassicEncoder"):
        UNet(encoder_weights="torchvision")


def test_torchvision_source_without_torchvision_names_the_fix() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        from catseg.errors import OptionalDependencyError

        with pytest.raises(OptionalDependencyError, match=r"needs torchvision"):
            UNet(encoder="resnet18", encoder_weights="torchvision")
    else:  # torchvision present: the source is covered in test_models_torchvision.py
        assert "torchvision" in get_encoder("resnet18").weight_sources  # type: ignore[operator]
