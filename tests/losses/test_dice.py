"""Tests for soft_dice / SoftDice / DiceLoss: hand-computed values, options, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from catseg.errors import ConfigError, DataError, DTypeError, ShapeError
from catseg.losses import DiceLoss, soft_dice

# The 2x2 example of the docs: probabilities and a binary target.
P = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]])
T = torch.tensor([[[1, 0], [1, 0]]])


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def test_hand_computed_2x2_binary() -> None:
    # intersection 0.9 + 0.6 = 1.5, sum p = 1.8, sum g = 2, smooth 1
    expected = (2 * 1.5 + 1) / (1.8 + 2 + 1)
    assert soft_dice(P, T, from_logits=False).item() == pytest.approx(expected, abs=1e-6)
    assert DiceLoss(from_logits=False)(P, T).item() == pytest.approx(1 - expected, abs=1e-6)
    # the same through logits (sigmoid inside)
    assert DiceLoss()(_logit(P), T).item() == pytest.approx(1 - expected, abs=1e-6)


def test_hand_computed_squared_and_no_smooth() -> None:
    # squared: sum p^2 = 0.81 + 0.04 + 0.36 + 0.01 = 1.22, sum g^2 = 2
    got = soft_dice(P, T, from_logits=False, squared=True, smooth=0.0)
    assert got.item() == pytest.approx(3.0 / 3.22, abs=1e-6)
    got = soft_dice(P, T, from_logits=False, smooth=0.0)
    assert got.item() == pytest.approx(3.0 / 3.8, abs=1e-6)


def test_float_channel_target_equals_label_map() -> None:
    float_target = T.unsqueeze(1).float()
    assert soft_dice(P, float_target, from_logits=False).item() == pytest.approx(
        soft_dice(P, T, from_logits=False).item(), abs=1e-7
    )
    assert soft_dice(P, T.unsqueeze(1), from_logits=False).item() == pytest.approx(
        soft_dice(P, T, from_logits=False).item(), abs=1e-7
    )


def test_multiclass_hand_computed_with_ignore() -> None:
    probs = torch.tensor(
        [[[[0.7, 0.1], [0.2, 0.5]], [[0.2, 0.8], [0.3, 0.25]], [[0.1, 0.1], [0.5, 0.25]]]]
    )
    target = torch.tensor([[[0, 1], [2, 255]]])  # last pixel ignored
    # valid pixels: (0,0) c0, (0,1) c1, (1,0) c2
    d0 = (2 * 0.7 + 1) / (0.7 + 0.1 + 0.2 + 1 + 1)
    d1 = (2 * 0.8 + 1) / (0.2 + 0.8 + 0.3 + 1 + 1)
    d2 = (2 * 0.5 + 1) / (0.1 + 0.1 + 0.5 + 1 + 1)
    got = soft_dice(probs, target, mode="multiclass", from_logits=False)
    assert got.item() == pytest.approx((d0 + d1 + d2) / 3, abs=1e-6)
    got = soft_dice(probs, target, mode="multiclass", from_logits=False, include_background=False)
    assert got.item() == pytest.approx((d1 + d2) / 2, abs=1e-6)
    weights = [0.0, 1.0, 3.0]
    got = soft_dice(probs, target, mode="multiclass", from_logits=False, class_weights=weights)
    assert got.item() == pytest.approx((d1 + 3 * d2) / 4, abs=1e-6)


def test_ignored_pixels_equal_cropping_them_out() -> None:
    logits = torch.randn(2, 3, 4, 6)
    target = torch.randint(0, 3, (2, 4, 6))
    target[:, :, 4:] = 255
    full = soft_dice(logits, target, mode="multiclass")
    # The softmax is per pixel, so cropping the ignored columns must give the same value.
    cropped = soft_dice(logits[..., :4], target[..., :4], mode="multiclass")
    assert full.item() == pytest.approx(cropped.item(), abs=1e-6)
    binary = soft_dice(logits[:, :1], target.clamp(max=1).masked_fill(target == 255, 255))
    assert math.isfinite(binary.item())


def test_image_scope_is_mean_of_per_image_values() -> None:
    logits = torch.randn(3, 1, 5, 5)
    target = torch.randint(0, 2, (3, 5, 5))
    per_image = [soft_dice(logits[i : i + 1], target[i : i + 1]).item() for i in range(3)]
    got = soft_dice(logits, target, reduction_scope="image").item()
    assert got == pytest.approx(sum(per_image) / 3, abs=1e-6)
    assert soft_dice(logits, target).item() != pytest.approx(got, abs=1e-6)


def test_empty_class_values_per_scope() -> None:
    # Probabilities exactly 0 and an empty target: D = s / s = 1, or 0 with smooth = 0.
    probs = torch.zeros(2, 1, 2, 2)
    target = torch.zeros(2, 2, 2, dtype=torch.long)
    for scope in ("batch", "image"):
        assert soft_dice(probs, target, from_logits=False, reduction_scope=scope).item() == 1.0
        got = soft_dice(probs, target, from_logits=False, smooth=0.0, reduction_scope=scope)
        assert got.item() == 0.0
    # Image 0 has the class and a perfect prediction, image 1 is empty and predicted empty.
    probs[0, 0, 0, 0] = 1.0
    target[0, 0, 0] = 1
    assert soft_dice(probs, target, from_logits=False, smooth=0.0).item() == 1.0
    image = soft_dice(probs, target, from_logits=False, smooth=0.0, reduction_scope="image")
    assert image.item() == pytest.approx(0.5)  # (1 + 0) / 2: the empty image scores 0


def test_bf16_input_computed_in_fp32() -> None:
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    low = soft_dice(logits.bfloat16(), target, mode="multiclass")
    assert low.dtype == torch.float32
    ref = soft_dice(logits.bfloat16().float(), target, mode="multiclass")
    assert low.item() == pytest.approx(ref.item(), abs=1e-6)
    assert soft_dice(logits.double(), target, mode="multiclass").dtype == torch.float64


def test_dice_loss_is_one_minus_the_coefficient() -> None:
    logits = torch.randn(2, 4, 6, 6)
    target = torch.randint(0, 4, (2, 6, 6))
    kwargs = {"mode": "multiclass", "squared": True, "reduction_scope": "image"}
    ref = soft_dice(logits, target, **kwargs)  # type: ignore[arg-type]
    assert DiceLoss(**kwargs)(logits, target).item() == pytest.approx(1 - ref.item())  # type: ignore[arg-type]
    assert "multiclass" in repr(DiceLoss(mode="multiclass"))


def test_inputs_not_modified() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, 0] = 255
    logits_copy, target_copy = logits.clone(), target.clone()
    DiceLoss(mode="multiclass")(logits, target)
    assert torch.equal(logits, logits_copy)
    assert torch.equal(target, target_copy)


MODES = [
    (mode, scope, squared, from_logits)
    for mode in ("binary", "multiclass")
    for scope in ("batch", "image")
    for squared in (False, True)
    for from_logits in (True, False)
]


@pytest.mark.parametrize(("mode", "scope", "squared", "from_logits"), MODES)
def test_gradcheck_float64(mode: str, scope: str, squared: bool, from_logits: bool) -> None:
    channels = 1 if mode == "binary" else 3
    gen = torch.Generator().manual_seed(1)
    raw = torch.randn(2, channels, 3, 3, generator=gen, dtype=torch.float64)
    if not from_logits:  # probabilities strictly inside (0, 1)
        raw = torch.sigmoid(raw) if mode == "binary" else torch.softmax(raw, 1)
    raw.requires_grad_(True)
    target = torch.randint(0, 2 if mode == "binary" else 3, (2, 3, 3), generator=gen)
    target[0, 0, 0] = 255

    def fn(x: torch.Tensor) -> torch.Tensor:
        return soft_dice(
            x,
            target,
            mode=mode,  # type: ignore[arg-type]
            from_logits=from_logits,
            squared=squared,
            reduction_scope=scope,  # type: ignore[arg-type]
            class_weights=None if mode == "binary" else [1.0, 2.0, 0.5],
        )

    assert torch.autograd.gradcheck(fn, (raw,), eps=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    channels=st.integers(1, 4),
    smooth=st.sampled_from([0.0, 1e-5, 1.0, 10.0]),
    squared=st.booleans(),
    scope=st.sampled_from(["batch", "image"]),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
)
def test_dice_loss_in_unit_interval(
    seed: int, channels: int, smooth: float, squared: bool, scope: str, scale: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, channels, 4, 5, generator=gen) * scale
    target = torch.randint(0, max(channels, 2), (2, 4, 5), generator=gen)
    target[torch.rand(2, 4, 5, generator=gen) < 0.2] = 255
    mode = "binary" if channels == 1 else "multiclass"
    loss = DiceLoss(mode=mode, smooth=smooth, squared=squared, reduction_scope=scope)  # type: ignore[arg-type]
    value = loss(logits, target).item()
    assert -1e-6 <= value <= 1.0 + 1e-6


def test_perfect_prediction_gives_zero_loss() -> None:
    target = torch.randint(0, 3, (2, 5, 5))
    probs = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    assert DiceLoss(mode="multiclass", from_logits=False)(probs, target).item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "multi"}, "mode must be one of .* got 'multi'"),
        ({"smooth": -1.0}, r"smooth must be a finite number in \[0.0, 1e\+30\], got -1.0"),
        ({"smooth": float("inf")}, r"smooth must be a finite number in \[0.0, 1e\+30\], got inf"),
        ({"eps": 0.0}, r"eps must be a finite number in \(0.0, 1e\+30\], got 0.0"),
        ({"from_logits": 1}, r"from_logits must be True or False, got 1"),
        ({"squared": "no"}, r"squared must be True or False, got 'no'"),
        ({"include_background": None}, r"include_background must be True or False, got None"),
        ({"reduction_scope": "pixel"}, "reduction_scope must be one of .* got 'pixel'"),
        ({"ignore_index": 2.5}, "ignore_index must be an int or None, got 2.5"),
        (
            {"class_weights": [1.0, -1.0]},
            r"class_weights must be finite numbers in \[0.0, 1e\+30\]",
        ),
        ({"class_weights": [[1.0]]}, r"1-D sequence, got shape \(1, 1\)"),
    ],
)
def test_bad_options_raise_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DiceLoss(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise_clear_errors() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    multi = DiceLoss(mode="multiclass")
    with pytest.raises(ShapeError, match=r"binary mode expects .*1 channel.*\(2, 3, 4, 4\)"):
        DiceLoss()(logits, target)
    with pytest.raises(ShapeError, match=r"multiclass mode expects input with C >= 2"):
        multi(logits[:, :1], target)
    with pytest.raises(ShapeError, match=r"target has shape \(2, 4, 5\), expected \(2, 4, 4\)"):
        multi(logits, torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"input must have shape \(N, C, H, W\), got \(3, 4, 4\)"):
        multi(logits[0], target)
    with pytest.raises(DTypeError, match="input must be a floating-point tensor, got dtype"):
        multi(target.unsqueeze(1).expand(2, 3, 4, 4), target)
    with pytest.raises(DataError, match=r"target contains label 7; multiclass mode expects"):
        multi(logits, target.masked_fill(target == 2, 7))
    with pytest.raises(DataError, match=r"target contains label -1"):
        multi(logits, target - 1)
    with pytest.raises(DTypeError, match="a float target is accepted only in binary mode"):
        multi(logits, target.float())
    with pytest.raises(
        DataError, match=r"a float target must hold only 0 and 1 .*got values such as \[2\.0\]"
    ):
        DiceLoss()(logits[:, :1], torch.full((2, 1, 4, 4), 2.0))
    with pytest.raises(DTypeError, match=r"must be an integer label map, got dtype torch\.bool"):
        DiceLoss()(logits[:, :1], target.bool())
    with pytest.raises(ConfigError, match=r"class_weights has 2 entries, expected one per input"):
        DiceLoss(mode="multiclass", class_weights=[1.0, 1.0])(logits, target)
    with pytest.raises(ConfigError, match="sum to zero over the classes used"):
        DiceLoss(mode="multiclass", class_weights=[1.0, 0.0, 0.0], include_background=False)(
            logits, target
        )


def test_loss_stays_fp32_inside_bf16_autocast() -> None:
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    ref = soft_dice(logits.bfloat16(), target, mode="multiclass")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = soft_dice(logits.bfloat16(), target, mode="multiclass")
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), abs=1e-6)
