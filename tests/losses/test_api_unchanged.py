"""The public face of the losses stays as it is: signatures, reprs and read-only options.

Pinned when the loss modules moved onto one shared base class (issue 20): every public
signature keeps its keyword-only names, defaults and annotations; ``repr`` shows the same
options in the same order; the option attributes stay read-only.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from catseg import losses as L  # noqa: N812

SIGNATURES = {
    "soft_dice": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "from_logits: 'bool' = True"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "eps: 'float' = 1e-07"),
        ("keyword_only", "squared: 'bool' = False"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "SoftDice": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "from_logits: 'bool' = True"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "eps: 'float' = 1e-07"),
        ("keyword_only", "squared: 'bool' = False"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "DiceLoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "from_logits: 'bool' = True"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "eps: 'float' = 1e-07"),
        ("keyword_only", "squared: 'bool' = False"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "dice_ce_loss": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "ce_weight: 'float' = 1.0"),
        ("keyword_only", "dice_weight: 'float' = 1.0"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "DiceCELoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "ce_weight: 'float' = 1.0"),
        ("keyword_only", "dice_weight: 'float' = 1.0"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "BCEDiceLoss": [
        ("keyword_only", "bce_weight: 'float' = 1.0"),
        ("keyword_only", "dice_weight: 'float' = 1.0"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
    ],
    "focal_loss": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "gamma: 'float' = 2.0"),
        ("keyword_only", "alpha: 'float | Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
    ],
    "FocalLoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "gamma: 'float' = 2.0"),
        ("keyword_only", "alpha: 'float | Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
    ],
    "tversky_loss": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "alpha: 'float' = 0.5"),
        ("keyword_only", "beta: 'float' = 0.5"),
        ("keyword_only", "gamma: 'float' = 1.0"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "TverskyLoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "alpha: 'float' = 0.5"),
        ("keyword_only", "beta: 'float' = 0.5"),
        ("keyword_only", "gamma: 'float' = 1.0"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "jaccard_loss": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "JaccardLoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "smooth: 'float' = 1.0"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
        ("keyword_only", "class_weights: 'Sequence[float] | Tensor | None' = None"),
        ("keyword_only", "include_background: 'bool' = True"),
        ("keyword_only", "reduction_scope: 'ReductionScope' = 'batch'"),
    ],
    "lovasz_loss": [
        ("positional_or_keyword", "input: 'Tensor'"),
        ("positional_or_keyword", "target: 'Tensor'"),
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "per_image: 'bool' = False"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
    ],
    "LovaszLoss": [
        ("keyword_only", "mode: 'LossMode' = 'binary'"),
        ("keyword_only", "per_image: 'bool' = False"),
        ("keyword_only", "ignore_index: 'int | None' = 255"),
    ],
}

REPRS = [
    (
        "SoftDice()",
        "SoftDice(mode='binary', from_logits=True, smooth=1.0, squared=False,"
        " ignore_index=255, reduction_scope='batch')",
    ),
    (
        "DiceLoss(mode='multiclass', class_weights=[1, 2, 3])",
        "DiceLoss(mode='multiclass', from_logits=True, smooth=1.0, squared=False,"
        " ignore_index=255, reduction_scope='batch')",
    ),
    (
        "DiceCELoss(dice_weight=0.5)",
        "DiceCELoss(mode='binary', smooth=1.0,"
        " ignore_index=255, reduction_scope='batch', ce_weight=1.0, dice_weight=0.5)",
    ),
    (
        "BCEDiceLoss(bce_weight=0.5)",
        "BCEDiceLoss(mode='binary', smooth=1.0,"
        " ignore_index=255, reduction_scope='batch', ce_weight=0.5, dice_weight=1.0)",
    ),
    ("FocalLoss(alpha=0.25)", "FocalLoss(mode='binary', gamma=2.0, alpha=0.25, ignore_index=255)"),
    (
        "FocalLoss(mode='multiclass', alpha=[1, 2])",
        "FocalLoss(mode='multiclass', gamma=2.0, alpha=[1.0, 2.0], ignore_index=255)",
    ),
    (
        "TverskyLoss(beta=0.7)",
        "TverskyLoss(mode='binary', smooth=1.0,"
        " ignore_index=255, reduction_scope='batch', alpha=0.5, beta=0.7, gamma=1.0)",
    ),
    (
        "JaccardLoss(reduction_scope='image')",
        "JaccardLoss(mode='binary', smooth=1.0, ignore_index=255, reduction_scope='image')",
    ),
    ("LovaszLoss(per_image=True)", "LovaszLoss(mode='binary', per_image=True, ignore_index=255)"),
]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_public_signature_unchanged(name: str) -> None:
    parameters = inspect.signature(getattr(L, name)).parameters.values()
    assert [(p.kind.name.lower(), str(p)) for p in parameters] == SIGNATURES[name]


@pytest.mark.parametrize(("expression", "expected"), REPRS)
def test_repr_unchanged(expression: str, expected: str) -> None:
    assert repr(eval(expression, vars(L))) == expected


def test_bce_dice_properties_and_options() -> None:
    loss = L.BCEDiceLoss(bce_weight=0.25, dice_weight=2.0, smooth=0.5, ignore_index=None)
    assert (loss.bce_weight, loss.dice_weight, loss.smooth, loss.ignore_index) == (
        0.25,
        2.0,
        0.5,
        None,
    )
    assert isinstance(loss, L.DiceCELoss)
    logits, target = torch.randn(2, 1, 3, 3), torch.randint(0, 2, (2, 3, 3))
    expected = L.dice_ce_loss(logits, target, ce_weight=0.25, dice_weight=2.0, smooth=0.5)
    torch.testing.assert_close(loss(logits, target), expected)


@pytest.mark.parametrize(
    "module",
    [L.DiceCELoss(), L.FocalLoss(), L.TverskyLoss(), L.JaccardLoss(), L.LovaszLoss(), L.SoftDice()],
)
def test_modules_have_no_parameters(module: torch.nn.Module) -> None:
    assert list(module.parameters()) == []
    assert list(module.buffers()) == []
    assert module.state_dict() == {}
    assert repr(copy.deepcopy(module)) == repr(module)
