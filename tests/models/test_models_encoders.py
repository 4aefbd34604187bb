"""Built-in encoders: torchvision-compatible ResNets, the classic encoder, validate_encoder."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from catseg.errors import EncoderError
from catseg.models import Encoder, UNet, get_encoder, list_encoders, validate_encoder
from catseg.models.encoders.classic import ClassicEncoder
from catseg.models.encoders.resnet import BasicBlock, Bottleneck, resnet18, resnet34, resnet50

SHAPES_FILE = Path(__file__).with_name("resnet_state_dict_shapes.txt")
RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def torchvision_layout(model: str) -> dict[str, tuple[int, ...]]:
    entries: dict[str, tuple[int, ...]] = {}
    for line in SHAPES_FILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, key, shape = line.split(" ", 2)
        if name == model:
            entries[key] = tuple(ast.literal_eval(shape))
    return entries


@pytest.mark.parametrize(
    ("name", "n_entries", "n_params"),
    [("resnet18", 120, 11_176_512), ("resnet34", 216, 21_284_672), ("resnet50", 318, 23_508_032)],
)
def test_resnet_state_dict_matches_torchvision_layout(
    name: str, n_entries: int, n_params: int
) -> None:
    # torchvision's resnet18/34/50 have 11,689,512 / 21,797,672 / 25,557,032 parameters;
    # without fc (512·1000+1000 = 513,000 or 2048·1000+1000 = 2,049,000) that is n_params.
    encoder = RESNETS[name]()
    expected = torchvision_layout(name)
    assert len(expected) == n_entries
    actual = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert actual == expected
    assert list(actual) == list(expected)  # same order, too
    assert sum(p.numel() for p in encoder.parameters()) == n_params


def test_torchvision_style_state_dict_loads_strictly_into_unet_encoder() -> None:
    # a state dict with torchvision's keys (incl. fc) as a user would have on disk
    gen = torch.Generator().manual_seed(1)
    state = {k: torch.randn(s, generator=gen) for k, s in torchvision_layout("resnet18").items()}
    state = {
        k: (v.abs().long() if k.endswith("num_batches_tracked") else v) for k, v in state.items()
    }
    state["fc.weight"] = torch.randn(1000, 512)
    state["fc.bias"] = torch.randn(1000)
    model = UNet(3, 2, encoder="resnet18")
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = model.encoder.load_state_dict(backbone, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def _bn(x: Tensor, bn: nn.BatchNorm2d) -> Tensor:
    assert bn.running_mean is not None
    assert bn.running_var is not None
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _randomise_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None
            assert m.running_var is not None
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def test_basic_block_against_functional_reference() -> None:
    block = BasicBlock(4, 8, stride=2).eval()
    _randomise_bn(block)
    x = torch.randn(2, 4, 9, 9)
    assert block.downsample is not None
    conv_ds, bn_ds = block.downsample[0], block.downsample[1]
    assert isinstance(bn_ds, nn.BatchNorm2d)
    out = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    out = _bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    shortcut = _bn(F.conv2d(x, conv_ds.weight, stride=2), bn_ds)
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(out + shortcut))


def test_bottleneck_strides_on_the_3x3_conv() -> None:
    # torchvision's "ResNet v1.5": the 3x3 conv carries the stride, the 1x1s do not
    block = Bottleneck(16, 4, stride=2)
    assert block.conv1.stride == (1, 1)
    assert block.conv2.stride == (2, 2)
    assert block.conv3.stride == (1, 1)
    assert block.conv3.out_channels == 16
    assert block.downsample is not None


def test_resnet_stem_feature_is_conv_bn_relu() -> None:
    encoder = resnet18().eval()
    _randomise_bn(encoder)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        stem = encoder(x)[0]
        expected = F.relu(_bn(F.conv2d(x, encoder.conv1.weight, stride=2, padding=3), encoder.bn1))
    torch.testing.assert_close(stem, expected)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "unet"])
def test_builtin_encoders_pass_validation(name: str) -> None:
    encoder = get_encoder(name, in_channels=2)
    assert isinstance(encoder, Encoder)
    validate_encoder(encoder, in_channels=2)


def test_resnet_in_channels() -> None:
    assert resnet34(in_channels=1).conv1.weight.shape == (64, 1, 7, 7)
    assert resnet50().out_channels == (64, 256, 512, 1024, 2048)
    assert resnet18().reductions == (2, 4, 8, 16, 32)


# --------------------------------------------------------------------------- validate_encoder


class FakeEncoder(nn.Module):
    """An encoder whose forward returns whatever the test wants."""

    def __init__(
        self, channels: tuple[int, ...], reductions: tuple[int, ...], actual: list[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.out_channels = channels
        self.reductions = reductions
        self.actual = actual  # (channels, reduction) of each returned map

    def forward(self, x: Tensor) -> list[Tensor]:
        n, _, h, w = x.shape
        return [torch.zeros(n, c, h // r, w // r) for c, r in self.actual]


@pytest.mark.parametrize(
    ("encoder", "match"),
    [
        (
            FakeEncoder((4, 8), (2, 4), [(4, 2), (6, 4)]),
            r"feature map 1 has 6 channels, expected 8",
        ),
        (FakeEncoder((4, 8), (2, 4), [(4, 2), (8, 2)]), r"feature map 1 has shape \(1, 8, 2, 2\)"),
        (FakeEncoder((4, 8), (2, 4), [(4, 2)]), r"returned 1 feature maps, expected 2"),
        (FakeEncoder((4, 8), (4, 2), [(4, 4), (8, 2)]), r"strictly increasing, got \(4, 2\)"),
        (FakeEncoder((4, 8), (2, 2), [(4, 2), (8, 2)]), r"strictly increasing"),
        (FakeEncoder((4, 8), (2, 3), [(4, 2), (8, 3)]), r"3 is not a multiple of 2"),
        (FakeEncoder((4, 8), (2,), [(4, 2)]), r"out_channels has 2 entries but reductions has 1"),
        (FakeEncoder((), (), []), r"declares no feature maps"),
        (FakeEncoder((0,), (1,), [(0, 1)]), r"out_channels must all be >= 1"),
    ],
)
def test_validate_encoder_names_first_mismatch(encoder: nn.Module, match: str) -> None:
    with pytest.raises(EncoderError, match=match):
        validate_encoder(encoder)


def test_validate_encoder_other_failures() -> None:
    with pytest.raises(EncoderError, match=r"must be a torch.nn.Module, got <class 'str'>"):
        validate_encoder("resnet18")

    class NoAttrs(nn.Module):
        def forward(self, x: Tensor) -> list[Tensor]:
            return [x]

    with pytest.raises(EncoderError, match=r"NoAttrs has no 'out_channels' attribute"):
        validate_encoder(NoAttrs())

    class Raises(FakeEncoder):
        def forward(self, x: Tensor) -> list[Tensor]:
            raise RuntimeError("boom")

    with pytest.raises(EncoderError, match=r"Raises failed on a dummy input of shape .*boom"):
        validate_encoder(Raises((3,), (1,), []))

    class ReturnsTensor(FakeEncoder):
        def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
            return x

    with pytest.raises(EncoderError, match=r"must return a list of tensors"):
        validate_encoder(ReturnsTensor((3,), (1,), []))


def test_validate_encoder_restores_training_mode_and_checks_size() -> None:
    encoder = ClassicEncoder(3, init_features=2, depth=1)
    validate_encoder(encoder, size=6)
    assert encoder.training
    with pytest.raises(EncoderError, match=r"size must be a positive multiple of 2, got 5"):
        validate_encoder(encoder, size=5)


def test_unet_rejects_instance_breaking_static_contract() -> None:
    with pytest.raises(EncoderError, match=r"strictly increasing"):
        UNet(encoder=FakeEncoder((4, 8), (4, 2), []))


# ------------------------------------------------------------- decoder adapts to any encoder


class StridedEncoder(nn.Module):
    """A tiny encoder with configurable strides (each a power of two)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], reductions: tuple[int, ...]):
        super().__init__()
        self.out_channels = widths
        self.reductions = reductions
        layers = []
        previous_c, previous_r = in_channels, 1
        for c, r in zip(widths, reductions, strict=True):
            k = r // previous_r
            layers.append(nn.Conv2d(previous_c, c, kernel_size=k, stride=k))
            previous_c, previous_r = c, r
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for layer in self.layers:
            x = torch.relu(layer(x))
            out.append(x)
        return out


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
@pytest.mark.parametrize(
    ("widths", "reductions", "n_stages"),
    [((4, 8, 16), (2, 4, 8), 3), ((6, 12), (4, 16), 2), ((5,), (8,), 1), ((3, 5), (1, 4), 1)],
)
def test_decoder_adapts_to_widths_and_strides(
    widths: tuple[int, ...], reductions: tuple[int, ...], n_stages: int, upsample: str
) -> None:
    encoder = StridedEncoder(2, widths, reductions)
    validate_encoder(encoder, in_channels=2)
    model = UNet(2, 3, encoder=encoder, upsample=upsample).eval()  # type: ignore[arg-type]
    assert len(model.decoder) == n_stages
    assert model.stride == reductions[-1]
    with torch.no_grad():
        assert model(torch.rand(1, 2, 13, 30)).shape == (1, 3, 13, 30)


