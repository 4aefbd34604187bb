"""Lovász losses (Berman et al. 2018): :func:`lovasz_loss` and :class:`LovaszLoss`.

The Lovász extension of the Jaccard loss: the per-pixel errors of one class are sorted in
decreasing order; the Jaccard loss of the set made of the ``i`` largest errors, as ``i``
grows, gives one weight per position (the increments of that curve, "the gradient of the
Jaccard extension"); the loss is the dot product of the sorted errors with those weights.
It is a tight convex surrogate of ``1 - IoU`` (binary: of the hinge errors of the logits;
multiclass: of ``|g - p|`` with softmax probabilities). Written from the paper's algorithm.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catseg._validation import check_bool, check_ignore_index, check_mode
from catseg.losses._base import LossModule
from catseg.losses._checks import (
    LossMode,
    class_labels,
    float_input,
    sigmoid_target,
    weighted_mean,
)


def _jaccard_increments(fg_sorted: Tensor) -> Tensor:
    """Row-wise weights of the sorted errors: increments of the Jaccard loss of each prefix.

    For the prefix of the ``i`` largest errors: intersection = foreground outside the
    prefix, union = all foreground + background inside the prefix (``i - cum_fg``).
    """
    with torch.no_grad():  # piecewise constant in the errors: no gradient flows here
        cum_fg = fg_sorted.cumsum(1)
        total = cum_fg[:, -1:]
        position = torch.arange(1, fg_sorted.shape[1] + 1, device=fg_sorted.device)
        jaccard = 1.0 - (total - cum_fg) / (total + position.to(cum_fg.dtype) - cum_fg)
        return torch.diff(jaccard, dim=1, prepend=torch.zeros_like(jaccard[:, :1]))


def _lovasz_rows(errors: Tensor, fg: Tensor) -> Tensor:
    """The Lovász loss of each row of ``errors`` ``(R, P)`` against foreground ``fg``.

    Ignored entries carry error ``-1`` and ``fg = 0``: they sort after every positive
    error, so they change no weight of an entry that counts, and ``relu`` makes them 0
    (as it does every error <= 0, whatever its place).
    """
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    weights = _jaccard_increments(fg.gather(1, order))
    return (torch.relu(errors_sorted) * weights).sum(1)


def _hide(errors: Tensor, valid: Tensor) -> Tensor:
    """Errors with ignored entries set to -1 (``NaN · 0`` stays NaN), in one fused op."""
    keep = valid.to(errors.dtype)
    return torch.addcmul(keep - 1.0, errors, keep)


def _hinge_errors(x: Tensor, target: Tensor, opts: LovaszLoss) -> tuple[Tensor, ...]:
    """Binary/multilabel: hinge errors ``1 - x·(2g - 1)``; every channel with data counts.

    ``x`` is ``(N, C, H, W)``, or ``(C, N, H, W)`` when ``opts.per_image`` is False (the
    rows to sort are then contiguous); the outputs have the layout of ``x``.
    """
    shape = x.shape if opts.per_image else x.transpose(0, 1).shape
    g, valid = sigmoid_target(target, shape, opts.mode, opts.ignore_index)
    g = g.to(device=x.device, dtype=x.dtype)
    if not opts.per_image:
        g, valid = g.transpose(0, 1), valid.transpose(0, 1)
    errors = _hide(1.0 - x * (2.0 * g - 1.0), valid)
    return errors, g * valid, valid


def _softmax_errors(x: Tensor, target: Tensor, opts: LovaszLoss) -> tuple[Tensor, ...]:
    """Multiclass: errors ``|g - p|``; a class counts where it is present in the target.

    Layout of ``x`` and of the outputs as for :func:`_hinge_errors`.
    """
    dim = 1 if opts.per_image else 0
    shape = x.shape if opts.per_image else x.transpose(0, 1).shape
    labels, valid = class_labels(target, shape, opts.ignore_index)
    view = [1, 1, 1, 1]
    view[dim] = -1
    classes = torch.arange(x.shape[dim], device=x.device).view(view)
    is_fg = (labels.unsqueeze(dim) == classes) & valid.unsqueeze(dim)
    fg = is_fg.to(x.dtype)
    errors = _hide((torch.softmax(x, dim=dim) - fg).abs(), valid.unsqueeze(dim))
    return errors, fg, is_fg


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
    leaves it out; a batch without such an image gives 0). The loss
    sorts every class's errors: it costs more than Dice (see ``benchmarks/bench_losses.py``).

    Args:
        input: Logits ``(N, C, H, W)``.
        target: As for :func:`~catseg.losses.soft_dice`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        per_image: One loss per image, then the mean (else one over the batch).
        ignore_index: Target value left out; ``None`` keeps every pixel.

    Returns:
        The scalar loss, >= 0; shapes, dtypes and errors as for every loss.

    Examples:
        >>> import torch
        >>> from catseg.losses import lovasz_loss
        >>> logits = torch.tensor([[[[2.0, -1.0, 0.5]]]])      # hinge errors -1, 0, 1.5
        >>> lovasz_loss(logits, torch.tensor([[[1, 0, 0]]]))   # 1.5 · (1 - 1/2)
        tensor(0.7500)
    """
    return LovaszLoss(mode=mode, per_image=per_image, ignore_index=ignore_index).forward(
        input, target
    )


class LovaszLoss(LossModule):
    """Module form of :func:`lovasz_loss` (options checked once, here; read-only).

    A confident, correct prediction has zero loss, per image as over the batch:

    Examples:
        >>> import torch
        >>> from catseg.losses import LovaszLoss
        >>> loss_fn = LovaszLoss(mode="multiclass", per_image=True)
        >>> target = torch.randint(0, 3, (2, 8, 8))
        >>> perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2) * 100.0
        >>> loss_fn(perfect, target)
        tensor(0.)
    """

    _shown = ("mode", "per_image", "ignore_index")

    def __init__(
        self,
        *,
        mode: LossMode = "binary",
        per_image: bool = False,
        ignore_index: int | None = 255,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.per_image = check_bool("per_image", per_image)
        self.ignore_index = check_ignore_index(ignore_index, self.mode)

    def _value(self, input: Tensor, target: Tensor) -> Tensor:
        with float_input(input, target, self.mode) as x:
            n, c = x.shape[:2]
            if not self.per_image:  # class-major, so that each class's row is contiguous
                x = x.transpose(0, 1).contiguous()
            make = _softmax_errors if self.mode == "multiclass" else _hinge_errors
            errors, fg, counts = make(x, target, self)
            groups, rows = (n, n * c) if self.per_image else (1, c)
            losses = _lovasz_rows(errors.reshape(rows, -1), fg.reshape(rows, -1))
            counted = counts.expand(*errors.shape).reshape(rows, -1).any(-1).reshape(groups, c)
            # mean over the counted classes of a group, then over the groups that have one
            per_group = weighted_mean(losses.reshape(groups, c), counted.to(x.dtype), dim=1)
            return weighted_mean(per_group, counted.any(1).to(x.dtype))
