"""Lovász losses (Berman et al. 2018): :func:`lovasz_loss` and :class:`LovaszLoss`.

The Lovász extension of the Jaccard loss: the per-pixel errors of one class are sorted in
decreasing order; the Jaccard loss of the set made of the ``i`` largest errors, as ``i``
grows, gives one weight per position (the increments of that curve, "the gradient of the
Jaccard extension"); the loss is the dot product of the sorted errors with those weights.
It is a tight convex surrogate of ``1 - IoU`` (binary: of the hinge errors of the logits;
multiclass: of ``|g - p|`` with softmax probabilities). Written from the paper's algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from catseg._validation import check_bool
from catseg.losses._inputs import (
    check_input,
    class_labels,
    compute_dtype,
    no_autocast,
    sigmoid_target,
)
from catseg.losses._options import LossMode, check_ignore_index, check_mode

__all__ = ["LovaszLoss", "LovaszOptions", "lovasz_loss"]


@dataclass(frozen=True)
class LovaszOptions:
    """The checked options of :class:`LovaszLoss`."""

    mode: LossMode
    per_image: bool
    ignore_index: int | None

    @classmethod
    def checked(cls, mode: object, per_image: object, ignore_index: object) -> LovaszOptions:
        """Check every option once."""
        return cls(
            check_mode(mode), check_bool("per_image", per_image), check_ignore_index(ignore_index)
        )


def _jaccard_increments(fg_sorted: Tensor) -> Tensor:
    """Row-wise weights of the sorted errors: increments of the Jaccard loss of each prefix."""
    total = fg_sorted.sum(1, keepdim=True)
    intersection = total - fg_sorted.cumsum(1)
    union = total + (1.0 - fg_sorted).cumsum(1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def _lovasz_rows(errors: Tensor, fg: Tensor) -> Tensor:
    """The Lovász loss of each row of ``errors`` ``(R, P)`` against foreground ``fg``.

    Ignored entries carry error ``-inf`` and ``fg = 0``: they sort last, where they
    change no weight of a counted entry, and ``relu`` turns them into zeros.
    """
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    weights = _jaccard_increments(fg.gather(1, order))
    return (torch.relu(errors_sorted) * weights).sum(1)


def _hide(errors: Tensor, valid: Tensor) -> Tensor:
    # Ignored entries get -inf (NaN stays NaN: NaN - inf is NaN).
    return torch.where(valid, errors, errors - math.inf)


def _hinge_errors(x: Tensor, target: Tensor, opts: LovaszOptions) -> tuple[Tensor, ...]:
    """Binary/multilabel: hinge errors ``1 - x·(2g - 1)``; every channel with data counts."""
    g, valid = sigmoid_target(target, x.shape, opts.mode, opts.ignore_index)
    g = g.to(device=x.device, dtype=x.dtype)
    errors = _hide(1.0 - x * (2.0 * g - 1.0), valid)
    return errors, g * valid, valid


def _softmax_errors(x: Tensor, target: Tensor, opts: LovaszOptions) -> tuple[Tensor, ...]:
    """Multiclass: errors ``|g - p|``; a class counts where it is present in the target."""
    labels, valid = class_labels(target, x.shape, opts.ignore_index)
    fg = F.one_hot(labels, num_classes=x.shape[1]).permute(0, 3, 1, 2).to(x.dtype)
    fg = fg * valid.unsqueeze(1)
    errors = _hide((fg - torch.softmax(x, dim=1)).abs(), valid.unsqueeze(1))
    return errors, fg, fg > 0


def _lovasz(input: Tensor, target: Tensor, opts: LovaszOptions) -> Tensor:
    check_input(input, target, opts.mode)
    n, c = input.shape[:2]
    with no_autocast(input.device):
        x = input.to(compute_dtype(input))
        make = _softmax_errors if opts.mode == "multiclass" else _hinge_errors
        errors, fg, counts = make(x, target, opts)
        if opts.per_image:  # rows: (image, class)
            groups, rows = n, (errors.reshape(n * c, -1), fg.reshape(n * c, -1))
        else:  # rows: class, over the whole batch
            groups = 1
            rows = (errors.transpose(0, 1).reshape(c, -1), fg.transpose(0, 1).reshape(c, -1))
        losses = _lovasz_rows(*rows).reshape(groups, c)
        counted = counts.expand(n, c, *counts.shape[2:]).flatten(2).any(-1)  # (N, C)
        if not opts.per_image:
            counted = counted.any(0, keepdim=True)
        weights = counted.to(x.dtype)
        # mean over the counted classes of a group, then over the groups that have one
        per_group = (losses * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        used = counted.any(1).to(x.dtype)
        return (per_group * used).sum() / used.sum().clamp_min(1.0)


def lovasz_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: LossMode = "binary",
    per_image: bool = False,
    ignore_index: int | None = 255,
) -> Tensor:
    """Lovász hinge (binary, multilabel) or Lovász-softmax (multiclass) loss from logits.

    Binary: the Lovász hinge of Berman et al. (2018) on the errors ``1 - x·(2g - 1)``.
    Multilabel: the same hinge per label channel, averaged over the labels that have a
    non-ignored pixel (with K = 1 equal to binary). Multiclass: the Lovász-softmax on
    the errors ``|g_c - p_c|`` of the softmax probabilities, averaged over the classes
    present in the target (the paper's ``classes="present"``).

    With ``per_image=False`` each class is one set over the whole batch; with
    ``per_image=True`` the loss is computed per image and averaged over the images that
    have a non-ignored pixel (Berman's code counts a fully ignored image as 0; catseg
    leaves it out). Ignored pixels are left out of every set. A NaN logit anywhere
    (also at an ignored pixel) makes the loss NaN. The loss sorts every class's errors:
    it costs more than Dice (see ``benchmarks/bench_losses.py``).

    Args:
        input: Logits, one channel (binary), C ≥ 2 (multiclass) or K ≥ 1 (multilabel).
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        per_image: One loss per image, then the mean (else one over the batch).
        ignore_index: Target value left out; ``None`` keeps every pixel.

    Returns:
        The scalar loss (float32, or float64 for float64 input).

    Raises:
        ConfigError: If an option is invalid (naming it and the value).
        ShapeError: If ``input``/``target`` shapes do not fit ``mode``.
        DTypeError: If ``input`` is not floating point or ``target`` has a wrong dtype.
        DataError: If ``target`` holds a value other than the labels and ``ignore_index``.

    Shape:
        - input: ``(N, C, H, W)``.
        - target: ``(N, H, W)``; binary also ``(N, 1, H, W)``; multilabel ``(N, K, H, W)``.
        - output: ``()``.

    Examples:
        >>> import torch
        >>> from catseg.losses import lovasz_loss
        >>> logits = torch.tensor([[[[2.0, -1.0, 0.5]]]])      # hinge errors -1, 0, 1.5
        >>> lovasz_loss(logits, torch.tensor([[[1, 0, 0]]]))   # 1.5 · (1 - 1/2)
        tensor(0.7500)
    """
    return _lovasz(input, target, LovaszOptions.checked(mode, per_image, ignore_index))


class LovaszLoss(nn.Module):
    """Module form of :func:`lovasz_loss` (options checked once, kept in ``options``).

    Args:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        per_image: One loss per image, then the mean (else one over the batch).
        ignore_index: Target value left out; ``None`` keeps every pixel.

    Raises:
        ConfigError: If an option is invalid (naming it and the value).

    Shape:
        - input: ``(N, C, H, W)`` logits.
        - target: as for :func:`lovasz_loss`.
        - output: ``()``.

    Examples:
        >>> import torch
        >>> from catseg.losses import LovaszLoss
        >>> loss_fn = LovaszLoss(mode="multiclass", per_image=True)
        >>> target = torch.randint(0, 3, (2, 8, 8))
        >>> perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2) * 100.0
        >>> loss_fn(perfect, target)
        tensor(0.)
    """

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        per_image: bool = False,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__()
        self.options = LovaszOptions.checked(mode, per_image, ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The Lovász loss of ``input`` (logits) against ``target``.

        Args:
            input: Logits ``(N, C, H, W)``.
            target: Labels, as for :func:`lovasz_loss`.

        Returns:
            The scalar loss.
        """
        return _lovasz(input, target, self.options)

    def extra_repr(self) -> str:
        o = self.options
        return f"mode={o.mode!r}, per_image={o.per_image}, ignore_index={o.ignore_index}"