def test_resnet_decoder_default_widths() -> None:
    model = UNet(encoder="resnet50")
    # skips (64, 256, 512, 1024) capped at 256, deepest first, then a final stage of 32
    assert [stage.block[0].out_channels for stage in model.decoder] == [256, 256, 256, 64, 32]
    assert model.head.in_channels == 32
    assert model.stride == 32


# ------------------------------------------------------------ every registered encoder


@pytest.mark.parametrize("name", sorted(set(list_encoders()) & {"unet", *RESNETS}))
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (31, 31)])
def test_every_encoder_any_size(name: str, size: tuple[int, int]) -> None:
    kwargs = {"init_features": 4, "depth": 3} if name == "unet" else {}
    model = UNet(3, 2, encoder=name, **kwargs).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 2, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["unet", "resnet18", "resnet34", "resnet50"])
def test_every_encoder_forward_backward(name: str) -> None:
    kwargs = {"init_features": 4, "depth": 3} if name == "unet" else {}
    model = UNet(3, 1, encoder=name, **kwargs).train()  # type: ignore[arg-type]
    x = torch.rand(2, 3, 32, 32)
    loss = model(x).square().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.encoder.parameters().__next__().grad is not None
    head_grad = model.head.bias.grad
    assert head_grad is not None
    assert head_grad.abs().sum() > 0


