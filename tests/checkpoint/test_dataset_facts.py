"""read_dataset_facts reads the truth through wrappers and transforms, or refuses.

It is what ``fit`` records as the model's classes and image size.
"""

from __future__ import annotations

from typing import Any

import pytest
from torch.utils.data import ConcatDataset, Dataset, Subset

from catseg.checkpoint._dataset import DatasetFacts, read_dataset_facts
from catseg.data import transforms as tfm
from catseg.errors import ConfigError


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
    found = read_dataset_facts(dataset)
    return found.class_names, found.image_size


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
    with pytest.raises(ConfigError, match=r"parts of the dataset disagree on class_names: .*dog"):
        meta(dogs)
    sizes = ConcatDataset([Declared(CATS, 32), Declared(CATS, 64)])
    with pytest.raises(ConfigError, match=r"disagree on image_size: part 0 has \(32, 32\), part 1"):
        meta(sizes)


def test_wrapper_transforms_apply_on_top_of_the_inner_dataset() -> None:
    assert meta(Wrapper(Declared(CATS, 64), tfm.Resize(16))) == (tuple(CATS), (16, 16))
    assert meta(Wrapper(Wrapper(Declared(CATS, 64)))) == (tuple(CATS), (64, 64))


def test_unknown_transform_is_refused_not_guessed() -> None:
    def my_crop(image: Any, mask: Any) -> Any:
        return image[:, :10, :10], mask[:10, :10]

    with pytest.raises(
        ConfigError,
        match=r"transforms of the dataset hold a function, whose effect on the size is unknown; ",
    ):
        meta(Declared(CATS, 64, tfm.Compose([tfm.RandomHorizontalFlip(), my_crop])))
    with pytest.raises(ConfigError, match=r"transforms of the dataset.dataset hold a function"):
        meta(Subset(Declared(CATS, 64, my_crop), [0]))


def test_bad_declared_size_and_defaults() -> None:
    with pytest.raises(
        ConfigError, match=r"the dataset.image_size is 'big', not \(height, width\)"
    ):
        meta(Declared(CATS, "big"))  # type: ignore[arg-type]
    assert read_dataset_facts(object()) == DatasetFacts(None, None)  # the dataset says nothing
