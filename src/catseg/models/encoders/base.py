"""The encoder contract: :class:`Encoder`, :class:`EncoderFactory`, :func:`validate_encoder`.

An encoder is any :class:`torch.nn.Module` that returns a list of feature maps,
shallow → deep, and states what it returns in two attributes:

* ``out_channels``: the channel count of each map;
* ``reductions``: the stride of each map relative to the input (strictly increasing,
  each one a multiple of the previous, e.g. ``(2, 4, 8, 16, 32)`` for a ResNet or
  ``(1, 2, 4, 8, 16)`` for the classic UNet encoder).

The UNet decoder reads both attributes to build itself, so an encoder that follows
the contract plugs in without any change to catseg.

Examples:
    >>> from catseg.models.encoders import get_encoder, validate_encoder
    >>> encoder = get_encoder("unet")
    >>> tuple(encoder.out_channels), tuple(encoder.reductions)
    ((32, 64, 128, 256, 512), (1, 2, 4, 8, 16))
    >>> validate_encoder(encoder)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

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
        ``forward(x (N, C, H, W))`` with ``H`` and ``W`` multiples of
        ``reductions[-1]`` returns maps of shape ``(N, out_channels[i], H / r_i, W / r_i)``.

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
        """Return the feature maps, shallow → deep.

        Args:
            x: Float batch whose height and width are multiples of ``reductions[-1]``
                (the UNet pads its input to guarantee it).

        Returns:
            One map per entry of ``out_channels``, shallow → deep.

        Shape:
            - x: ``(N, C, H, W)``.
            - output ``i``: ``(N, out_channels[i], H / reductions[i], W / reductions[i])``.
        """
        ...


class EncoderFactory(Protocol):
    """A callable that builds an :class:`Encoder`; what ``register_encoder`` registers.

    It is called as ``factory(in_channels=..., **options)``: its keyword parameters
    besides ``in_channels`` are the encoder's options (``UNet(encoder_options=...)``),
    read from its signature, recorded in the UNet's config and replayed by
    ``UNet.from_config``. Options must be JSON-like values (numbers, strings, lists).

    Examples:
        >>> from catseg.models.encoders.resnet import resnet18
        >>> factory: EncoderFactory = resnet18
        >>> factory(in_channels=1).conv1.in_channels
        1
    """

    def __call__(self, *, in_channels: int = 3) -> Encoder:
        """Build the encoder for ``in_channels`` input channels.

        Args:
            in_channels: Channels of the images the encoder will receive.

        Returns:
            A new encoder following the :class:`Encoder` protocol.
        """
        ...


@runtime_checkable
class PretrainedEncoder(Encoder, Protocol):
    """Optional members an encoder declares so that ``UNet(encoder_weights=...)`` works.

    None is required: an encoder without them still loads a state dict or a file whose
    keys match its own; these add named sources, the stem rule, dropped classifier
    keys and the mean/std its weights expect (see :mod:`catseg.models.weights`). A
    file format that differs from the module tree (timm's) can be read by an optional
    ``read_weights_file(path) -> Mapping[str, Tensor] | None`` method.

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
        """Return the weights of a named source, keyed like this encoder, for RGB input.

        Args:
            source: One of ``weight_sources``.

        Returns:
            A state dict (the stem for 3 input channels).
        """
        ...


def _describe(encoder: object) -> str:
    return type(encoder).__name__


def check_encoder_attributes(encoder: object) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check the static part of the contract (no forward pass) and return it normalised.

    Args:
        encoder: The candidate encoder.

    Returns:
        ``(out_channels, reductions)`` as tuples of ints.

    Raises:
        EncoderError: If the object is not an ``nn.Module``, lacks an attribute, the
            two lengths differ, a channel count is < 1, or the reductions are not
            strictly increasing positive integers each dividing the next.

    Examples:
        >>> from catseg.models.encoders import get_encoder
        >>> check_encoder_attributes(get_encoder("resnet18"))
        ((64, 64, 128, 256, 512), (2, 4, 8, 16, 32))
    """
    name = _describe(encoder)
    if not isinstance(encoder, nn.Module):
        raise EncoderError(f"encoder {name} must be a torch.nn.Module, got {type(encoder)!r}")
    for attr in ("out_channels", "reductions"):
        if not hasattr(encoder, attr):
            raise EncoderError(f"encoder {name} has no {attr!r} attribute (Encoder protocol)")
    declared_channels: Any = getattr(encoder, "out_channels")  # noqa: B009
    declared_reductions: Any = getattr(encoder, "reductions")  # noqa: B009
    try:
        channels = tuple(int(c) for c in declared_channels)
        reductions = tuple(int(r) for r in declared_reductions)
    except (TypeError, ValueError) as err:
        raise EncoderError(
            f"encoder {name}: out_channels and reductions must be sequences of ints, got "
            f"{declared_channels!r} and {declared_reductions!r}"
        ) from err
    if not channels:
        raise EncoderError(f"encoder {name} declares no feature maps (out_channels is empty)")
    if len(channels) != len(reductions):
        raise EncoderError(
            f"encoder {name}: out_channels has {len(channels)} entries but reductions has "
            f"{len(reductions)}; they must describe the same feature maps"
        )
    if any(c < 1 for c in channels):
        raise EncoderError(f"encoder {name}: out_channels must all be >= 1, got {channels}")
    if reductions[0] < 1:
        raise EncoderError(f"encoder {name}: reductions must be >= 1, got {reductions}")
    for i in range(1, len(reductions)):
        if reductions[i] <= reductions[i - 1]:
            raise EncoderError(
                f"encoder {name}: reductions must be strictly increasing, got {reductions} "
                f"(map {i} has reduction {reductions[i]} <= {reductions[i - 1]})"
            )
        if reductions[i] % reductions[i - 1]:
            raise EncoderError(
                f"encoder {name}: each reduction must be a multiple of the previous one, got "
                f"{reductions} ({reductions[i]} is not a multiple of {reductions[i - 1]})"
            )
    return channels, reductions


def validate_encoder(encoder: object, *, in_channels: int = 3, size: int | None = None) -> None:
    """Check that ``encoder`` keeps the :class:`Encoder` contract, with one dummy forward.

    The forward runs under ``torch.no_grad`` in eval mode (the training flag is
    restored afterwards) on a zero batch of shape ``(1, in_channels, size, size)``.

    Args:
        encoder: The candidate encoder (an ``nn.Module``).
        in_channels: Input channels of the dummy batch.
        size: Height and width of the dummy batch; default ``2 * reductions[-1]``.
            Must be a multiple of ``reductions[-1]``.

    Raises:
        EncoderError: Naming the first mismatch: missing attribute, inconsistent
            lengths, non-increasing reductions, forward failing or not returning a
            list of tensors, wrong number of maps, wrong channel count or wrong stride.

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
    module = cast(nn.Module, encoder)  # check_encoder_attributes verified it
    name = _describe(encoder)
    side = 2 * reductions[-1] if size is None else size
    if side < 1 or side % reductions[-1]:
        raise EncoderError(f"size must be a positive multiple of {reductions[-1]}, got {size}")
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, in_channels, side, side, device=device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            features = module(x)
    except Exception as err:
        raise EncoderError(
            f"encoder {name} failed on a dummy input of shape {tuple(x.shape)}: "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        module.train(was_training)
    if not isinstance(features, list | tuple) or not all(isinstance(f, Tensor) for f in features):
        raise EncoderError(
            f"encoder {name}: forward must return a list of tensors, got {type(features)!r}"
        )
    if len(features) != len(channels):
        raise EncoderError(
            f"encoder {name}: forward returned {len(features)} feature maps, expected "
            f"{len(channels)} (len(out_channels))"
        )
    for i, (feat, c, r) in enumerate(zip(features, channels, reductions, strict=True)):
        expected = (1, c, side // r, side // r)
        if feat.ndim != 4:
            raise EncoderError(
                f"encoder {name}: feature map {i} has shape {tuple(feat.shape)}, expected 4-D "
                f"{expected}"
            )
        if feat.shape[1] != c:
            raise EncoderError(
                f"encoder {name}: feature map {i} has {feat.shape[1]} channels, expected {c} "
                f"(out_channels[{i}]); shape {tuple(feat.shape)}"
            )
        if tuple(feat.shape) != expected:
            raise EncoderError(
                f"encoder {name}: feature map {i} has shape {tuple(feat.shape)} for a "
                f"{side}x{side} input, expected {expected} (reduction {r})"
            )