def test_missing_torchvision_and_failed_download_keep_their_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    from catseg.errors import OptionalDependencyError
    from catseg.models.encoders import resnet

    real_import = importlib.import_module

    def no_torchvision(name: str, package: str | None = None) -> object:
        if name.startswith("torchvision"):
            raise ImportError("no torchvision here")
        return real_import(name, package)

    monkeypatch.setattr(resnet.importlib, "import_module", no_torchvision)
    with pytest.raises(OptionalDependencyError) as missing:
        resnet18().load_weight_source("torchvision")
    assert str(missing.value) == (
        'encoder_weights="torchvision" needs torchvision (ImportError: no torchvision here); '
        "install it with pip install torchvision, or pass the .pth file's path"
    )
    assert isinstance(missing.value.__cause__, ImportError)

    class Enum:
        def __repr__(self) -> str:
            return "ResNet18_Weights.IMAGENET1K_V1"

        def get_state_dict(self, progress: bool) -> object:
            raise OSError("offline")

    class Models:
        @staticmethod
        def get_model_weights(arch: str) -> object:
            return types.SimpleNamespace(DEFAULT=Enum())

    monkeypatch.setattr(resnet.importlib, "import_module", lambda name: Models())
    with pytest.raises(EncoderError) as failed:
        resnet18().load_weight_source("torchvision")
    assert str(failed.value) == (
        "torchvision could not provide the resnet18 weights ResNet18_Weights.IMAGENET1K_V1 "
        "(OSError: offline); download the file once or pass its path"
    )
    assert isinstance(failed.value.__cause__, OSError)
