"""catseg's losses against values computed by MONAI 1.6.1 and segmentation_models_pytorch 0.6.0.

Neither library is a catseg dependency (smp needs timm, which cannot load beside CI's torch),
so the reference numbers were computed once on the inputs below (same seed, float64) and are
recorded here. Where the libraries define a loss differently the test states the mapping:
MONAI's ``smooth_nr = smooth_dr = 1e-5`` default is ``smooth=1e-5``; MONAI's softmax focal
loss averages over N·C·H·W entries (catseg: over pixels), hence the factor C (and it agrees
to 1e-7 only: it is not computed exactly as catseg does).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from catseg import losses as L  # noqa: N812

GEN = torch.Generator().manual_seed(2024)
X = torch.randn(2, 3, 4, 5, generator=GEN, dtype=torch.float64)
T = torch.randint(0, 3, (2, 4, 5), generator=GEN)
M = torch.randint(0, 2, (2, 3, 4, 5), generator=GEN)
T_VOID = T.clone()
T_VOID[0, 0] = 255

CASES: dict[str, tuple[float, Callable[[], Tensor]]] = {
    "monai_dice_softmax_batch": (
        0.7018050805716172,
        lambda: L.dice_ce_loss(X, T, mode="multiclass", ce_weight=0.0, smooth=1e-5),
    ),
    "monai_dice_softmax_image": (
        0.7091137907635824,
        lambda: 1 - L.soft_dice(X, T, mode="multiclass", smooth=1e-5, reduction_scope="image"),
    ),
    "monai_dice_sigmoid_multilabel": (
        0.47953472897172794,
        lambda: L.DiceLoss(mode="multilabel", smooth=1e-5)(X, M),
    ),
    "monai_tversky_softmax": (
        0.7009748991799899,
        lambda: L.tversky_loss(X, T, mode="multiclass", alpha=0.3, beta=0.7, smooth=1e-5),
    ),
    "monai_dice_ce": (
        2.3026851145042775,
        lambda: L.dice_ce_loss(X, T, mode="multiclass", smooth=1e-5),
    ),
    "monai_focal_softmax_times_c": (
        1.1540995836257935,
        lambda: L.focal_loss(X, T, mode="multiclass"),
    ),
    "smp_jaccard_multiclass": (0.7895116553583752, lambda: L.jaccard_loss(X, T, mode="multiclass")),
    "smp_tversky_multilabel": (
        0.46052680324150813,
        lambda: L.TverskyLoss(mode="multilabel", alpha=0.3, beta=0.7)(X, M),
    ),
    "smp_focal_binary": (0.18203283556288802, lambda: L.focal_loss(X[:, :1], M[:, 0], alpha=0.25)),
    "smp_lovasz_binary_per_image": (
        1.2950005531311035,  # smp computed it in float32
        lambda: L.lovasz_loss(X[:, :1].float(), M[:, 0], per_image=True),
    ),
    "smp_lovasz_multiclass_ignore": (
        0.762161910533905,  # float32
        lambda: L.LovaszLoss(mode="multiclass")(X.float(), T_VOID),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_reference_library_value(name: str) -> None:
    expected, compute = CASES[name]
    tolerance = 1e-6 if ("lovasz" in name or "focal_softmax" in name) else 1e-12
    assert compute().item() == pytest.approx(expected, abs=tolerance)
