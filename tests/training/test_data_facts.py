"""fit reads what the training data states through wrappers and transforms, or asks."""

from __future__ import annotations

from typing import Any

import pytest
from torch.utils.data import ConcatDataset, Dataset, Subset

from catseg.data import transforms as tfm
from catseg.errors import ConfigError
from catseg.models import UNet
from catseg.models.preprocessing import Preprocessing
from catseg.training._data import DataFacts, read_data_facts, record_data_facts


class Declared(Dataset[Any]):
    """A dataset that declares its classes and size, like VOCSegmentationDataset."""

    def __init__(
        self, names: list[str], size: int | tuple[int, int] | None, transforms: Any = None
    ):
        self.class_names = names
        self.image_size = size
        self.transforms = transforms

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


class Wrapper(Dataset[Any]):
    """A user wrapper that keeps the real dataset in ``.dataset`` (and may add transforms)."""

    def __init__(self, dataset: Any, transforms: Any = None) -> None:
        self.dataset = dataset
        self.transforms = transforms

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


CATS = ["_background_", "cat"]


def meta(dataset: Any) -> tuple[tuple[str, ...] | None, tuple[int, int] | None]:
    found = read_data_facts(dataset)
    assert not found.unreadable
    return found.classes, found.image_size


def test_compose_resize_sets_the_size_the_model_sees() -> None:
    # Before: (64, 64) from the dataset, although Resize made every image 32 x 48.
    pipeline = tfm.Compose([tfm.RandomHorizontalFlip(), tfm.Resize((32, 48)), tfm.ColorJitter()])
    assert meta(Declared(CATS, 64, pipeline)) == (tuple(CATS), (32, 48))
    assert meta(Declared(CATS, None, tfm.RandomResizedCrop(40))) == (tuple(CATS), (40, 40))
    padded = Declared(CATS, (30, 33), tfm.Compose([tfm.PadToMultiple(16)]))
    assert meta(padded) == (tuple(CATS), (32, 48))
    assert meta(Declared(CATS, None, tfm.PadToMultiple(16))) == (tuple(CATS), None)


def test_concat_and_subset_are_read_through_and_must_agree() -> None:
    both = ConcatDataset([Declared(CATS, 32), Subset(Declared(CATS, (32, 32)), [0])])
    assert meta(Subset(both, [0, 3])) == (tuple(CATS), (32, 32))
    # Before: ConcatDataset has no .dataset, so the default names and no size were guessed.
    dogs = ConcatDataset([Declared(CATS, 32), Declared(["_background_", "dog"], 32)])
    assert read_data_facts(dogs).unreadable["classes"] == (
        "the parts of the dataset disagree on classes: part 0 has ('_background_', 'cat'), "
        "part 1 has ('_background_', 'dog')"
    )
    asked = r"cannot tell the classes .* on classes: .*dog'\); state it once with model.describe"
    with pytest.raises(ConfigError, match=asked + r"\(classes=\[...\]\)"):
        record_data_facts(UNet(3, 1, init_features=4, depth=2), dogs, need_size=False)
    stated = UNet(3, 1, init_features=4, depth=2).describe(classes=["_background_", "dog"])
    record_data_facts(stated, dogs, need_size=False)  # the model states it: nothing to ask
    with pytest.raises(ConfigError, match=r"states classes=\('_background_', 'cat'\) but the "
                       r"model records classes=\('_background_', 'dog'\)"):  # fmt: skip
        record_data_facts(stated, both, need_size=True)
    sizes = ConcatDataset([Declared(CATS, 32), Declared(CATS, 64)])
    assert read_data_facts(sizes).unreadable == {
        "image_size": "the parts of the dataset disagree on image_size: part 0 has (32, 32), "
        "part 1 has (64, 64)"
    }


def test_wrapper_transforms_apply_on_top_of_the_inner_dataset() -> None:
    assert meta(Wrapper(Declared(CATS, 64), tfm.Resize(16))) == (tuple(CATS), (16, 16))
    assert meta(Wrapper(Wrapper(Declared(CATS, 64)))) == (tuple(CATS), (64, 64))


def test_unknown_transform_is_reported_not_guessed() -> None:
    def my_crop(image: Any, mask: Any) -> Any:
        return image[:, :10, :10], mask[:10, :10]

    found = read_data_facts(Declared(CATS, 64, tfm.Compose([tfm.RandomHorizontalFlip(), my_crop])))
    assert (found.classes, found.image_size) == (tuple(CATS), None)
    assert found.unreadable == {
        "image_size": "the transforms of the dataset hold a function, whose effect on the size "
        "is unknown"
    }
    inner = read_data_facts(Subset(Declared(CATS, 64, my_crop), [0])).unreadable["image_size"]
    assert inner.startswith("the transforms of the dataset.dataset hold a function")


def test_normalisation_is_read_and_composed() -> None:
    one = Declared(CATS, None, tfm.Compose([tfm.Resize(8), tfm.Normalize([0.5] * 3, [0.25] * 3)]))
    assert read_data_facts(one).normalization == Preprocessing((0.5,) * 3, (0.25,) * 3)
    # ((x - 0.5) / 0.25 - 1) / 2 = (x - 0.75) / 0.5
    two = Declared(CATS, None, tfm.Compose([tfm.Normalize([0.5], [0.25]), tfm.Normalize([1], [2])]))
    assert read_data_facts(two).normalization == Preprocessing((0.75,), (0.5,))
    wrapped = Wrapper(one)
    wrapped.mean, wrapped.std = [0.1] * 3, [0.2] * 3  # type: ignore[attr-defined]
    assert read_data_facts(wrapped).normalization == Preprocessing((0.1,) * 3, (0.2,) * 3)


def test_bad_declared_size_and_defaults() -> None:
    with pytest.raises(ConfigError, match=r"the dataset.image_size must be an int or \(height"):
        meta(Declared(CATS, "big"))  # type: ignore[arg-type]
    assert read_data_facts(object()) == DataFacts()
