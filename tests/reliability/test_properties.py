"""Hypothesis properties not already covered elsewhere in tests/ (issue #9).

Already covered, and not repeated here:

* UNet output size for the classic encoder with 2 input channels and 1 class, depth
  1-3 (tests/models/test_models_unet.py);
* metric result independent of how the batch is split into updates
  (tests/metrics/test_metrics.py);
* Dice loss in [0, 1] for logits with integer targets (tests/losses/test_dice.py);
* PadToMultiple / flip / Resize mask values (tests/data/test_data_transforms.py).

Here: output size over random *configurations* (channels, classes, depth, norm,
upsampling, a ResNet encoder); metric invariance under permutation of the images and
under added ignore (255) pixels; Dice bounds for probabilities, class weights and float
binary targets; mask values of every random transform and of composed pipelines.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_builders import single_threaded_torch  # noqa: F401  (autouse fixture)

from catseg.data import transforms as tfm
from catseg.losses import DiceLoss, soft_dice
from catseg.metrics import MeanIoU, mean_iou
from catseg.models import UNet

FEW = settings(max_examples=20, deadline=None)


# ------------------------------------------------------------------------ UNet sizes
@FEW
@given(
    height=st.integers(1, 48),
    width=st.integers(1, 48),
    batch=st.integers(1, 2),
    in_channels=st.integers(1, 4),
    num_classes=st.integers(1, 3),
    depth=st.integers(1, 4),
    init_features=st.sampled_from([2, 4]),
    norm=st.sampled_from(["batch", "group", "instance", "none"]),
    upsample=st.sampled_from(["transpose", "bilinear"]),
)
def test_unet_output_size_equals_input_size_for_any_config(
    height: int,
    width: int,
    batch: int,
    in_channels: int,
    num_classes: int,
    depth: int,
    init_features: int,
    norm: str,
    upsample: str,
) -> None:
    model = UNet(
        in_channels,
        num_classes,
        init_features=init_features,
        depth=depth,
        norm=norm,  # type: ignore[arg-type]
        upsample=upsample,  # type: ignore[arg-type]
    ).eval()
    with torch.no_grad():
        out = model(torch.rand(batch, in_channels, height, width))
    assert tuple(out.shape) == (batch, num_classes, height, width)
    assert bool(torch.isfinite(out).all())


@cache
def _resnet_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 2, encoder="resnet18").eval()


@settings(max_examples=8, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70))
def test_resnet_unet_output_size_equals_input_size(height: int, width: int) -> None:
    with torch.no_grad():
        out = _resnet_unet()(torch.rand(1, 3, height, width))
    assert tuple(out.shape) == (1, 2, height, width)


# ------------------------------------------------------------------ metric invariances
def _batch(
    seed: int, n: int, c: int, h: int, w: int, void: float
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen)
    target = torch.randint(0, max(c, 2), (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < void] = 255
    return logits, target


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


@FEW
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 5),
    c=st.sampled_from([1, 3, 4]),
    per_image=st.booleans(),
    include_background=st.booleans(),
)
def test_metric_does_not_depend_on_image_order(
    seed: int, n: int, c: int, per_image: bool, include_background: bool
) -> None:
    logits, target = _batch(seed, n, c, 4, 5, 0.2)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    num_classes = max(c, 2)
    kwargs = {"per_image": per_image, "include_background": include_background}
    first = mean_iou(logits, target, num_classes, **kwargs)  # type: ignore[arg-type]
    metric = MeanIoU(num_classes, **kwargs)  # type: ignore[arg-type]
    for i in order.tolist():  # one image per update, in shuffled order
        metric.update(logits[i : i + 1], target[i : i + 1])
    second = metric.compute()
    assert torch.equal(first.confusion, second.confusion)
    assert torch.allclose(first.iou, second.iou, equal_nan=True, atol=1e-12)
    assert _same(first.miou, second.miou)


@FEW
@given(
    seed=st.integers(0, 2**16),
    c=st.sampled_from([1, 2, 4]),
    pad=st.integers(1, 4),
    extra_images=st.integers(0, 2),
    per_image=st.booleans(),
)
def test_adding_ignored_pixels_changes_nothing(
    seed: int, c: int, pad: int, extra_images: int, per_image: bool
) -> None:
    logits, target = _batch(seed, 3, c, 4, 5, 0.1)
    num_classes = max(c, 2)
    reference = mean_iou(logits, target, num_classes, per_image=per_image)
    gen = torch.Generator().manual_seed(seed + 7)
    # Extra columns whose target is void, with arbitrary (even confident) predictions.
    wide_logits = torch.cat([logits, 50 * torch.randn(3, c, 4, pad, generator=gen)], dim=3)
    wide_target = torch.cat([target, torch.full((3, 4, pad), 255)], dim=2)
    # Whole images that are entirely void.
    more_logits = torch.randn(extra_images, c, 4, 5 + pad, generator=gen)
    more_target = torch.full((extra_images, 4, 5 + pad), 255)
    padded = mean_iou(
        torch.cat([wide_logits, more_logits]),
        torch.cat([wide_target, more_target]),
        num_classes,
        per_image=per_image,
    )
    assert torch.equal(reference.confusion, padded.confusion)
    assert torch.allclose(reference.iou, padded.iou, equal_nan=True, atol=1e-12)
    assert _same(reference.miou, padded.miou)


# ---------------------------------------------------------------------- Dice bounds
@FEW
@given(
    seed=st.integers(0, 2**16),
    channels=st.integers(1, 4),
    weights_seed=st.integers(0, 100),
    include_background=st.booleans(),
    float_target=st.booleans(),
    smooth=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_dice_on_probabilities_is_within_unit_interval(
    seed: int,
    channels: int,
    weights_seed: int,
    include_background: bool,
    float_target: bool,
    smooth: float,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    mode = "binary" if channels == 1 else "multiclass"
    raw = torch.rand(2, channels, 3, 4, generator=gen)
    probs = raw if channels == 1 else raw / raw.sum(1, keepdim=True)
    target = torch.randint(0, max(channels, 2), (2, 3, 4), generator=gen)
    target[torch.rand(2, 3, 4, generator=gen) < 0.2] = 255
    weights = None
    if channels > 1:
        weights = torch.rand(channels, generator=torch.Generator().manual_seed(weights_seed))
        weights[-1] += 0.1  # never all zero over the used classes
    used_target = target.unsqueeze(1).float() if float_target and channels == 1 else target
    coefficient = soft_dice(
        probs,
        used_target,
        mode=mode,  # type: ignore[arg-type]
        from_logits=False,
        smooth=smooth,
        class_weights=weights,
        include_background=include_background,
    ).item()
    loss = DiceLoss(
        mode=mode,  # type: ignore[arg-type]
        from_logits=False,
        smooth=smooth,
        class_weights=weights,
        include_background=include_background,
    )(probs, used_target).item()
    assert -1e-6 <= coefficient <= 1 + 1e-6
    assert loss == pytest.approx(1 - coefficient, abs=1e-6)


# ----------------------------------------------------------------------- transforms
def _pipeline(seed: int, kind: str, size: tuple[int, int]) -> tfm.Compose:
    parts = {
        "crop": [tfm.RandomResizedCrop(size, scale=(0.2, 1.0), seed=seed)],
        "rotate": [tfm.RandomRotation(30.0, seed=seed)],
        "all": [
            tfm.RandomResizedCrop(size, seed=seed),
            tfm.RandomHorizontalFlip(seed=seed + 1),
            tfm.RandomRotation((-45.0, 45.0), seed=seed + 2),
            tfm.ColorJitter(0.4, 0.4, 0.4, seed=seed + 3),
            tfm.PadToMultiple(4),
        ],
    }[kind]
    return tfm.Compose(parts)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    labels=st.lists(st.integers(0, 20), min_size=1, max_size=4),
    kind=st.sampled_from(["crop", "rotate", "all"]),
    uint8=st.booleans(),
    mask_dtype=st.sampled_from([torch.int64, torch.uint8]),
)
def test_transforms_keep_mask_values_within_input_values_and_255(
    seed: int,
    height: int,
    width: int,
    labels: list[int],
    kind: str,
    uint8: bool,
    mask_dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor([*labels, 255])
    mask = values[torch.randint(0, len(values), (height, width), generator=gen)].to(mask_dtype)
    image = torch.rand(3, height, width, generator=gen)
    if uint8:
        image = (image * 255).round().to(torch.uint8)
    out_image, out_mask = _pipeline(seed, kind, (7, 9))(image, mask)
    allowed = set(torch.unique(mask).tolist()) | {255}
    assert set(torch.unique(out_mask).tolist()) <= allowed
    assert out_mask.dtype == mask_dtype
    assert out_image.dtype == image.dtype
    assert tuple(out_image.shape[1:]) == tuple(out_mask.shape)
    if not uint8:
        assert 0.0 <= float(out_image.min()) <= float(out_image.max()) <= 1.0
