"""Per-class precision, recall and Dice/F1 next to IoU (issue 18, point 3).

Hand-computed values first, then torchmetrics' ``Multiclass{Precision,Recall,F1Score}``
(``average=None``, ``zero_division=0``) on random data.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from catseg.metrics import MeanIoU, mean_iou

# The toy case of tests/metrics/test_metrics.py: 4 classes, two 1x3 images, class 3 nowhere.
TOY_TARGET = torch.tensor([[[0, 0, 1]], [[1, 1, 2]]])
TOY_PRED = torch.tensor([[[0, 0, 1]], [[1, 0, 2]]])


def _list(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values]


def test_toy_case_precision_recall_by_hand() -> None:
    result = mean_iou(TOY_PRED, TOY_TARGET, 4)
    # background: TP 2, |P| 3, |G| 2; cat: TP 2, |P| 2, |G| 3; dog: 1, 1, 1; bird: none.
    assert _list(result.precision[:3]) == pytest.approx([2 / 3, 1.0, 1.0])
    assert _list(result.recall[:3]) == pytest.approx([1.0, 2 / 3, 1.0])
    assert _list(result.dice[:3]) == pytest.approx([0.8, 0.8, 1.0])
    assert math.isnan(result.precision[3])
    assert math.isnan(result.recall[3])
    # F1 is the harmonic mean of precision and recall: the same number as Dice.
    p, r = result.precision[:3], result.recall[:3]
    assert torch.allclose(2 * p * r / (p + r), result.dice[:3])
    one = mean_iou(TOY_PRED, TOY_TARGET, 4, absent="one")
    assert float(one.precision[3]) == 1.0
    assert float(one.recall[3]) == 1.0


def test_zero_division_rules_by_hand() -> None:
    # class 0: TP 1 |P| 2 |G| 2; class 1 in the target, never predicted; class 2
    # predicted, not in the target; class 3 nowhere.
    pred = torch.tensor([[[0, 0, 2, 1]]])
    target = torch.tensor([[[0, 1, 0, 255]]])
    result = mean_iou(pred, target, 4, include_background=True)
    assert _list(result.precision[:3]) == [0.5, 0.0, 0.0]  # class 1: 0/0 -> 0
    assert _list(result.recall[:3]) == [0.5, 0.0, 0.0]  # class 2: 0/0 -> 0
    assert _list(result.iou[:3]) == [1 / 3, 0.0, 0.0]
    assert _list(result.dice[:3]) == [0.5, 0.0, 0.0]
    for scores in (result.iou, result.dice, result.precision, result.recall):
        assert math.isnan(scores[3])  # no union: no score, whatever the formula
    zero = mean_iou(pred, target, 4, absent="zero")
    assert float(zero.precision[3]) == 0.0
    assert float(zero.recall[3]) == 0.0


def test_per_image_precision_recall_by_hand() -> None:
    result = mean_iou(TOY_PRED, TOY_TARGET, 4, per_image=True)
    # image 0: bg (1, 1), cat (1, 1); image 1: bg (0, 0) (a false positive only),
    # cat precision 1 recall 1/2, dog (1, 1). Means over the images with a union.
    assert _list(result.precision[:3]) == pytest.approx([0.5, 1.0, 1.0])
    assert _list(result.recall[:3]) == pytest.approx([0.5, 0.75, 1.0])
    assert math.isnan(result.precision[3])


def test_dataset_state_accumulates_precision_recall() -> None:
    metric = MeanIoU(4)
    for i in range(2):
        metric.update(TOY_PRED[i : i + 1], TOY_TARGET[i : i + 1])
    whole = mean_iou(TOY_PRED, TOY_TARGET, 4)
    result = metric.compute()
    assert torch.allclose(result.precision, whole.precision, equal_nan=True)
    assert torch.allclose(result.recall, whole.recall, equal_nan=True)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    c=st.integers(2, 6),
    ignore_frac=st.sampled_from([0.0, 0.3]),
)
def test_parity_with_torchmetrics_precision_recall_f1(
    seed: int, c: int, ignore_frac: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    used = int(torch.randint(1, c + 1, (), generator=gen))  # some classes absent
    target = torch.randint(0, used, (2, 5, 7), generator=gen)
    target[torch.rand(2, 5, 7, generator=gen) < ignore_frac] = 255
    logits = torch.randn(2, c, 5, 7, generator=gen)
    labels = torch.randint(0, used, (2, 5, 7), generator=gen)
    for preds in (logits, labels):
        if int((target != 255).sum()) == 0:
            continue
        # torchmetrics' zero_division=0 also gives 0 to classes with no union: absent="zero".
        ours = mean_iou(preds, target, c, absent="zero")
        options = {"average": None, "ignore_index": 255}
        precision = MulticlassPrecision(c, **options)(preds, target)  # type: ignore[arg-type]
        recall = MulticlassRecall(c, **options)(preds, target)  # type: ignore[arg-type]
        f1 = MulticlassF1Score(c, **options)(preds, target)  # type: ignore[arg-type]
        assert torch.allclose(ours.precision.float(), precision, atol=1e-6)
        assert torch.allclose(ours.recall.float(), recall, atol=1e-6)
        assert torch.allclose(ours.dice.float(), f1, atol=1e-6)
