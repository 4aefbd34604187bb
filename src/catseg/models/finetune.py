"""Fine-tuning helpers: freeze the encoder, and separate learning rates per part.

A frozen encoder has ``requires_grad=False`` on its parameters **and** stays in eval
mode, even when :func:`~catseg.training.fit` calls ``model.train()``: its BatchNorm
running statistics do not move, so the pretrained features stay exactly as they were.

Recipe (see the fine-tuning guide): train the decoder for a few epochs with the
encoder frozen, then unfreeze it and continue with a lower encoder learning rate::

    freeze_encoder(model)
    fit(model, loader, optimizer=torch.optim.AdamW(param_groups(model, decoder_lr=1e-3)))
    unfreeze_encoder(model)
    groups = param_groups(model, encoder_lr=1e-4, decoder_lr=1e-3)
    fit(model, loader, optimizer=torch.optim.AdamW(groups))

Examples:
    >>> from catseg.models import UNet
    >>> model = UNet(3, 1, encoder="resnet18")
    >>> freeze_encoder(model)
    >>> model.train().encoder.training, model.decoder.training
    (False, True)
    >>> [len(g["params"]) for g in param_groups(model, encoder_lr=1e-4, decoder_lr=1e-3)]
    [0, 52]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from catseg._validation import check_finite_float
from catseg.errors import ConfigError
from catseg.models.unet import UNet

__all__ = ["freeze_encoder", "param_groups", "unfreeze_encoder"]


def _unet(model: object, caller: str) -> UNet:
    inner = getattr(model, "module", model)  # DataParallel / DistributedDataParallel
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    if not isinstance(inner, UNet):
        raise ConfigError(f"{caller} expects a catseg UNet, got {type(model).__qualname__}")
    return inner


def freeze_encoder(model: nn.Module) -> None:
    """Freeze ``model.encoder``: no gradients, and eval mode that ``train()`` keeps.

    Args:
        model: A :class:`~catseg.models.UNet`, possibly wrapped by DDP or
            ``torch.compile`` (as for the other functions here).

    Raises:
        ConfigError: If ``model`` is not a UNet.

    Examples:
        >>> from catseg.models import UNet
        >>> model = UNet(init_features=4, depth=2)
        >>> freeze_encoder(model)
        >>> any(p.requires_grad for p in model.encoder.parameters()), model.encoder_frozen
        (False, True)
    """
    net = _unet(model, "freeze_encoder")
    net._encoder_frozen = True
    net.encoder.requires_grad_(False).eval()


def unfreeze_encoder(model: nn.Module) -> None:
    """Undo :func:`freeze_encoder`: gradients on, and the encoder follows the model's mode.

    Examples:
        >>> from catseg.models import UNet
        >>> model = UNet(init_features=4, depth=2)
        >>> freeze_encoder(model); unfreeze_encoder(model)
        >>> model.train().encoder.training, model.encoder_frozen
        (True, False)
    """
    net = _unet(model, "unfreeze_encoder")
    net._encoder_frozen = False
    net.encoder.requires_grad_(True).train(net.training)


def param_groups(
    model: nn.Module,
    *,
    encoder_lr: float | None = None,
    decoder_lr: float | None = None,
) -> list[dict[str, Any]]:
    """Two optimizer parameter groups: the encoder, and the rest (decoder and head).

    Usable with any ``torch.optim`` optimizer. Only parameters that require gradients
    are listed (a frozen encoder gives an empty first group); a learning rate left
    ``None`` takes the optimizer's ``lr``.

    Args:
        model: A :class:`~catseg.models.UNet` (possibly wrapped).
        encoder_lr: Learning rate of the encoder's parameters.
        decoder_lr: Learning rate of the decoder's and head's parameters.

    Returns:
        ``[{"params": [...], "lr": encoder_lr, "name": "encoder"}, {... "decoder"}]``.

    Raises:
        ConfigError: If a learning rate is not a finite number > 0.

    Examples:
        >>> import torch
        >>> from catseg.models import UNet
        >>> model = UNet(init_features=4, depth=2)
        >>> opt = torch.optim.SGD(param_groups(model, encoder_lr=0.01), lr=0.1)
        >>> [g["lr"] for g in opt.param_groups]
        [0.01, 0.1]
    """
    net = _unet(model, "param_groups")
    ids = {id(p) for p in net.encoder.parameters()}
    groups: list[dict[str, Any]] = []
    for name, lr, in_encoder in (("encoder", encoder_lr, True), ("decoder", decoder_lr, False)):
        params = [p for p in net.parameters() if p.requires_grad and (id(p) in ids) == in_encoder]
        group: dict[str, Any] = {"params": params, "name": name}
        if lr is not None:
            group["lr"] = check_finite_float(f"{name}_lr", lr, low=0.0, low_open=True)
        groups.append(group)
    return groups
