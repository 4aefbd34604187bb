"""What a training dataset says about the images a model sees: class names and input size.

:meth:`catseg.training.CheckpointMeta.from_dataset` reads these through the usual
wrappers. It never guesses: where the truth cannot be read (parts of a ``ConcatDataset``
that disagree, a transform whose effect on the size is unknown) it refuses with a
:class:`~catseg.errors.ConfigError` that says which values to pass explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch.utils.data import ChainDataset, ConcatDataset

from catseg.errors import ConfigError

__all__ = ["DatasetFacts", "read_dataset_facts"]

_ADVICE = "pass checkpoint_meta=CheckpointMeta(classes=..., image_size=...) explicitly"
_MAX_WRAPPERS = 32


@dataclass(frozen=True)
class _Unknown:
    """The first transform whose effect on the size is not known."""

    transform: object


@dataclass(frozen=True)
class DatasetFacts:
    """Class names (``None`` if the dataset does not say) and the size the model sees.

    ``image_size`` is ``None`` when images reach the model at their own, varying sizes.
    """

    class_names: tuple[str, ...] | None
    image_size: tuple[int, int] | None


def _size_of(value: object, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value, value)
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"{where} is {value!r}, not (height, width) positive ints; {_ADVICE}")


def _after_transforms(
    transforms: object, size: tuple[int, int] | None
) -> tuple[int, int] | _Unknown | None:
    """The size after ``transforms``, or the first transform whose effect is not known."""
    from catseg.data import transforms as tfm

    if transforms is None:
        return size
    if isinstance(transforms, tfm.Compose):
        for inner in transforms.transforms:
            after = _after_transforms(inner, size)
            if isinstance(after, _Unknown):
                return after
            size = after
        return size
    if isinstance(transforms, (tfm.Resize, tfm.RandomResizedCrop)):
        return transforms.size
    if isinstance(transforms, tfm.PadToMultiple):
        if size is None:
            return None
        step = transforms.multiple
        return (-(-size[0] // step) * step, -(-size[1] // step) * step)
    keeps_size = (tfm.RandomHorizontalFlip, tfm.RandomRotation, tfm.ColorJitter, tfm.Normalize)
    if isinstance(transforms, keeps_size):
        return size
    return _Unknown(transforms)


def _seen_size(dataset: object, size: tuple[int, int] | None, where: str) -> tuple[int, int] | None:
    after = _after_transforms(getattr(dataset, "transforms", None), size)
    if isinstance(after, _Unknown):
        raise ConfigError(
            f"cannot tell the image size the model sees: the transforms of {where} hold a "
            f"{type(after.transform).__qualname__}, whose effect on the size is unknown; "
            f"{_ADVICE}"
        )
    return after


def _one(dataset: object, where: str) -> DatasetFacts:
    names = getattr(dataset, "class_names", None)
    classes = (
        tuple(str(n) for n in names)
        if isinstance(names, Sequence) and not isinstance(names, str) and len(names) > 0
        else None
    )
    size = _size_of(getattr(dataset, "image_size", None), f"{where}.image_size")
    return DatasetFacts(classes, _seen_size(dataset, size, where))


def _agree(parts: list[DatasetFacts], where: str) -> DatasetFacts:
    first = parts[0]
    for index, part in enumerate(parts[1:], start=1):
        for field in ("class_names", "image_size"):
            if getattr(part, field) != getattr(first, field):
                raise ConfigError(
                    f"the parts of {where} disagree on {field}: part 0 has "
                    f"{getattr(first, field)!r}, part {index} has {getattr(part, field)!r}; "
                    f"{_ADVICE}"
                )
    return first


def read_dataset_facts(dataset: object, where: str = "the dataset", depth: int = 0) -> DatasetFacts:
    """Read class names and input size through Subset, ConcatDataset and ``.dataset`` wrappers.

    A dataset that declares ``class_names``/``image_size`` itself is believed; otherwise
    :class:`~torch.utils.data.Subset` and any object with a ``.dataset`` are looked
    through (a wrapper's own ``transforms`` then apply on top), and every part of a
    :class:`~torch.utils.data.ConcatDataset` is read and must agree. The size is the one
    after the dataset's ``transforms``.

    Raises:
        ConfigError: If parts disagree, or a transform's effect on the size is unknown.

    Examples:
        >>> from torch.utils.data import ConcatDataset, Subset
        >>> class Cats:
        ...     class_names = ["_background_", "cat"]
        ...     image_size = 64
        ...     def __len__(self): return 4
        >>> read_dataset_facts(Subset(ConcatDataset([Cats(), Cats()]), [0, 5]))
        DatasetFacts(class_names=('_background_', 'cat'), image_size=(64, 64))
    """
    if depth > _MAX_WRAPPERS:
        raise ConfigError(f"{where} is wrapped more than {_MAX_WRAPPERS} times; {_ADVICE}")
    if isinstance(dataset, (ConcatDataset, ChainDataset)):
        parts = [
            read_dataset_facts(part, f"{where}.datasets[{i}]", depth + 1)
            for i, part in enumerate(dataset.datasets)
        ]
        return _agree(parts, where) if parts else DatasetFacts(None, None)
    declares = hasattr(dataset, "class_names") or hasattr(dataset, "image_size")
    inner = getattr(dataset, "dataset", None)
    if declares or inner is None or inner is dataset:
        return _one(dataset, where)
    facts = read_dataset_facts(inner, f"{where}.dataset", depth + 1)
    return DatasetFacts(facts.class_names, _seen_size(dataset, facts.image_size, where))
