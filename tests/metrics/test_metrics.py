"""Tests for catseg.metrics: hand-computed toy case, torchmetrics parity, properties, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import BinaryJaccardIndex, MulticlassJaccardIndex
from torchmetrics.segmentation import MeanIoU as TMSegmentationMeanIoU

from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError
from catseg.metrics import IoUResult, MeanIoU, confusion_matrix, mean_iou

# ---------------------------------------------------------------------------------------
# The toy case of the docs (docs/guides/losses-metrics.md): 4 classes (0 background,
# 1 cat, 2 dog, 3 bird), two 1x3 images, "bird" appears nowhere.
#   image 0: target [0, 0, 1]  pred [0, 0, 1]   (perfect)
#   image 1: target [1, 1, 2]  pred [1, 0, 2]   (one cat pixel predicted as background)
# Dataset-level counts: bg tp=2 |G|=2 |P|=3 -> 2/3; cat tp=2 |G|=3 |P|=2 -> 2/3; dog 1;
# bird absent.
TOY_TARGET = torch.tensor([[[0, 0, 1]], [[1, 1, 2]]])
TOY_PRED = torch.tensor([[[0, 0, 1]], [[1, 0, 2]]])
TOY_VOC = (2 / 3 + 2 / 3 + 1) / 3  # 0.778: VOC / mmseg / torchmetrics macro (bg included)
TOY_SMP = (2 / 3 + 2 / 3 + 1 + 1) / 4  # 0.833: absent bird counts as 1
# Per image (image, class) pairs with a union: image 0 bg 1, cat 1; image 1 bg 0 (a false
# positive only), cat 1/2, dog 1 -> 3.5 / 5.
TOY_PER_IMAGE = 3.5 / 5  # 0.700: torchmetrics segmentation.MeanIoU
# MONAI MeanIoU(): per image, classes with ground truth only (image 1's background false
# positive is dropped): image 0 mean(1, 1) = 1, image 1 mean(1/2, 1) = 0.75.
TOY_MONAI = (1.0 + 0.75) / 2  # 0.875
TOY_DEFAULT = (2 / 3 + 1) / 2  # catseg default: foreground classes cat and dog


def test_toy_case_hand_computed_values() -> None:
    result = mean_iou(TOY_PRED, TOY_TARGET, 4, include_background=True)
    assert result.miou == pytest.approx(TOY_VOC, abs=1e-12)
    assert result.iou[:3].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert math.isnan(result.iou[3].item())
    assert result.dice[:3].tolist() == pytest.approx([0.8, 0.8, 1.0])
    assert result.mdice == pytest.approx(2.6 / 3)
    assert result.confusion.tolist() == [[2, 0, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert mean_iou(TOY_PRED, TOY_TARGET, 4).miou == pytest.approx(TOY_DEFAULT, abs=1e-12)
    smp = mean_iou(TOY_PRED, TOY_TARGET, 4, include_background=True, absent="one")
    assert smp.miou == pytest.approx(TOY_SMP, abs=1e-12)
    zero = mean_iou(TOY_PRED, TOY_TARGET, 4, include_background=True, absent="zero")
    assert zero.miou == pytest.approx((2 / 3 + 2 / 3 + 1) / 4, abs=1e-12)
    per_image = mean_iou(TOY_PRED, TOY_TARGET, 4, include_background=True, per_image=True)
    assert per_image.miou == pytest.approx(TOY_PER_IMAGE, abs=1e-12)
    # per-class: mean over images in which the class has an IoU
    assert per_image.iou[:3].tolist() == pytest.approx([0.5, 0.75, 1.0])
    # The torchvision reference averages with a plain mean: NaN as soon as a class is absent.
    assert math.isnan(result.iou.mean().item())
    # MONAI with ignore_empty=False (absent -> 1, per image): (1 + (0 + 0.5 + 1 + 1) / 4) / 2
    monai_no_ignore = mean_iou(
        TOY_PRED, TOY_TARGET, 4, include_background=True, per_image=True, absent="one"
    )
    assert monai_no_ignore.miou == pytest.approx(0.8125, abs=1e-12)
    # Five different numbers for the same predictions.
    assert len({round(v, 6) for v in (TOY_VOC, TOY_SMP, TOY_PER_IMAGE, TOY_MONAI)}) == 4


def _monai_default_reference(pred: torch.Tensor, target: torch.Tensor, c: int) -> float:
    """MONAI MeanIoU() default, re-derived: per image, NaN where ground truth is empty."""
    per_image: list[float] = []
    for p, t in zip(pred, target, strict=True):
        values: list[float] = []
        for k in range(c):
            g, q = t == k, p == k
            if g.any():
                values.append(float((g & q).sum() / (g | q).sum()))
        if values:
            per_image.append(sum(values) / len(values))
    return sum(per_image) / len(per_image)


def test_toy_case_monai_has_no_catseg_equivalent() -> None:
    assert _monai_default_reference(TOY_PRED, TOY_TARGET, 4) == pytest.approx(TOY_MONAI)
    settings_values = [
        mean_iou(TOY_PRED, TOY_TARGET, 4, include_background=bg, absent=a, per_image=pi).miou
        for bg in (False, True)
        for a in ("nan", "zero", "one")
        for pi in (False, True)
    ]
    assert all(abs(v - TOY_MONAI) > 1e-3 for v in settings_values)


def test_toy_case_torchmetrics_parity() -> None:
    macro = MulticlassJaccardIndex(4, average="macro", ignore_index=255)
    assert float(macro(TOY_PRED, TOY_TARGET)) == pytest.approx(TOY_VOC, abs=1e-6)
    none = MulticlassJaccardIndex(4, average="none", ignore_index=255)(TOY_PRED, TOY_TARGET)
    # torchmetrics reports 0 (zero_division) for the absent bird, catseg NaN or absent="zero".
    assert none.tolist() == pytest.approx([2 / 3, 2 / 3, 1.0, 0.0], abs=1e-6)
    zero = mean_iou(TOY_PRED, TOY_TARGET, 4, absent="zero")
    assert zero.iou.tolist() == pytest.approx(none.tolist(), abs=1e-6)
    seg = TMSegmentationMeanIoU(num_classes=4, include_background=True, input_format="index")
    seg.update(TOY_PRED, TOY_TARGET)
    assert float(seg.compute()) == pytest.approx(TOY_PER_IMAGE, abs=1e-6)


def _random_batch(
    seed: int, n: int, c: int, h: int, w: int, ignore_frac: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # Few classes actually used so that absent classes occur.
    used = torch.randint(1, c + 1, (), generator=gen).item()
    target = torch.randint(0, int(used), (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < ignore_frac] = 255
    logits = torch.randn(n, c, h, w, generator=gen)
    labels = torch.randint(0, int(used), (n, h, w), generator=gen)
    return logits, labels, target


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    c=st.integers(2, 6),
    n=st.integers(1, 3),
    ignore_frac=st.sampled_from([0.0, 0.3]),
)
def test_parity_with_multiclass_jaccard_random(
    seed: int, c: int, n: int, ignore_frac: float
) -> None:
    logits, labels, target = _random_batch(seed, n, c, 5, 7, ignore_frac)
    for preds in (logits, labels):
        ours = mean_iou(preds, target, c, include_background=True)
        macro = MulticlassJaccardIndex(c, average="macro", ignore_index=255)(preds, target)
        none = MulticlassJaccardIndex(c, average="none", ignore_index=255)(preds, target)
        if math.isnan(ours.miou):  # only ignored pixels: nothing to compare
            assert int(ours.confusion.sum()) == 0
            continue
        assert ours.miou == pytest.approx(float(macro), abs=1e-6)
        present = ~torch.isnan(ours.iou)
        assert torch.allclose(ours.iou[present].float(), none[present], atol=1e-6)
        assert torch.all(none[~present] == 0)  # torchmetrics' zero_division for absent classes
        zero = mean_iou(preds, target, c, include_background=True, absent="zero")
        assert torch.allclose(zero.iou.float(), none, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), ignore_frac=st.sampled_from([0.0, 0.3]))
def test_parity_with_binary_jaccard_random(seed: int, ignore_frac: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, 6, 5, generator=gen) * 3
    target = torch.randint(0, 2, (2, 6, 5), generator=gen)
    target[torch.rand(2, 6, 5, generator=gen) < ignore_frac] = 255
    theirs = BinaryJaccardIndex(threshold=0.5, ignore_index=255)
    ours = mean_iou(logits, target, 2)  # foreground IoU
    expected = float(theirs(logits[:, 0], target))
    if math.isnan(ours.miou):  # no foreground anywhere: torchmetrics says 0 (zero_division)
        assert expected == 0.0
    else:
        assert ours.miou == pytest.approx(expected, abs=1e-6)
    probs = torch.sigmoid(logits)
    ours_p = mean_iou(probs, target, 2, from_logits=False, threshold=0.3)
    expected_p = float(BinaryJaccardIndex(threshold=0.3, ignore_index=255)(probs[:, 0], target))
    assert (0.0 if math.isnan(ours_p.miou) else ours_p.miou) == pytest.approx(expected_p, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), c=st.integers(2, 5), background=st.booleans())
def test_per_image_matches_torchmetrics_segmentation_mean_iou(
    seed: int, c: int, background: bool
) -> None:
    _, labels, target = _random_batch(seed, 4, c, 4, 4, 0.0)
    theirs = TMSegmentationMeanIoU(
        num_classes=c, include_background=background, input_format="index"
    )
    per_class = TMSegmentationMeanIoU(
        num_classes=c, include_background=background, per_class=True, input_format="index"
    )
    ours = MeanIoU(c, include_background=background, per_image=True)
    for i in (0, 2):  # two updates
        theirs.update(labels[i : i + 2], target[i : i + 2])
        per_class.update(labels[i : i + 2], target[i : i + 2])
        ours.update(labels[i : i + 2], target[i : i + 2])
    result = ours.compute()
    assert result.miou == pytest.approx(float(theirs.compute()), abs=1e-6, nan_ok=True)
    first = 0 if background else 1
    expected = per_class.compute()  # -1 where the class never had a union
    assert torch.allclose(result.iou[first:].nan_to_num(-1.0).float(), expected, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    split=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    absent=st.sampled_from(["nan", "zero", "one"]),
    per_image=st.booleans(),
)
def test_any_batch_split_gives_the_same_result(
    seed: int, split: list[int], absent: str, per_image: bool
) -> None:
    logits, _, target = _random_batch(seed, 6, 4, 3, 5, 0.2)
    whole = mean_iou(logits, target, 4, absent=absent, per_image=per_image)  # type: ignore[arg-type]
    metric = MeanIoU(4, absent=absent, per_image=per_image)  # type: ignore[arg-type]
    start = 0
    for size in [*split, 6]:
        if start >= 6:
            break
        metric.update(logits[start : start + size], target[start : start + size])
        start += size
    parts = metric.compute()
    assert torch.equal(parts.confusion, whole.confusion)
    assert torch.allclose(parts.iou, whole.iou, equal_nan=True, atol=1e-12)
    assert torch.allclose(parts.dice, whole.dice, equal_nan=True, atol=1e-12)
    assert parts.miou == pytest.approx(whole.miou, abs=1e-12, nan_ok=True)
    for values in (parts.iou, parts.dice):
        finite = values[~torch.isnan(values)]
        assert torch.all((finite >= 0) & (finite <= 1))
    assert math.isnan(parts.miou) or 0.0 <= parts.miou <= 1.0


def test_confusion_matrix_hand_computed() -> None:
    pred = torch.tensor([[[0, 1, 2], [2, 2, 1]]])
    target = torch.tensor([[[0, 1, 1], [2, 255, 0]]])
    expected = [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix(pred, target, 3).tolist() == expected
    assert confusion_matrix(pred, target, 3).dtype == torch.int64
    with_void = confusion_matrix(pred, target.clamp(max=2), 3, ignore_index=None)
    assert int(with_void.sum()) == 6
    # One-channel scores: sigmoid + threshold.
    logits = torch.tensor([[[[2.0, -2.0], [0.1, -0.1]]]])
    binary_target = torch.tensor([[[1, 1], [0, 0]]])
    assert confusion_matrix(logits, binary_target, 2).tolist() == [[1, 1], [1, 1]]


def test_binary_scores_threshold_and_probabilities() -> None:
    probs = torch.tensor([[[[0.9, 0.4], [0.6, 0.2]]]])
    target = torch.tensor([[[1, 1], [0, 0]]])
    metric = MeanIoU(2, from_logits=False, threshold=0.5)
    metric.update(probs, target.unsqueeze(1))  # (N, 1, H, W) target is accepted
    assert metric.compute().miou == pytest.approx(1 / 3)
    metric = MeanIoU(2, from_logits=False, threshold=0.3)
    metric.update(probs, target)
    assert metric.compute().miou == pytest.approx(2 / 3)


def test_compute_reset_and_repeat() -> None:
    metric = MeanIoU(3)
    with pytest.raises(DataError, match=r"compute\(\) has no data: update\(\) received no"):
        metric.compute()
    metric.update(TOY_PRED.clamp(max=2), TOY_TARGET)
    first = metric.compute()
    second = metric.compute()
    assert first.miou == second.miou
    assert isinstance(first, IoUResult)
    with pytest.raises(AttributeError):
        first.miou = 0.0  # type: ignore[misc]
    metric.reset()
    with pytest.raises(DataError, match=r"no data.*created or reset\(\)"):
        metric.compute()
    assert "MeanIoU(num_classes=3" in repr(metric)


def test_inputs_not_modified() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = 255
    copies = logits.clone(), target.clone()
    for per_image in (False, True):
        MeanIoU(3, per_image=per_image).update(logits, target)
    assert torch.equal(logits, copies[0])
    assert torch.equal(target, copies[1])


def test_label_dtypes_accepted() -> None:
    expected = mean_iou(TOY_PRED, TOY_TARGET, 4).miou
    for dtype in (torch.uint8, torch.int16, torch.int32):
        got = mean_iou(TOY_PRED.to(dtype), TOY_TARGET.to(dtype), 4).miou
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 1}, r"num_classes must be an int >= 2, got 1 counting the background"),
        ({"num_classes": 2.0}, r"num_classes must be an int, got 2.0"),
        ({"num_classes": 3, "absent": "skip"}, r"absent must be one of .*; got 'skip'"),
        ({"num_classes": 3, "threshold": 1.5}, r"threshold must be a finite .*\), got 1.5"),
        ({"num_classes": 3, "ignore_index": "void"}, r"ignore_index must be an int or None"),
        ({"num_classes": 3, "per_image": "yes"}, r"per_image must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_raise_in_init(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MeanIoU(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise_clear_errors() -> None:
    metric = MeanIoU(3)
    target = torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ShapeError, match=r"preds label map has shape \(2, 4, 5\), expected"):
        metric.update(torch.zeros(2, 4, 5, dtype=torch.long), target)
    with pytest.raises(ShapeError, match=r"preds has shape \(2, 3, 4, 5\)"):
        metric.update(torch.zeros(2, 3, 4, 5), target)
    with pytest.raises(ShapeError, match=r"preds has 4 channels .* expected num_classes=3"):
        metric.update(torch.zeros(2, 4, 4, 4), target)
    with pytest.raises(ShapeError, match=r"1 channel \(binary scores\) but num_classes=3"):
        metric.update(torch.zeros(2, 1, 4, 4), target)
    with pytest.raises(ShapeError, match=r"float preds are scores .* got \(2, 4, 4\)"):
        metric.update(torch.zeros(2, 4, 4), target)
    with pytest.raises(ShapeError, match=r"target must have shape \(N, H, W\).*\(4, 4\)"):
        metric.update(torch.zeros(4, 4, dtype=torch.long), target[0])
    with pytest.raises(DTypeError, match=r"target must be an integer label map .* torch\.float32"):
        metric.update(target, target.float())
    with pytest.raises(DTypeError, match=r"preds must be an integer label map or float scores"):
        metric.update(target.bool(), target)
    bad = target.clone()
    bad[0, 0, 0], bad[1, 0, 0] = 7, 3
    with pytest.raises(DataError, match=r"target contains label\(s\) \[3, 7\] outside \[0, 2\]"):
        metric.update(target, bad)
    with pytest.raises(DataError, match=r"target contains label\(s\) \[-1\]"):
        metric.update(target, target - 1)
    with pytest.raises(DataError, match=r"target contains label\(s\) \[9\]"):
        MeanIoU(3, per_image=True).update(target, target.masked_fill(target == 1, 9))
    with pytest.raises(DataError, match=r"preds contains label 5, expected labels in \[0, 2\]"):
        metric.update(target.masked_fill(target == 1, 5), target)
    nan_scores = torch.zeros(2, 3, 4, 4)
    nan_scores[1, 2, 3, 3] = math.nan
    with pytest.raises(NonFiniteError, match=r"shape \(2, 3, 4, 4\) contain NaN scores"):
        metric.update(nan_scores, target)
    with pytest.raises(NonFiniteError, match="contain NaN scores"):
        MeanIoU(2).update(nan_scores[:, 2:], target.clamp(max=1))
    # A failed update leaves the state untouched.
    with pytest.raises(DataError, match="no data"):
        metric.compute()


@pytest.mark.gpu
def test_state_lives_on_device_of_first_update() -> None:
    metric = MeanIoU(3)
    target = torch.randint(0, 3, (2, 8, 8))
    metric.update(torch.randn(2, 3, 8, 8, device="cuda"), target.cuda())
    assert metric._state is not None
    assert metric._state[0].device.type == "cuda"
    metric.update(torch.randn(2, 3, 8, 8), target)  # a CPU batch is added on the GPU state
    assert int(metric.compute().confusion.sum()) == 256


def _smp_reference(pred: torch.Tensor, target: torch.Tensor, c: int, imagewise: bool) -> float:
    """smp iou_score(reduction="macro" / "macro-imagewise"), zero_division=1, re-derived."""
    valid = target != 255
    tp = torch.stack([((pred == k) & (target == k) & valid).sum((1, 2)) for k in range(c)], 1)
    fp = torch.stack([((pred == k) & (target != k) & valid).sum((1, 2)) for k in range(c)], 1)
    fn = torch.stack([((pred != k) & (target == k) & valid).sum((1, 2)) for k in range(c)], 1)
    if not imagewise:
        tp, fp, fn = tp.sum(0), fp.sum(0), fn.sum(0)
    score = (tp.double() / (tp + fp + fn)).nan_to_num(nan=1.0)
    return float(score.mean(0).mean() if imagewise else score.mean())


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), c=st.integers(2, 5))
def test_absent_one_reproduces_smp(seed: int, c: int) -> None:
    _, labels, target = _random_batch(seed, 3, c, 4, 5, 0.2)
    macro = mean_iou(labels, target, c, include_background=True, absent="one")
    assert macro.miou == pytest.approx(_smp_reference(labels, target, c, False), abs=1e-9)
    imagewise = mean_iou(labels, target, c, include_background=True, absent="one", per_image=True)
    assert imagewise.miou == pytest.approx(_smp_reference(labels, target, c, True), abs=1e-9)
