"""The encoder contract: :class:`Encoder`, :class:`EncoderFactory`, :func:`validate_encoder`.

An encoder is any :class:`torch.nn.Module` that returns a list of feature maps, shallow →
deep, and states them in ``out_channels`` (the channels of each map) and ``reductions``
(the stride of each map relative to the input: strictly increasing, each a multiple of the
previous one). The UNet decoder builds itself from both, so such an encoder plugs in
without any change to catseg.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

from catseg._validation import check_positive_int
from catseg.errors import EncoderError

__all__ = [
    "Encoder",
    "EncoderFactory",
    "PretrainedEncoder",
    "check_encoder_attributes",
    "validate_encoder",
]


@runtime_checkable
class Encoder(Protocol):
    """What the UNet needs from a backbone (a structural protocol: no base class).

    Attributes:
        out_channels: Channels of each returned feature map, shallow → deep.
        reductions: Stride of each map relative to the input, strictly increasing,
            each a multiple of the previous one.

    Shape:
        ``forward(x (N, C, H, W))``, ``H`` and ``W`` multiples of ``reductions[-1]`` (the
        UNet pads its input), returns maps ``(N, out_channels[i], H / r_i, W / r_i)``.

    Examples:
        >>> from catseg.models.encoders import get_encoder
        >>> isinstance(get_encoder("resnet18"), Encoder)
        True
    """

    @property
    def out_channels(self) -> Sequence[int]:
        """Channels of each feature map, shallow → deep."""
        ...

    @property
    def reductions(self) -> Sequence[int]:
        """Stride of each feature map relative to the input, strictly increasing."""
        ...

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps of ``x``, shallow → deep."""
        ...


class EncoderFactory(Protocol):
    """A callable ``(*, in_channels=3, **options) -> Encoder``; what is registered by name.

    Its keyword parameters besides ``in_channels`` are the encoder's options
    (``UNet(encoder_options=...)``): JSON-like values, recorded in the UNet's config and
    replayed by ``UNet.from_config``.

    Examples:
        >>> from catseg.models.encoders.resnet import resnet18
        >>> factory: EncoderFactory = resnet18
        >>> factory(in_channels=1).conv1.in_channels
        1
    """

    def __call__(self, *, in_channels: int = 3) -> Encoder:
        """Build the encoder for ``in_channels`` input channels."""
        ...


@runtime_checkable
class PretrainedEncoder(Encoder, Protocol):
    """Optional members that give ``UNet(encoder_weights=...)`` more than a matching state dict.

    They add named sources, the stem rule, dropped classifier keys and the mean/std the
    weights expect (see :mod:`catseg.models.weights`). A file format that differs from the
    module tree (timm's) can be read by an optional ``read_weights_file(path)`` method.

    Attributes:
        weights_preprocessing: The :class:`~catseg.models.Preprocessing` (mean/std of
            ``[0, 1]`` RGB pixels) the pretrained weights expect, or ``None``.
        weight_sources: Names accepted as ``encoder_weights`` (e.g. ``("torchvision",)``).
        stem_weight: State-dict key of the convolution on raw pixels, adapted by the
            stem rule when ``in_channels`` differs from the weights'.
        ignored_weights: Key prefixes dropped from weight files (a classifier head).

    Examples:
        >>> from catseg.models.encoders import get_encoder
        >>> isinstance(get_encoder("resnet18"), PretrainedEncoder)
        True
        >>> isinstance(get_encoder("unet"), PretrainedEncoder)
        False
    """

    weights_preprocessing: Any
    weight_sources: tuple[str, ...]
    stem_weight: str | None
    ignored_weights: tuple[str, ...]

    def load_weight_source(self, source: str) -> Mapping[str, Tensor]:
        """The state dict of one of ``weight_sources``, keyed like this encoder, for RGB."""
        ...


