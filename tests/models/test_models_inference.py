"""Inference helpers: BatchNorm folding, channels_last, torch.compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from catseg.models import UNet
from catseg.models._fuse import fold_batchnorms, fuse_conv_bn


def with_trained_statistics(model: UNet, size: int = 32) -> UNet:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None
            assert m.running_var is not None
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model.eval()


def n_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fuse_conv_bn_matches_formula() -> None:
    conv = nn.Conv2d(2, 3, 3, bias=True)
    bn = nn.BatchNorm2d(3, eps=1e-3).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))  # type: ignore[union-attr]
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))  # type: ignore[union-attr]
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 0.5, 1.0]))
    x = torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        expected = bn(conv(x))
        scale = bn.weight / torch.sqrt(bn.running_var + 1e-3)  # type: ignore[operator]
        weight = conv.weight * scale.view(-1, 1, 1, 1)
        assert conv.bias is not None
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
        fuse_conv_bn(conv, bn)
        torch.testing.assert_close(conv.weight, weight)
        torch.testing.assert_close(conv.bias, bias)
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"init_features": 8, "depth": 3},
        {"encoder": "resnet18", "upsample": "bilinear"},
    ],
)
def test_fuse_for_inference_equal_within_1e4(kwargs: dict[str, object]) -> None:
    model = with_trained_statistics(UNet(3, 2, **kwargs))  # type: ignore[arg-type]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = n_batchnorms(model)
    fused = model.fuse_for_inference()
    assert n_batchnorms(fused) == 0
    assert n_bn > 0
    assert n_batchnorms(model) == n_bn  # original untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert fused.is_fused
    assert not model.is_fused
    assert not fused.training
    assert not any(p.requires_grad for p in fused.parameters())
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=0)


def test_fuse_with_channels_last() -> None:
    model = with_trained_statistics(UNet(3, 1, init_features=8, depth=3))
    model = model.to(memory_format=torch.channels_last)
    fused = model.fuse_for_inference()
    conv = fused.encoder.blocks[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=0)


def test_fold_leaves_group_norm_alone() -> None:
    model = UNet(3, 1, init_features=8, depth=2, norm="group").eval()
    assert fold_batchnorms(model) == 0
    assert any(isinstance(m, nn.GroupNorm) for m in model.fuse_for_inference().modules())


def test_fold_leaves_a_named_pair_of_different_widths_alone() -> None:
    net = nn.Module()
    net.conv1, net.bn1 = nn.Conv2d(1, 3, 1), nn.BatchNorm2d(4)
    net.conv2, net.bn2 = nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)
    assert fold_batchnorms(net.eval()) == 1
    assert isinstance(net.bn1, nn.BatchNorm2d)
    assert isinstance(net.bn2, nn.Identity)


def test_fold_counts_every_batchnorm_of_default_and_resnet() -> None:
    assert fold_batchnorms(UNet().eval()) == 18
    assert fold_batchnorms(UNet(encoder="resnet50").eval()) == 53 + 2 * 5  # encoder + decoder


@pytest.mark.parametrize("kwargs", [{"init_features": 8, "depth": 3}, {"encoder": "resnet18"}])
def test_channels_last_matches_contiguous(kwargs: dict[str, object]) -> None:
    model = with_trained_statistics(UNet(3, 2, **kwargs))  # type: ignore[arg-type]
    x = torch.rand(2, 3, 29, 35)
    with torch.no_grad():
        expected = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_channels_last_training_gradients_match() -> None:
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2)
    clone = UNet.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    clone = clone.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 16, 16)
    model(x).square().mean().backward()
    clone(x.contiguous(memory_format=torch.channels_last)).square().mean().backward()
    for (name, p), q in zip(model.named_parameters(), clone.parameters(), strict=True):
        assert p.grad is not None, name
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_torch_compile_forward_backward() -> None:
    # aot_eager traces with dynamo + AOT autograd (the whole torch.compile front end)
    # without a C++ toolchain; the inductor test below is marked slow.
    model = UNet(3, 2, init_features=4, depth=2)
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.rand(2, 3, 20, 28)
    out = compiled(x)
    torch.testing.assert_close(out, model(x))
    out.sum().backward()
    assert model.head.bias.grad is not None


@pytest.mark.slow
@pytest.mark.filterwarnings(
    # torch's own torch/utils/mkldnn.py, imported by inductor, uses torch.jit.script_method
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
def test_torch_compile_inductor() -> None:
    model = UNet(3, 1, init_features=4, depth=2).eval()
    compiled = torch.compile(model)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ["unet", "resnet18"])
def test_the_conv_on_raw_pixels_runs_in_fp32_under_autocast(encoder: str) -> None:
    from catseg.models.blocks import StemConv2d

    sizes = {"init_features": 4, "depth": 2} if encoder == "unet" else {}
    model = UNet(3, 1, encoder=encoder, **sizes).eval()  # type: ignore[arg-type]
    stems = [m for m in model.modules() if isinstance(m, StemConv2d)]
    assert len(stems) == 1  # exactly the first convolution
    stem = stems[0]
    assert stem.in_channels == 3
    x = torch.rand(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = stem(x)
    exact = torch.nn.functional.conv2d(
        x, stem.weight, stem.bias, stem.stride, stem.padding, stem.dilation, stem.groups
    )
    assert low.dtype == torch.bfloat16
    assert torch.equal(low, exact.to(torch.bfloat16))  # fp32 math, one final rounding
    torch.testing.assert_close(stem(x), exact)  # outside autocast: a plain Conv2d
