"""SoftDice and DiceLoss: the module forms of :func:`soft_dice` (one implementation)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from catseg.losses._base import LossModule
from catseg.losses._dice import dice_coefficient, dice_loss
from catseg.losses._options import DiceMode, OptionView, OverlapOptions, ReductionScope

__all__ = ["DiceLoss", "SoftDice"]


class SoftDice(LossModule[OverlapOptions]):
    """Module returning the soft Dice coefficient (see :func:`soft_dice`).

    The options are checked once, here, and kept in ``options``; the attributes
    ``mode``, ``smooth`` ... read them and cannot be reassigned.

    Its keyword options are those of :func:`soft_dice` (documented there); a bad one
    raises :class:`~catseg.errors.ConfigError` here, at construction, naming it.

    Examples:
        >>> import torch
        >>> from catseg.losses import SoftDice
        >>> metric = SoftDice(from_logits=False)
        >>> metric(torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2, dtype=torch.long))
        tensor(1.)
    """

    _compute = staticmethod(dice_coefficient)

    mode = OptionView()
    from_logits = OptionView()
    smooth = OptionView()
    eps = OptionView()
    squared = OptionView()
    ignore_index = OptionView()
    class_weights = OptionView()
    include_background = OptionView()
    reduction_scope = OptionView()

    def __init__(
        self,
        *,
        mode: DiceMode = "binary",
        from_logits: bool = True,
        smooth: float = 1.0,
        eps: float = 1e-7,
        squared: bool = False,
        ignore_index: int | None = 255,
        class_weights: Sequence[float] | Tensor | None = None,
        include_background: bool = True,
        reduction_scope: ReductionScope = "batch",
    ) -> None:
        options = OverlapOptions.checked(
            mode,
            smooth,
            ignore_index,
            class_weights,
            include_background,
            reduction_scope,
            from_logits=from_logits,
            eps=eps,
            squared=squared,
        )
        super().__init__(options)

    def extra_repr(self) -> str:
        o = self.options
        return (
            f"mode={o.mode!r}, from_logits={o.from_logits}, smooth={o.smooth}, "
            f"squared={o.squared}, ignore_index={o.ignore_index}, "
            f"reduction_scope={o.reduction_scope!r}"
        )


class DiceLoss(SoftDice):
    """Dice loss ``1 - soft_dice(...)``: in ``[0, 1]``, 0 for a perfect prediction.

    The same options (see :class:`SoftDice` for each), input contract and errors as
    :class:`SoftDice`; the default is the tutorial's loss: binary, logits in,
    ``smooth=1.0``, summed over the batch.

    Examples:
        >>> import torch
        >>> from catseg.losses import DiceLoss
        >>> loss_fn = DiceLoss(mode="multiclass", include_background=False)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> target = torch.randint(0, 3, (2, 8, 8))
        >>> loss = loss_fn(logits, target)
        >>> loss.backward()
        >>> 0.0 <= loss.item() <= 1.0, logits.grad is not None
        (True, True)
    """

    _compute = staticmethod(dice_loss)