def check_encoder_attributes(encoder: object) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check the contract's attributes (no forward pass); return them as tuples of ints.

    Raises:
        EncoderError: If the object is not an ``nn.Module``, lacks an attribute, the
            lengths differ, a width is < 1, or the reductions are not strictly
            increasing positive integers each dividing the next.

    Examples:
        >>> from catseg.models.encoders import get_encoder
        >>> check_encoder_attributes(get_encoder("resnet18"))
        ((64, 64, 128, 256, 512), (2, 4, 8, 16, 32))
    """
    name = f"encoder {type(encoder).__name__}"
    if not isinstance(encoder, nn.Module):
        raise EncoderError(f"{name} must be a torch.nn.Module, got {type(encoder)!r}")
    declared: list[tuple[int, ...]] = []
    for attr in ("out_channels", "reductions"):
        if not hasattr(encoder, attr):
            raise EncoderError(f"{name} has no {attr!r} attribute (Encoder protocol)")
        value: Any = getattr(encoder, attr)
        try:
            declared.append(tuple(int(v) for v in value))
        except (TypeError, ValueError) as err:
            raise EncoderError(f"{name}: {attr} must be a sequence of ints, got {value!r}") from err
    channels, reductions = declared
    if not channels:
        raise EncoderError(f"{name} declares no feature maps (out_channels is empty)")
    if len(channels) != len(reductions):
        raise EncoderError(
            f"{name}: out_channels has {len(channels)} entries but reductions has "
            f"{len(reductions)}; they must describe the same feature maps"
        )
    if min(channels) < 1 or reductions[0] < 1:
        raise EncoderError(
            f"{name}: out_channels must all be >= 1 and reductions >= 1, got {channels} and "
            f"{reductions}"
        )
    for low, high in itertools.pairwise(reductions):
        if high <= low:
            raise EncoderError(f"{name}: reductions must be strictly increasing, got {reductions}")
        if high % low:
            raise EncoderError(
                f"{name}: each reduction must be a multiple of the previous one, got "
                f"{reductions} ({high} is not a multiple of {low})"
            )
    return channels, reductions


def validate_encoder(
    encoder: object, *, in_channels: int = 3, size: int | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check that ``encoder`` keeps the :class:`Encoder` contract, with one dummy forward.

    The forward runs under ``torch.no_grad`` in eval mode (the training flag is restored)
    on zeros of shape ``(1, in_channels, size, size)``, on the device and in the dtype of
    its parameters (``meta`` works). ``UNet`` runs it when it is built.

    Args:
        encoder: The candidate encoder (an ``nn.Module``).
        in_channels: Input channels of the dummy batch.
        size: Its height and width, a multiple of ``reductions[-1]``; by default the
            smallest a ``UNet`` feeds it: ``reductions[-1]``, twice it for an encoder with
            ``GroupNorm`` or ``InstanceNorm2d`` layers (the UNet pads those to 2 pixels).

    Returns:
        ``(out_channels, reductions)`` as tuples of ints.

    Raises:
        EncoderError: Naming the first mismatch: an attribute (see
            :func:`check_encoder_attributes`), the forward failing or not returning a
            list of tensors, the number of maps, a channel count or a stride.

    Examples:
        >>> from torch import nn
        >>> class Bad(nn.Module):
        ...     out_channels = (4,)
        ...     reductions = (2,)
        ...     def forward(self, x):
        ...         return [x]
        >>> validate_encoder(Bad())
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: encoder Bad: feature map 0 has 3 channels, expected 4 ...
    """
    channels, reductions = check_encoder_attributes(encoder)
    module = cast(nn.Module, encoder)
    name = f"encoder {type(encoder).__name__}"
    spatial = any(isinstance(m, nn.GroupNorm | nn.InstanceNorm2d) for m in module.modules())
    side = reductions[-1] * (1 + spatial) if size is None else check_positive_int("size", size)
    if side % reductions[-1]:
        raise EncoderError(f"size must be a positive multiple of {reductions[-1]}, got {size}")
    like = next(module.parameters(), torch.zeros(()))  # the encoder's device and dtype
    dtype = like.dtype if like.is_floating_point() else None
    shape = (1, check_positive_int("in_channels", in_channels), side, side)
    x = torch.zeros(shape, device=like.device, dtype=dtype)
    was_training = module.training
    try:
        with torch.no_grad():
            features = module.eval()(x)
    except Exception as err:
        raise EncoderError(
            f"{name} failed on a dummy input of shape {tuple(x.shape)}: {type(err).__name__}: {err}"
        ) from err
    finally:
        module.train(was_training)
    if not isinstance(features, list) or not all(isinstance(f, Tensor) for f in features):
        raise EncoderError(f"{name}: forward must return a list of tensors, got {type(features)!r}")
    if len(features) != len(channels):
        raise EncoderError(
            f"{name}: forward returned {len(features)} feature maps, expected {len(channels)}"
        )
    for i, (feat, c, r) in enumerate(zip(features, channels, reductions, strict=True)):
        expected = (1, c, side // r, side // r)
        if feat.ndim == 4 and feat.shape[1] != c:
            raise EncoderError(
                f"{name}: feature map {i} has {feat.shape[1]} channels, expected {c} "
                f"(out_channels[{i}]); shape {tuple(feat.shape)}"
            )
        if tuple(feat.shape) != expected:
            raise EncoderError(
                f"{name}: feature map {i} has shape {tuple(feat.shape)} for a {side}x{side} "
                f"input, expected {expected} (reduction {r})"
            )
    return channels, reductions
