"""Segmentation losses: Dice, Dice + cross-entropy, focal, Tversky, Jaccard and Lovász.

Every loss is a function and an ``nn.Module`` (the function builds the module and calls it;
the module checks its options once, at construction, and shows them as read-only
attributes), takes logits, knows the three modes ``"binary"`` (one sigmoid channel),
``"multiclass"`` (softmax over C ≥ 2 channels) and ``"multilabel"`` (K independent sigmoid
channels, multi-hot targets ``(N, K, H, W)``), and leaves out the pixels whose target equals
``ignore_index`` (255 by default).

The soft Dice coefficient of a class is ``D = (2·Σp·g + s) / (Σp + Σg + s)`` where ``p`` are
probabilities, ``g`` the one-hot (multiclass) or multi-hot (binary, multilabel) target and
``s`` the ``smooth`` term (``1.0`` by default, the tutorial's value). With ``squared=True``
the denominator is ``Σp² + Σg² + s``. The denominator is clamped to at least ``eps`` so that
``smooth=0`` never divides by zero.

Sums run over what ``reduction_scope`` says:

* ``"batch"`` (default, the tutorial's behaviour): one sum over every pixel of every
  image in the batch, per class.
* ``"image"``: one coefficient per image and class, then the mean over images.

The per-class coefficients are then averaged over classes (weighted by ``class_weights``
when given; the background channel 0 is dropped in multiclass mode when
``include_background=False``).

**Empty classes.** A class with no target pixel and no predicted mass has ``D = s / s = 1``
with ``smooth > 0`` (a perfect, empty match) and ``D = 0 / eps = 0`` with ``smooth = 0``. In
the ``"batch"`` scope this only happens when the class is absent from the whole batch; in
the ``"image"`` scope it happens per image, so images without the class pull the coefficient
towards 1 (``smooth > 0``) or towards 0 (``smooth = 0``). With ``smooth > 0`` a class absent
from the target but predicted with total mass ``Σp`` gives ``s / (Σp + s)``, which falls
quickly as ``Σp`` grows.

Ignored pixels are removed from the numerator and the denominator. Everything is computed
in float32 (or float64 when the input is float64), also for bfloat16/float16 input and under
autocast. A NaN logit anywhere (also at an ignored pixel) makes the loss NaN; finite logits
give a finite gradient for options in float32's range (also ``(1 - p)^γ``, ``γ < 1``, at
``p = 1``).

**Inputs, output and errors, the same for every loss** (function or module; the docstrings
below refer here). ``input`` holds logits ``(N, C, H, W)``: one channel (binary), C ≥ 2
(multiclass) or K ≥ 1 (multilabel). ``target`` is an integer label map ``(N, H, W)``; in
binary mode also ``(N, 1, H, W)``, integer or float ``{0, 1}``; in multilabel mode a
multi-hot ``(N, K, H, W)`` tensor (integer, float ``{0, 1}`` or bool). The result is a
scalar ``()``. The errors, each naming the option, shape or value:

* :class:`~catseg.errors.ConfigError`: an option outside its values (numbers in
  ``[0, 1e30]``, checked once, at construction), or ``class_weights``/``alpha`` of the wrong length
  for ``input``;
* :class:`~catseg.errors.ShapeError`: ``input`` and ``target`` shapes that do not fit
  ``mode``, or an ``input`` without values (an empty batch: N, C, H or W = 0);
* :class:`~catseg.errors.DTypeError`: ``input`` not floating point, or a ``target``
  dtype the mode does not take;
* :class:`~catseg.errors.DataError`: a ``target`` value other than the labels and
  ``ignore_index``.

:class:`DiceCELoss` adds (binary) cross-entropy (same ignore rule) to the Dice loss;
:class:`BCEDiceLoss` is its binary case under the historical name.

Examples:
    >>> import torch
    >>> from catseg.losses import DiceLoss
    >>> probs = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]])   # (N=1, C=1, 2, 2)
    >>> target = torch.tensor([[[1, 0], [1, 0]]])             # (N=1, 2, 2)
    >>> DiceLoss(from_logits=False)(probs, target)            # 1 - (2*1.5+1)/(1.8+2+1)
    tensor(0.1667)
"""

from __future__ import annotations

from catseg.losses._checks import LossMode, ReductionScope
from catseg.losses._dice_ce import BCEDiceLoss, DiceCELoss, dice_ce_loss
from catseg.losses._focal import FocalLoss, focal_loss
from catseg.losses._lovasz import LovaszLoss, lovasz_loss
from catseg.losses._overlap import (
    DiceLoss,
    JaccardLoss,
    SoftDice,
    TverskyLoss,
    jaccard_loss,
    soft_dice,
    tversky_loss,
)

__all__ = [
    "BCEDiceLoss",
    "DiceCELoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "LossMode",
    "LovaszLoss",
    "ReductionScope",
    "SoftDice",
    "TverskyLoss",
    "dice_ce_loss",
    "focal_loss",
    "jaccard_loss",
    "lovasz_loss",
    "soft_dice",
    "tversky_loss",
]
