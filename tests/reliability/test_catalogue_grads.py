"""Issue 27, class 1 (silent corruption in training) and the Lovász empty batch (class 5).

* Every loss's gradient is finite over a grid of its options (each documented option's
  edge values, one at a time, plus the combinations where they interact) and logits in
  [-50, 50]: ±50 saturation (confidently right and wrong), all equal, random, logit 30 on
  the true class, with some pixels or every pixel at ``ignore_index``.
* ``fit`` stops on a non-finite loss or gradient with the model's weights and buffers
  (BatchNorm running statistics included) and the optimizer's state exactly those of the
  last good step.

Upper edges of the numeric options are 1e30 (``MAX_OPTION``); past it (up to and beyond
float32's range, 3.4e38) every option is refused at construction with a ``ConfigError``
naming the option and the range, and every loss refuses an empty batch with a
``ShapeError`` (one rule; the Lovász per-image loss gave 0, Dice and Tversky NaN).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from catseg.errors import ConfigError, NonFiniteError, ShapeError
from catseg.losses import (
    BCEDiceLoss,
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LovaszLoss,
    SoftDice,
    TverskyLoss,
)
from catseg.models import UNet
from catseg.training import RunOptions, fit

Options = dict[str, Any]
MODES = ("binary", "multiclass", "multilabel")
HUGE, TINY = 1e30, 1e-45  # the largest edge tried; the smallest positive float32 (denormal)
N, C, H, W = 2, 3, 3, 4


def _channels(mode: str) -> int:
    return 1 if mode == "binary" else C


def _targets(mode: str, ignore: int | None) -> Iterator[tuple[str, Tensor]]:
    g = torch.Generator().manual_seed(2)
    shape = (N, C, H, W) if mode == "multilabel" else (N, H, W)
    target = torch.randint(0, 2 if mode != "multiclass" else C, shape, generator=g)
    yield "labels", target
    yield "all-one", torch.ones_like(target)
    if ignore is not None:
        some = target.clone()
        some[..., 0] = ignore
        yield "some-ignored", some
        yield "all-ignored", torch.full_like(target, ignore)


def _logits(mode: str, target: Tensor) -> Iterator[tuple[str, Tensor]]:
    c = _channels(mode)
    g = torch.Generator().manual_seed(1)
    labels = target.clamp(max=c - 1 if mode == "multiclass" else 1)  # ignored: any label
    if mode == "multiclass":
        right = F.one_hot(labels, c).permute(0, 3, 1, 2).float() * 2 - 1
    else:
        right = (labels if mode == "multilabel" else labels.unsqueeze(1)).float() * 2 - 1
    yield "all-equal", torch.zeros(N, c, H, W)
    yield "+50", torch.full((N, c, H, W), 50.0)
    yield "-50", torch.full((N, c, H, W), -50.0)
    yield "random", torch.rand(N, c, H, W, generator=g) * 100 - 50
    yield "right-50", right * 50
    yield "wrong-50", right * -50
    yield "right-30", right * 30


def _overlap(mode: str, *, flags: bool) -> Iterator[Options]:
    """Options shared by the overlap losses; ``flags``: also eps, squared, from_logits."""
    c = _channels(mode)
    yield {}
    for smooth in (0.0, TINY, HUGE):
        yield {"smooth": smooth}
    yield {"reduction_scope": "image"}
    yield {"reduction_scope": "image", "smooth": 0.0}
    yield {"ignore_index": None}
    yield {"class_weights": [0.0] * (c - 1) + [1.0]}
    yield {"class_weights": [HUGE] * c}
    if mode == "multiclass":
        yield {"ignore_index": 0}
        yield {"include_background": False}
        yield {"include_background": False, "smooth": 0.0}
    if flags:
        for eps in (TINY, 1e-300, HUGE):
            yield {"eps": eps}
            yield {"eps": eps, "smooth": 0.0}
        yield {"squared": True, "smooth": 0.0}
        yield {"from_logits": False}
        yield {"from_logits": False, "smooth": 0.0}


def _dice_ce(mode: str) -> Iterator[Options]:
    yield from _overlap(mode, flags=False)
    for ce, dice in ((0.0, 1.0), (1.0, 0.0), (HUGE, 1.0), (1.0, HUGE), (TINY, TINY)):
        yield {"ce_weight": ce, "dice_weight": dice}


def _tversky(mode: str) -> Iterator[Options]:
    yield from _overlap(mode, flags=False)
    for alpha, beta in ((0.0, 1.0), (1.0, 0.0), (HUGE, 1.0), (1.0, HUGE), (TINY, TINY)):
        yield {"alpha": alpha, "beta": beta}
    for gamma in (1e-300, TINY, 1e-6, 0.5, 0.75, 2.0, HUGE):
        yield {"gamma": gamma}
        yield {"gamma": gamma, "smooth": 0.0}
        yield {"gamma": gamma, "reduction_scope": "image"}


def _focal(mode: str) -> Iterator[Options]:
    yield {"ignore_index": None}
    for gamma in (0.0, 1e-300, TINY, 1e-6, 0.5, 1.0, 2.0, HUGE):
        yield {"gamma": gamma}
    alphas: list[Any] = (
        [[0.0] * (C - 1) + [1.0], [HUGE] * C] if mode == "multiclass" else [0.0, 1.0]
    )
    for alpha in alphas:
        for gamma in (0.0, 0.5):
            yield {"alpha": alpha, "gamma": gamma}


def _lovasz(mode: str) -> Iterator[Options]:
    for per_image in (False, True):
        yield {"per_image": per_image}
        yield {"per_image": per_image, "ignore_index": None}


def _bce_dice(mode: str) -> Iterator[Options]:
    if mode != "binary":
        return
    yield {}
    yield {"smooth": 0.0}
    yield {"ignore_index": None}
    for bce, dice in ((0.0, 1.0), (1.0, 0.0), (HUGE, 1.0), (1.0, HUGE)):
        yield {"bce_weight": bce, "dice_weight": dice}


GRID: dict[str, tuple[Callable[..., nn.Module], Callable[[str], Iterator[Options]]]] = {
    "SoftDice": (SoftDice, lambda mode: _overlap(mode, flags=True)),
    "DiceLoss": (DiceLoss, lambda mode: _overlap(mode, flags=True)),
    "JaccardLoss": (JaccardLoss, lambda mode: _overlap(mode, flags=False)),
    "DiceCELoss": (DiceCELoss, _dice_ce),
    "TverskyLoss": (TverskyLoss, _tversky),
    "FocalLoss": (FocalLoss, _focal),
    "LovaszLoss": (LovaszLoss, _lovasz),
    "BCEDiceLoss": (lambda mode, **options: BCEDiceLoss(**options), _bce_dice),
}


@pytest.mark.parametrize("name", sorted(GRID))
def test_every_loss_gradient_is_finite_over_its_option_grid(name: str) -> None:
    make, grid = GRID[name]
    failures, cases = [], 0
    for mode in MODES:
        for options in grid(mode):
            loss_fn = make(mode=mode, **options)
            for target_name, target in _targets(mode, options.get("ignore_index", 255)):
                for logits_name, logits in _logits(mode, target):
                    x = logits.clone().requires_grad_()
                    probs = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
                    value = loss_fn(x if options.get("from_logits", True) else probs, target)
                    value.backward()
                    cases += 1
                    assert x.grad is not None
                    if not (torch.isfinite(value) and torch.isfinite(x.grad).all()):
                        failures.append(f"{mode} {options} {target_name} {logits_name}")
    assert cases > 0
    assert not failures, f"{len(failures)} of {cases} non-finite:\n" + "\n".join(failures[:20])


BEYOND = (1e30 * 1.0000001, 3.5e38, 1e39, -1e39, 1e300)  # past MAX_OPTION, float32 and below 0
NUMERIC: dict[str, tuple[str, ...]] = {
    "SoftDice": ("smooth", "eps", "class_weights"),
    "DiceLoss": ("smooth", "eps", "class_weights"),
    "JaccardLoss": ("smooth", "class_weights"),
    "DiceCELoss": ("smooth", "ce_weight", "dice_weight", "class_weights"),
    "TverskyLoss": ("smooth", "alpha", "beta", "gamma", "class_weights"),
    "FocalLoss": ("gamma", "alpha"),
    "BCEDiceLoss": ("smooth", "bce_weight", "dice_weight"),
}


@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_every_numeric_option_beyond_its_range_is_refused_at_construction(name: str) -> None:
    make = GRID[name][0]
    for option in NUMERIC[name]:
        per_class = option == "class_weights" or (name, option) == ("FocalLoss", "alpha")

        def given(value: float, per_class: bool = per_class) -> Any:
            return [1.0] * (C - 1) + [value] if per_class else value

        make(mode="multiclass", **{option: given(1e30)})  # the upper edge is accepted
        for value in BEYOND:
            with pytest.raises(ConfigError, match=rf"^{option} must .* in [(\[]0\.0, 1e\+30\]"):
                make(mode="multiclass", **{option: given(value)})


@pytest.mark.parametrize("name", sorted(GRID))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(0, 1, 4, 4), (2, 1, 0, 4), (2, 1, 4, 0)])
def test_every_loss_refuses_an_empty_batch(name: str, mode: str, shape: tuple[int, ...]) -> None:
    if name == "BCEDiceLoss" and mode != "binary":
        return
    n, _, h, w = shape
    c = _channels(mode)
    target = torch.zeros((n, c, h, w) if mode == "multilabel" else (n, h, w), dtype=torch.long)
    for options in (
        {},
        {"per_image": True} if name == "LovaszLoss" else {"reduction_scope": "image"},
    ):
        if name in ("FocalLoss", "BCEDiceLoss") and options:
            continue
        loss_fn = GRID[name][0](mode=mode, **options)
        with pytest.raises(ShapeError, match=r"input has no values \(shape"):
            loss_fn(torch.zeros(n, c, h, w, requires_grad=True), target)


def _focal_grad_at_confident_pixel(_: object) -> Tensor:
    logits = torch.tensor([[[[30.0, -30.0]]]], requires_grad=True)
    FocalLoss(gamma=0.5)(logits, torch.tensor([[[1, 0]]])).backward()
    assert logits.grad is not None
    return logits.grad


def _focal_multiclass_grad_at_confident_pixel(_: object) -> Tensor:
    logits = torch.tensor([[[[30.0]], [[0.0]], [[-30.0]]]], requires_grad=True)
    FocalLoss(mode="multiclass", gamma=0.5)(logits, torch.tensor([[[0]]])).backward()
    assert logits.grad is not None
    return logits.grad


def _tversky_grad_at_perfect_prediction(_: object) -> Tensor:
    logits = torch.tensor([[[[50.0, -50.0]]]], requires_grad=True)
    TverskyLoss(gamma=0.75)(logits, torch.tensor([[[1, 0]]])).backward()
    assert logits.grad is not None
    return logits.grad


def _lovasz_empty_batch(_: object) -> Tensor:
    logits = torch.zeros(0, 3, 4, 4, requires_grad=True)
    return LovaszLoss(mode="multiclass", per_image=True)(logits, torch.zeros(0, 4, 4).long())


ROWS = [
    Row(
        "focal-gamma-half-logit-30",
        _focal_grad_at_confident_pixel,
        "finite gradient (was: NaN; MONAI stays finite)",
        check=lambda grad: bool(torch.isfinite(grad).all()),
    ),
    Row(
        "focal-multiclass-gamma-half-logit-30",
        _focal_multiclass_grad_at_confident_pixel,
        "finite gradient (was: NaN)",
        check=lambda grad: bool(torch.isfinite(grad).all()),
    ),
    Row(
        "tversky-gamma-0.75-perfect",
        _tversky_grad_at_perfect_prediction,
        "finite gradient (was: NaN at loss 0)",
        check=lambda grad: bool(torch.isfinite(grad).all()),
    ),
    Row(
        "dice-eps-denormal-all-ignored",
        lambda _: _grad_of(DiceLoss(smooth=0.0, eps=TINY), torch.full((1, 1, 2), 255)),
        "finite gradient (was: NaN, 1/eps overflowed)",
        check=lambda grad: bool(torch.isfinite(grad).all()),
    ),
    Row(
        "dice-ce-huge-weight-all-ignored",
        lambda _: _grad_of(DiceCELoss(ce_weight=HUGE), torch.full((1, 1, 2), 255)),
        "finite gradient (was: NaN from the empty mean)",
        check=lambda grad: bool(torch.isfinite(grad).all()),
    ),
    Row(
        "lovasz-per-image-empty-batch",
        _lovasz_empty_batch,
        "ShapeError, as every loss (was: bare RuntimeError, then 0 while Dice gave NaN)",
        error=ShapeError,
        match=r"input has no values \(shape \(0, 3, 4, 4\)\)",
    ),
]


def _grad_of(loss_fn: nn.Module, target: Tensor) -> Tensor:
    logits = torch.zeros(1, 1, 1, 2, requires_grad=True)
    loss_fn(logits, target).backward()
    assert logits.grad is not None
    return logits.grad


def test_rows_are_well_formed() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_row(row: Row) -> None:
    run_row(row, None)


def test_focal_values_unchanged_by_the_log_space_form() -> None:
    """The finite-gradient form computes the same numbers: (1 - p_t)^γ · BCE by hand."""
    logits = torch.linspace(-8, 8, 17, dtype=torch.float64).view(1, 1, 1, 17)
    target = (torch.arange(17) % 2).view(1, 1, 17)
    p = torch.sigmoid(logits[0, 0, 0])
    g = target[0, 0].double()
    p_t = p * g + (1 - p) * (1 - g)
    for gamma in (0.0, 0.5, 2.0):
        expected = ((1 - p_t) ** gamma * -torch.log(p_t)).mean()
        got = FocalLoss(gamma=gamma)(logits, target)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    three = torch.tensor([[[[3.0]], [[-1.0]], [[0.5]]]], dtype=torch.float64)
    p_y = torch.softmax(three, 1)[0, 2, 0, 0]  # the target class 2
    got = FocalLoss(mode="multiclass", gamma=0.5)(three, torch.tensor([[[2]]]))
    torch.testing.assert_close(got, -((1 - p_y) ** 0.5) * torch.log(p_y), rtol=1e-12, atol=0)


# --- fit keeps the last good step ---------------------------------------------------------

BAD_STEP = 5  # epoch 2, step 2 with 3 steps per epoch


def _nan_value(loss: Tensor, logits: Tensor) -> Tensor:
    return loss * math.nan


def _infinite_gradient(loss: Tensor, logits: Tensor) -> Tensor:
    # value unchanged (sqrt(0) = 0), gradient infinite: the FocalLoss(gamma=0.5) failure
    return loss + torch.sqrt(logits - logits.detach()).sum()


@pytest.mark.parametrize("spoil", [_nan_value, _infinite_gradient], ids=["nan-loss", "inf-grad"])
def test_fit_stops_with_the_last_good_step_kept(spoil: Callable[[Tensor, Tensor], Tensor]) -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 16, 16)
    loader = DataLoader(TensorDataset(images, (images[:, 0] > 0.5).long()), batch_size=2)
    model = UNet(num_classes=1, init_features=4, depth=2)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    kept: dict[str, Any] = {}

    def snapshot(module: nn.Module, args: object) -> None:
        if module.training:  # before each training forward: the state after the last step
            kept["model"] = copy.deepcopy(module.state_dict())
            kept["optimizer"] = copy.deepcopy(optimizer.state_dict())

    model.register_forward_pre_hook(snapshot)
    dice, steps = DiceLoss(), 0

    def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
        nonlocal steps
        steps += 1
        loss: Tensor = dice(logits, target)
        return spoil(loss, logits) if steps == BAD_STEP else loss

    with pytest.raises(NonFiniteError, match=r"at epoch 2, step 2; stopped before"):
        fit(model, loader, loss_fn=loss_fn, epochs=3, optimizer=optimizer, progress=False,
            run=RunOptions(device="cpu", precision="fp32", seed=0))  # fmt: skip
    state = model.state_dict()
    assert state.keys() == kept["model"].keys()
    changed = [k for k, v in state.items() if not torch.equal(v, kept["model"][k])]
    assert not changed, f"written after the last good step: {changed}"
    assert any("running_mean" in k for k in state)  # BatchNorm statistics were compared
    now, before = optimizer.state_dict()["state"], kept["optimizer"]["state"]
    assert now.keys() == before.keys()
    assert now  # AdamW has state after the good steps
    for index, values in now.items():
        for key, value in values.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(before[index][key]))
    assert all(p.grad is None for p in model.parameters())
