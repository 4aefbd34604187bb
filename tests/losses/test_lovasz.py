"""LovaszLoss / lovasz_loss against hand-computed cases and a plain-Python reading of the paper."""

from __future__ import annotations

import pytest
import torch

from catseg.losses import LovaszLoss, lovasz_loss


def _lovasz_set(errors: list[float], fg: list[int]) -> float:
    """Algorithm 1 of Berman et al. 2018, one set, in plain Python (no vectorisation)."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total = sum(fg)
    loss, previous, seen_fg, seen_bg = 0.0, 0.0, 0, 0
    for i in order:
        seen_fg += fg[i]
        seen_bg += 1 - fg[i]
        jaccard = 1.0 - (total - seen_fg) / (total + seen_bg)
        loss += max(errors[i], 0.0) * (jaccard - previous)
        previous = jaccard
    return loss


def _reference(logits: torch.Tensor, target: torch.Tensor, mode: str, per_image: bool) -> float:
    """Lovász hinge / softmax by the definition: per set, valid pixels only, then means."""
    n, c = logits.shape[:2]
    images = [[i] for i in range(n)] if per_image else [list(range(n))]
    group_losses = []
    for group in images:
        class_losses = []
        for k in range(c):
            errors: list[float] = []
            fg: list[int] = []
            for i in group:
                for y in range(logits.shape[2]):
                    for x in range(logits.shape[3]):
                        label = int(target[i, k, y, x] if mode == "multilabel" else target[i, y, x])
                        if label == 255:
                            continue
                        if mode == "multiclass":
                            p = torch.softmax(logits[i, :, y, x], 0)[k].item()
                            fg.append(int(label == k))
                            errors.append(abs(fg[-1] - p))
                        else:
                            fg.append(label)
                            errors.append(1.0 - logits[i, k, y, x].item() * (2 * label - 1))
            counted = sum(fg) > 0 if mode == "multiclass" else len(fg) > 0
            if counted:
                class_losses.append(_lovasz_set(errors, fg))
        if class_losses:
            group_losses.append(sum(class_losses) / len(class_losses))
    return sum(group_losses) / len(group_losses)


def test_hand_computed_hinge() -> None:
    # errors 1 - x·s = [-1, 0, 1.5] sorted [1.5, 0, -1] with fg [0, 0, 1]:
    # Jaccard of the prefixes 1/2, 2/3, 1 -> weights 1/2, 1/6, 1/3 -> 1.5 · 1/2
    logits = torch.tensor([[[[2.0, -1.0, 0.5]]]])
    assert lovasz_loss(logits, torch.tensor([[[1, 0, 0]]])).item() == pytest.approx(0.75)
    # the ignored pixel leaves the set: errors [-1, 1.5], fg [1, 0] -> 1.5 · 1/2
    assert lovasz_loss(logits, torch.tensor([[[1, 255, 0]]])).item() == pytest.approx(0.75)
    # no foreground at all: Jaccard of any non-empty prefix is 1, the largest error counts
    got = lovasz_loss(logits, torch.tensor([[[0, 0, 0]]]))
    assert got.item() == pytest.approx(3.0)  # 1 + 2 is the largest hinge error


def test_hand_computed_softmax() -> None:
    # two classes, p(class 1) = [0.8, 0.4]; target [1, 0]
    logits = torch.log(torch.tensor([[[[0.2, 0.6]], [[0.8, 0.4]]]]))
    target = torch.tensor([[[1, 0]]])
    # class 0: fg [0, 1], p0 = [0.2, 0.6], errors [0.2, 0.4] -> sorted [0.4 (fg), 0.2 (bg)]:
    #   Jaccard losses of the prefixes 1 (the one fg pixel missed), 1 -> 0.4 · 1 + 0.2 · 0
    # class 1: fg [1, 0], errors [0.2, 0.4] -> sorted [0.4 (bg), 0.2 (fg)]:
    #   Jaccard losses 1/2 (one false positive), 1 -> 0.4 · 1/2 + 0.2 · 1/2 = 0.3
    got = lovasz_loss(logits, target, mode="multiclass").item()
    assert got == pytest.approx((0.4 + 0.3) / 2, abs=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("per_image", [False, True])
def test_matches_the_definition(mode: str, per_image: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    channels = 1 if mode == "binary" else 3
    logits = torch.randn(3, channels, 4, 5, generator=gen, dtype=torch.float64) * 2
    if mode == "multilabel":
        target = torch.randint(0, 2, (3, channels, 4, 5), generator=gen)
        target[torch.rand(3, channels, 4, 5, generator=gen) < 0.3] = 255
    else:
        target = torch.randint(0, max(channels, 2), (3, 4, 5), generator=gen)
        target[torch.rand(3, 4, 5, generator=gen) < 0.3] = 255
    target[2] = 255  # a fully ignored image is left out of the per-image mean
    expected = _reference(logits, target, mode, per_image)
    got = LovaszLoss(mode=mode, per_image=per_image)(logits, target)  # type: ignore[arg-type]
    assert got.item() == pytest.approx(expected, abs=1e-10)


def test_everything_ignored_gives_zero_with_a_graph() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    loss = lovasz_loss(logits, target, mode="multiclass", per_image=True)
    assert loss.item() == 0.0
    loss.backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    assert float(logits.grad.abs().sum()) == 0.0
