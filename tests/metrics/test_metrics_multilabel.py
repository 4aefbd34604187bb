"""``mode="multilabel"``: K sigmoid maps against multi-hot targets (issue 18, point 1).

Hand-computed values, parity with torchmetrics' multilabel classification metrics, and
K = 1 equal to the binary metric.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import (
    MultilabelConfusionMatrix,
    MultilabelF1Score,
    MultilabelJaccardIndex,
    MultilabelPrecision,
    MultilabelRecall,
)

from catseg.errors import DataError, DTypeError, NonFiniteError, ShapeError
from catseg.metrics import MeanIoU, confusion_matrix, mean_iou

# Two labels ("cat", "indoors") on one 2x3 image; label 1's last pixel is ignored.
#   cat     target [[1, 1, 0], [0, 0, 1]]  pred [[1, 0, 0], [1, 0, 1]]
#           TP 2, FN 1, FP 1, TN 2 -> IoU 2/4, Dice 4/6, precision 2/3, recall 2/3
#   indoors target [[1, 1, 1], [1, 0, 255]] pred [[1, 1, 1], [1, 1, 0]]
#           TP 4, FN 0, FP 1, TN 0 -> IoU 4/5, Dice 8/9, precision 4/5, recall 1
HAND_TARGET = torch.tensor([[[[1, 1, 0], [0, 0, 1]], [[1, 1, 1], [1, 0, 255]]]])
HAND_HITS = torch.tensor([[[[1, 0, 0], [1, 0, 1]], [[1, 1, 1], [1, 1, 0]]]])
HAND_LOGITS = torch.where(HAND_HITS.bool(), 2.0, -2.0)


def test_hand_computed_values() -> None:
    result = mean_iou(HAND_LOGITS, HAND_TARGET, 2, mode="multilabel")
    assert result.confusion.tolist() == [[[2, 1], [1, 2]], [[0, 1], [0, 4]]]
    assert result.iou.tolist() == pytest.approx([2 / 4, 4 / 5])
    assert result.dice.tolist() == pytest.approx([4 / 6, 8 / 9])
    assert result.precision.tolist() == pytest.approx([2 / 3, 4 / 5])
    assert result.recall.tolist() == pytest.approx([2 / 3, 1.0])
    assert result.miou == pytest.approx((2 / 4 + 4 / 5) / 2)  # every label enters the mean
    assert result.mdice == pytest.approx((4 / 6 + 8 / 9) / 2)
    # include_background has no effect: there is no background label.
    assert mean_iou(
        HAND_LOGITS, HAND_TARGET, 2, mode="multilabel", include_background=True
    ).miou == (result.miou)
    # The same from {0, 1} integer or bool predictions, probabilities, or confusion_matrix.
    for preds, options in (
        (HAND_HITS, {}),
        (HAND_HITS.bool(), {}),
        (torch.sigmoid(HAND_LOGITS), {"from_logits": False}),
    ):
        other = mean_iou(preds, HAND_TARGET, 2, mode="multilabel", **options)  # type: ignore[arg-type]
        assert torch.equal(other.confusion, result.confusion)
    assert torch.equal(
        confusion_matrix(HAND_LOGITS, HAND_TARGET, 2, mode="multilabel"), result.confusion
    )


def test_absent_label_and_per_image() -> None:
    # Label 1 is absent from prediction and target: no IoU (default), 0 or 1.
    target = torch.zeros(2, 2, 1, 2, dtype=torch.long)
    target[0, 0] = torch.tensor([[1, 0]])
    target[1, 0] = torch.tensor([[1, 1]])
    hits = torch.zeros_like(target)
    hits[0, 0] = torch.tensor([[1, 1]])  # image 0: TP 1 FP 1 -> 1/2
    hits[1, 0] = torch.tensor([[1, 1]])  # image 1: TP 2       -> 1
    result = mean_iou(hits, target, 2, mode="multilabel")
    assert result.iou[0] == pytest.approx(3 / 4)
    assert math.isnan(result.iou[1])
    assert result.miou == pytest.approx(3 / 4)
    assert mean_iou(hits, target, 2, mode="multilabel", absent="zero").miou == pytest.approx(3 / 8)
    per_image = mean_iou(hits, target, 2, mode="multilabel", per_image=True)
    assert per_image.iou[0] == pytest.approx((1 / 2 + 1) / 2)
    assert per_image.miou == pytest.approx(3 / 4)
    assert per_image.confusion.tolist() == result.confusion.tolist()


def _random(
    seed: int, n: int, k: int, ignore_frac: float, present: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, k, 5, 6, generator=gen)
    target = torch.randint(0, 2, (n, k, 5, 6), generator=gen)
    if not present:  # some labels absent from target and prediction
        gone = torch.rand(k, generator=gen) < 0.4
        target[:, gone] = 0
        logits[:, gone] = -5.0
    target[torch.rand(n, k, 5, 6, generator=gen) < ignore_frac] = 255
    return logits, target


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 3),
    k=st.integers(2, 5),  # torchmetrics needs 2 labels; K = 1 is checked against binary
    ignore_frac=st.sampled_from([0.0, 0.3]),
    threshold=st.sampled_from([0.5, 0.3, 0.8]),
)
def test_parity_with_multilabel_jaccard_index(
    seed: int, n: int, k: int, ignore_frac: float, threshold: float
) -> None:
    logits, target = _random(seed, n, k, ignore_frac, present=True)
    ours = mean_iou(logits, target, k, mode="multilabel", threshold=threshold)
    options = {"threshold": threshold, "ignore_index": 255}
    macro = MultilabelJaccardIndex(k, average="macro", **options)(logits, target)  # type: ignore[arg-type]
    none = MultilabelJaccardIndex(k, average="none", **options)(logits, target)  # type: ignore[arg-type]
    confusion = MultilabelConfusionMatrix(k, **options)(logits, target)  # type: ignore[arg-type]
    assert ours.confusion.tolist() == confusion.tolist()
    present = ~torch.isnan(ours.iou)
    if bool(present.all()):  # torchmetrics scores a label without a union 0 and keeps it
        assert ours.miou == pytest.approx(float(macro), abs=1e-6)
    assert torch.allclose(ours.iou[present].float(), none[present], atol=1e-6)
    zero = mean_iou(logits, target, k, mode="multilabel", threshold=threshold, absent="zero")
    assert zero.miou == pytest.approx(float(macro), abs=1e-6)
    for metric, ours_values in (
        (MultilabelPrecision, zero.precision),
        (MultilabelRecall, zero.recall),
        (MultilabelF1Score, zero.dice),
    ):
        theirs = metric(k, average="none", **options)(logits, target)  # type: ignore[arg-type]
        assert torch.allclose(ours_values.float(), theirs, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 4))
def test_absent_labels_match_torchmetrics_with_absent_zero(seed: int, k: int) -> None:
    logits, target = _random(seed, 2, k, 0.2, present=False)
    theirs = MultilabelJaccardIndex(k, average="macro", ignore_index=255)(logits, target)
    ours = mean_iou(logits, target, k, mode="multilabel", absent="zero")
    assert ours.miou == pytest.approx(float(theirs), abs=1e-6)


def test_accumulated_over_batches_equals_one_shot() -> None:
    logits, target = _random(3, 5, 3, 0.2, present=True)
    for per_image in (False, True):
        metric = MeanIoU(3, mode="multilabel", per_image=per_image)
        for start in (0, 2, 3):
            stop = {0: 2, 2: 3, 3: 5}[start]
            metric.update(logits[start:stop], target[start:stop])
        whole = mean_iou(logits, target, 3, mode="multilabel", per_image=per_image)
        got = metric.compute()
        assert torch.equal(got.confusion, whole.confusion)
        assert torch.allclose(got.iou, whole.iou, atol=1e-12)
        assert got.miou == pytest.approx(whole.miou, abs=1e-12)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("absent", ["nan", "zero", "one"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_one_label_equals_binary(per_image: bool, absent: str, from_logits: bool) -> None:
    gen = torch.Generator().manual_seed(7)
    scores = torch.randn(4, 1, 6, 5, generator=gen)
    if not from_logits:
        scores = torch.sigmoid(scores)
    target = torch.randint(0, 2, (4, 1, 6, 5), generator=gen)
    target[torch.rand(4, 1, 6, 5, generator=gen) < 0.2] = 255
    target[3] = 0  # one image without foreground
    scores[3] = -3.0 if from_logits else 0.01
    options = {"per_image": per_image, "absent": absent, "from_logits": from_logits}
    multi = mean_iou(scores, target, 1, mode="multilabel", **options)  # type: ignore[arg-type]
    binary = mean_iou(scores, target, 2, **options)  # type: ignore[arg-type]
    assert multi.miou == binary.miou
    assert multi.mdice == binary.mdice
    assert multi.confusion[0].tolist() == binary.confusion.tolist()
    for name in ("iou", "dice", "precision", "recall"):
        assert getattr(multi, name).tolist() == getattr(binary, name)[1:].tolist(), name


def test_bool_and_uint8_targets() -> None:
    logits, target = _random(11, 2, 3, 0.0, present=True)
    expected = mean_iou(logits, target, 3, mode="multilabel").confusion
    for other in (target.bool(), target.to(torch.uint8)):
        assert torch.equal(mean_iou(logits, other, 3, mode="multilabel").confusion, expected)


def test_bad_inputs_raise_clear_errors() -> None:
    metric = MeanIoU(2, mode="multilabel")
    target = torch.randint(0, 2, (1, 2, 3, 3))
    logits = torch.randn(1, 2, 3, 3)
    with pytest.raises(DTypeError, match=r"multi-hot .* got dtype torch\.float32"):
        metric.update(logits, target.float())
    with pytest.raises(ShapeError, match=r"K = num_classes = 2, got \(1, 3, 3, 3\)"):
        metric.update(torch.randn(1, 3, 3, 3), torch.randint(0, 2, (1, 3, 3, 3)))
    with pytest.raises(
        ShapeError, match=r"preds must have the target's shape .* got \(1, 2, 3, 4\)"
    ):
        metric.update(torch.randn(1, 2, 3, 4), target)
    bad = target.clone()
    bad[0, 1, 0, 0] = 3
    with pytest.raises(DataError, match=r"value\(s\) \[3\] \(for label\(s\) \[1\]\)"):
        metric.update(logits, bad)
    with pytest.raises(DataError, match=r"\[-1\] .* torch\.int8 target cannot hold 255"):
        metric.update(logits, target.to(torch.int8).masked_fill(target == 0, -1))
    with pytest.raises(DataError, match=r"integers must be 0 or 1, got values in \[0, 2\]"):
        metric.update(target * 2, target)
    nan = logits.clone()
    nan[0, 0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError, match="contain NaN scores"):
        metric.update(nan, target)
    with pytest.raises(DataError, match=r"from_logits=False expects probabilities in \[0, 1\]"):
        MeanIoU(2, mode="multilabel", from_logits=False).update(logits * 10, target)
    with pytest.raises(DataError, match="no data"):  # nothing was counted by failed updates
        metric.compute()
    assert "mode='multilabel'" in repr(metric)
