"""The normalisation a model expects, recorded in its config: :class:`Preprocessing`.

Pixels enter catseg as floats in ``[0, 1]`` (see :mod:`catseg.data`); a model trained
on normalised images expects ``(x - mean) / std`` per channel. That pair travels with
the model in ``UNet.config.preprocessing``, so a checkpoint, an ONNX file's metadata,
:func:`~catseg.training.fit` and :class:`~catseg.predict.Segmenter` all read it from one
place:

* ``UNet(..., encoder_weights=...)`` records the mean/std the pretrained weights expect
  (ImageNet's for the torchvision ResNets, the pretrained config's for timm backbones);
* a randomly initialised model records nothing (``None``, read as the identity);
* :meth:`UNet.describe(mean=..., std=...) <catseg.models.UNet.describe>` records it by hand;
* :func:`~catseg.training.fit` records the normalisation of the training data into a
  model that records nothing, and raises :class:`~catseg.errors.ConfigError` naming both
  values when they disagree.

Examples:
    >>> from catseg.models.preprocessing import IMAGENET, Preprocessing
    >>> IMAGENET.mean
    (0.485, 0.456, 0.406)
    >>> IMAGENET.for_channels(1)
    Preprocessing(mean=(0.449,), std=(0.226,))
    >>> Preprocessing.from_dict(IMAGENET.to_dict()) == IMAGENET
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from catseg._validation import check_mean_std
from catseg.errors import ConfigError

__all__ = ["IMAGENET", "Preprocessing", "check_preprocessing", "same_preprocessing"]


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel ``mean``/``std`` applied to ``[0, 1]`` pixels before the model.

    Attributes:
        mean: One value per input channel (or one value for all channels).
        std: One positive value per input channel (or one for all).

    Raises:
        ConfigError: If a value is not finite, a std is not > 0, or the lengths differ.

    Examples:
        >>> import torch
        >>> p = Preprocessing(mean=(0.5,), std=(0.25,))
        >>> p(torch.full((1, 1, 2, 2), 0.75))[0, 0, 0, 0].item()
        1.0
        >>> Preprocessing(mean=(0.5,), std=(0.0,))
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: std[0] must be a finite number in (0.0, inf], got 0.0
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        for name, values in zip(("mean", "std"), check_mean_std(self.mean, self.std), strict=True):
            object.__setattr__(self, name, values)

    @classmethod
    def identity(cls, channels: int = 3) -> Preprocessing:
        """Mean 0 and std 1 for ``channels`` channels (pixels used as they are).

        Examples:
            >>> Preprocessing.identity(2)
            Preprocessing(mean=(0.0, 0.0), std=(1.0, 1.0))
        """
        return cls((0.0,) * channels, (1.0,) * channels)

    @property
    def is_identity(self) -> bool:
        """True when every mean is 0 and every std is 1."""
        return all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)

    def for_channels(self, channels: int) -> Preprocessing:
        """Adapt an RGB record to ``channels`` inputs by the stem rule.

        As :func:`~catseg.models.weights.adapt_stem_weight` does with filters: kept RGB
        channels keep theirs, the others take the average mean and std. A record with
        ``channels`` entries (or one) is returned unchanged.

        Examples:
            >>> Preprocessing((0.1, 0.2, 0.3), (1.0, 2.0, 3.0)).for_channels(4)
            Preprocessing(mean=(0.1, 0.2, 0.3, 0.2), std=(1.0, 2.0, 3.0, 2.0))
        """
        size = len(self.mean)
        if size in (1, channels):
            return self
        kept = size if channels > size else 0
        added = channels - kept
        mean, std = (v[:kept] + (round(sum(v) / size, 6),) * added for v in (self.mean, self.std))
        return Preprocessing(mean, std)

    def __call__(self, x: Tensor) -> Tensor:
        """Return ``(x - mean) / std`` (a new tensor) for a float ``(N, C, H, W)`` batch."""
        mean, std = (x.new_tensor(values).view(1, -1, 1, 1) for values in (self.mean, self.std))
        return (x - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        """Return ``{"mean": [...], "std": [...]}`` (JSON-serialisable).

        Examples:
            >>> Preprocessing((0.5,), (0.5,)).to_dict()
            {'mean': [0.5], 'std': [0.5]}
        """
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Preprocessing | Mapping[str, Any]) -> Preprocessing:
        """Build a record from :meth:`to_dict`'s output (or return a record unchanged).

        Raises:
            ConfigError: If ``data`` is not such a mapping or its values are invalid.

        Examples:
            >>> Preprocessing.from_dict({"mean": [0.5], "sdt": [1]})
            Traceback (most recent call last):
            ...
            catseg.errors.ConfigError: preprocessing must be a mapping with keys ['mean', \
'std'], got {'mean': [0.5], 'sdt': [1]}
        """
        if isinstance(data, Preprocessing):
            return data
        if not isinstance(data, Mapping) or set(data) != {"mean", "std"}:
            raise ConfigError(
                f"preprocessing must be a mapping with keys ['mean', 'std'], got {data!r}"
            )
        return cls(data["mean"], data["std"])  # __post_init__ checks and converts

    def __str__(self) -> str:
        return f"mean={list(self.mean)}, std={list(self.std)}"


IMAGENET = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
"""The ImageNet statistics torchvision's and most timm weights were trained with."""


def check_preprocessing(value: object, in_channels: int) -> Preprocessing | None:
    """Validate a preprocessing record (a :class:`Preprocessing`, its dict or ``None``).

    Returns:
        The record (``None`` for ``None``), with 1 or ``in_channels`` entries.

    Raises:
        ConfigError: If the record is invalid or has the wrong number of channels.

    Examples:
        >>> check_preprocessing({"mean": [0.5, 0.5], "std": [1, 1]}, 3)
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: preprocessing has 2 channels (mean=[0.5, 0.5], \
std=[1.0, 1.0]) but the model has in_channels=3; give 1 or 3 values
    """
    if value is None:
        return None
    record = Preprocessing.from_dict(value)  # type: ignore[arg-type]
    if len(record.mean) not in (1, in_channels):
        raise ConfigError(
            f"preprocessing has {len(record.mean)} channels ({record}) but the model has "
            f"in_channels={in_channels}; give 1 or {in_channels} values"
        )
    return record


def same_preprocessing(a: Preprocessing, b: Preprocessing, channels: int) -> bool:
    """True when two records normalise ``channels`` channels the same (within 1e-6).

    A one-value record is broadcast to ``channels``.

    Examples:
        >>> same_preprocessing(Preprocessing((0.5,), (1.0,)),
        ...                    Preprocessing((0.5, 0.5), (1.0, 1.0)), 2)
        True
    """

    def values(record: Preprocessing) -> tuple[float, ...]:  # mean then std, per channel
        times = channels if len(record.mean) == 1 else 1
        return record.mean * times + record.std * times

    x, y = values(a), values(b)
    return len(x) == len(y) and all(abs(u - v) <= 1e-6 for u, v in zip(x, y, strict=True))
