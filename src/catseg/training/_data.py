"""What the training data states about the model's use, recorded on the model by ``fit``.

The facts (class names, multilabel mode, the image size after the dataset's transforms,
the normalisation) are read through :class:`~torch.utils.data.Subset`, every part of a
:class:`~torch.utils.data.ConcatDataset` and other wrappers that keep the real dataset in
``.dataset`` (a wrapper's own transforms apply on top). Nothing is guessed: a fact that
cannot be read (parts that disagree, a transform whose effect on the size is unknown) is
asked for only when it is needed, naming the one ``model.describe(...)`` call that states it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn
from torch.utils.data import ChainDataset, ConcatDataset

from catseg._validation import check_optional_size
from catseg.errors import ConfigError
from catseg.models.preprocessing import Preprocessing, same_preprocessing
from catseg.models.unet import UNet

_MAX_WRAPPERS = 32
Size = tuple[int, int] | None


@dataclass(frozen=True)
class DataFacts:
    """The facts a training dataset states (``None``: it does not say).

    ``unreadable`` maps a fact to why it cannot be read.
    """

    classes: tuple[str, ...] | None = None
    mode: str | None = None
    image_size: Size = None
    normalization: Preprocessing | None = None
    unreadable: dict[str, str] = field(default_factory=dict)


def _size_after(transforms: object, size: Size, where: str) -> Size | str:
    """The size after ``transforms``, or why it is unknown."""
    from catseg.data import transforms as tfm

    if isinstance(transforms, tfm.Compose):
        for inner in transforms.transforms:
            after = _size_after(inner, size, where)
            if isinstance(after, str):
                return after
            size = after
        return size
    if isinstance(transforms, (tfm.Resize, tfm.RandomResizedCrop)):
        return transforms.size
    if isinstance(transforms, tfm.PadToMultiple):
        step = transforms.multiple
        return None if size is None else (-(-size[0] // step) * step, -(-size[1] // step) * step)
    keeps = (tfm.RandomHorizontalFlip, tfm.RandomRotation, tfm.ColorJitter, tfm.Normalize)
    if transforms is None or isinstance(transforms, keeps):
        return size
    kind = type(transforms).__qualname__
    return f"the transforms of {where} hold a {kind}, whose effect on the size is unknown"


def _normalization(transforms: object) -> Preprocessing | None:
    """The ``Normalize`` steps (catseg's or torchvision's) in ``transforms``, as one record."""
    found: Preprocessing | None = None
    pending = [transforms]
    while pending:
        item = pending.pop(0)
        nested = getattr(item, "transforms", None)
        if isinstance(nested, list | tuple):
            pending[:0] = list(nested)
        elif type(item).__name__ == "Normalize" and hasattr(item, "mean"):
            step = Preprocessing(tuple(item.mean), tuple(item.std))  # type: ignore[attr-defined]
            if found is not None:  # ((x - m1) / s1 - m2) / s2 = (x - (m1 + m2 s1)) / (s1 s2)
                if len(found.mean) != len(step.mean):
                    raise ConfigError(f"two Normalize of different lengths: {found} then {step}")
                pairs = list(zip(found.mean, found.std, step.mean, step.std, strict=True))
                step = Preprocessing(
                    tuple(m1 + m2 * s1 for m1, s1, m2, _ in pairs),
                    tuple(s1 * s2 for _, s1, _, s2 in pairs),
                )
            found = step
    return found


def _agree(parts: list[DataFacts], where: str) -> DataFacts:
    first, unreadable = parts[0], dict(parts[0].unreadable)
    for index, part in enumerate(parts[1:], start=1):
        unreadable = {**part.unreadable, **unreadable}
        for name in ("classes", "mode", "image_size", "normalization"):
            a, b = getattr(first, name), getattr(part, name)
            if a != b and name not in unreadable:
                unreadable[name] = (
                    f"the parts of {where} disagree on {name}: part 0 has {a!r}, "
                    f"part {index} has {b!r}"
                )
    return replace(first, unreadable=unreadable)


def read_data_facts(dataset: object, where: str = "the dataset", depth: int = 0) -> DataFacts:
    """Read the facts a training dataset states, through wrappers and transforms.

    A dataset that declares ``class_names`` or ``image_size`` is believed; ``mean``/``std``
    attributes come before a ``Normalize`` in its ``transforms`` (or ``transform``).

    Raises:
        ConfigError: If a declared ``image_size`` is not a size.

    Examples:
        >>> from torch.utils.data import ConcatDataset, Subset
        >>> from catseg.data.transforms import Resize
        >>> class Cats:
        ...     class_names, image_size, transforms = ["_background_", "cat"], 64, Resize(32)
        ...     def __len__(self): return 4
        >>> facts = read_data_facts(Subset(ConcatDataset([Cats(), Cats()]), [0, 5]))
        >>> facts.classes, facts.image_size
        (('_background_', 'cat'), (32, 32))
    """
    if depth > _MAX_WRAPPERS:
        raise ConfigError(f"{where} is wrapped more than {_MAX_WRAPPERS} times")
    if isinstance(dataset, (ConcatDataset, ChainDataset)):
        parts = [
            read_data_facts(part, f"{where}.datasets[{i}]", depth + 1)
            for i, part in enumerate(dataset.datasets)
        ]
        return _agree(parts, where) if parts else DataFacts()
    transforms = getattr(dataset, "transforms", getattr(dataset, "transform", None))
    mean, std = getattr(dataset, "mean", None), getattr(dataset, "std", None)
    own = (
        Preprocessing(tuple(map(float, mean)), tuple(map(float, std)))
        if isinstance(mean, Sequence) and isinstance(std, Sequence)
        else _normalization(transforms)
    )
    inner = getattr(dataset, "dataset", None)
    declares = hasattr(dataset, "class_names") or hasattr(dataset, "image_size")
    if declares or inner is None or inner is dataset:
        names = getattr(dataset, "class_names", None)
        classes = tuple(map(str, names)) if isinstance(names, Sequence) and names else None
        size = check_optional_size(f"{where}.image_size", getattr(dataset, "image_size", None))
        base = DataFacts(classes, getattr(dataset, "mode", None), size)
    else:
        base = read_data_facts(inner, f"{where}.dataset", depth + 1)
    after = _size_after(transforms, base.image_size, where)
    unreadable = dict(base.unreadable)
    if isinstance(after, str):
        unreadable.setdefault("image_size", after)
    return replace(
        base,
        mode="multilabel" if "multilabel" in (base.mode, getattr(dataset, "mode", None)) else None,
        image_size=None if isinstance(after, str) else after,
        normalization=own or base.normalization,
        unreadable=unreadable,
    )


def record_data_facts(model: nn.Module, dataset: object, *, need_size: bool) -> None:
    """Record on ``model`` (a UNet; other modules are left alone) what ``dataset`` states.

    A fact the model already records must agree; ``mode`` becomes ``"multilabel"`` when the
    data says so; data without a normalisation feeds ``[0, 1]`` pixels (the identity).

    Raises:
        ConfigError: If the data and the model's record disagree (both values named), or
            a fact cannot be read and the model does not record it: the classes always,
            the image size when ``need_size`` (``fit`` writes checkpoints).
    """
    if not isinstance(model, UNet):
        return
    config, facts = model.config, read_data_facts(dataset)
    needed = {"classes": "[...]", "image_size": "(H, W)"} if need_size else {"classes": "[...]"}
    missing = {
        name: why
        for name, why in facts.unreadable.items()
        if name in needed and getattr(config, name) is None
    }
    if missing:
        call = ", ".join(f"{name}={needed[name]}" for name in missing)
        raise ConfigError(
            f"cannot tell the {' and '.join(missing)} the model is trained with: "
            f"{'; '.join(missing.values())}; state it once with model.describe({call}) "
            "before fit"
        )
    given: dict[str, Any] = {}
    if facts.mode == "multilabel" and config.mode != "multilabel":
        given["mode"] = "multilabel"
    for name in ("classes", "image_size"):
        if name in facts.unreadable:
            continue
        value, recorded = getattr(facts, name), getattr(config, name)
        if value is not None and recorded not in (None, value):
            raise ConfigError(
                f"the training data states {name}={value!r} but the model records "
                f"{name}={recorded!r}; train on matching data or build a new model"
            )
        if value is not None and recorded is None:
            given[name] = value
    channels = config.in_channels
    data = facts.normalization or Preprocessing.identity(channels)
    recorded = config.preprocessing or Preprocessing.identity(channels)
    same = same_preprocessing(data, recorded, max(len(data.mean), len(recorded.mean)))
    if not same and "normalization" not in facts.unreadable:
        if config.preprocessing is not None:
            raise ConfigError(
                f"the training data's normalisation ({data}) differs from the preprocessing "
                f"recorded in the model's config ({recorded}); normalise the data with the "
                "recorded values (catseg.data.transforms.Normalize(mean, std)), or "
                "model.describe(mean=..., std=...) with the normalisation really used"
            )
        given.update(mean=data.mean, std=data.std)
    try:
        model.describe(**given)
    except ConfigError as err:
        raise ConfigError(f"the training data states {given}: {err}") from None
