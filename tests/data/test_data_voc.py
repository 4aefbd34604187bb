"""VOCSegmentationDataset: layouts, decoding, class maps, errors, and the real cats-voc folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from catseg.data import read_mask
from catseg.data.synthetic import make_synthetic_voc
from catseg.data.transforms import RandomHorizontalFlip
from catseg.data.voc import VOCSegmentationDataset
from catseg.errors import ConfigError, DataError, IndexOutOfRangeError, MissingFileError

GREY_PALETTE = [v for v in range(256) for _ in range(3)]


def save_palette_mask(mask: np.ndarray, path: Path) -> None:
    png = Image.fromarray(mask.astype(np.uint8))
    png.putpalette(GREY_PALETTE)  # an "L" image with a palette becomes "P"
    png.save(path)


def make_voc(
    root: Path,
    masks: dict[str, np.ndarray],
    *,
    mask_dir: str = "SegmentationClassPNG",
    class_names: list[str] | None = None,
    splits: dict[str, list[str]] | None = None,
    extra_images: tuple[str, ...] = (),
) -> Path:
    """Write PNG images (pixel value = 10 * column) and palette masks by hand."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / mask_dir).mkdir(parents=True)
    for sample_id, mask in [*masks.items(), *((i, None) for i in extra_images)]:
        shape = mask.shape if mask is not None else (4, 4)
        columns = np.broadcast_to(np.arange(shape[1], dtype=np.uint8) * 10, shape)
        Image.fromarray(np.stack([columns] * 3, axis=2)).save(
            root / "JPEGImages" / f"{sample_id}.png"
        )
        if mask is not None:
            save_palette_mask(mask, root / mask_dir / f"{sample_id}.png")
    if class_names is not None:
        (root / "class_names.txt").write_text("\n".join(class_names))
    for name, ids in (splits or {}).items():
        split_dir = root / "ImageSets" / "Segmentation"
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_voc(tmp_path_factory.mktemp("synthetic") / "voc", n=8, size=32)


def test_items_equal_decoded_files(synthetic: Path) -> None:
    dataset = VOCSegmentationDataset(synthetic, "train")
    assert len(dataset) == 6
    image, mask = dataset[0]
    sample_id = dataset.ids[0]
    with Image.open(synthetic / "JPEGImages" / f"{sample_id}.jpg") as file:
        expected = torch.from_numpy(np.array(file)).permute(2, 0, 1).float() / 255
    assert image.dtype == torch.float32
    assert torch.equal(image, expected)
    assert mask.dtype == torch.int64
    expected_mask = read_mask(synthetic / "SegmentationClassPNG" / f"{sample_id}.png")
    assert torch.equal(mask, torch.from_numpy(expected_mask.astype(np.int64)))
    raw, _ = VOCSegmentationDataset(synthetic, "train", image_dtype="uint8")[0]
    assert raw.dtype == torch.uint8
    assert torch.equal(raw.float() / 255, image)


def test_image_size_resizes_image_and_mask(synthetic: Path) -> None:
    dataset = VOCSegmentationDataset(synthetic, "val", image_size=(16, 24))
    image, mask = dataset[1]
    assert tuple(image.shape) == (3, 16, 24)
    assert tuple(mask.shape) == (16, 24)
    full = read_mask(synthetic / "SegmentationClassPNG" / f"{dataset.ids[1]}.png")
    nearest = np.array(Image.fromarray(full).resize((24, 16), Image.Resampling.NEAREST))
    assert torch.equal(mask, torch.from_numpy(nearest.astype(np.int64)))
    assert dataset.image_size == (16, 24)


def test_repr_and_class_names(synthetic: Path) -> None:
    dataset = VOCSegmentationDataset(synthetic, "val")
    text = repr(dataset)
    assert str(synthetic) in text
    assert "split='val'" in text
    assert "len=2" in text
    assert dataset.class_names == ["_background_", "blob"]


def test_split_none_takes_images_with_masks_and_ignores_strays(tmp_path: Path) -> None:
    root = make_voc(
        tmp_path, {"a": np.zeros((4, 4)), "b": np.ones((4, 4))}, extra_images=("no_mask",)
    )
    for junk in (".DS_Store", "Thumbs.db", "a.json"):
        (root / "JPEGImages" / junk).write_bytes(b"junk")
        (root / "SegmentationClassPNG" / junk).write_bytes(b"junk")
    dataset = VOCSegmentationDataset(root)
    assert dataset.ids == ["a", "b"]
    assert dataset.class_names == []
    assert int(dataset[1][1].sum()) == 16


def test_vocdevkit_layout_and_segmentation_class_folder(tmp_path: Path) -> None:
    inner = tmp_path / "VOCdevkit" / "VOC2012"
    make_voc(inner, {"x": np.full((4, 4), 3)}, mask_dir="SegmentationClass", splits={"val": ["x"]})
    dataset = VOCSegmentationDataset(tmp_path, "val")
    assert dataset.root == inner
    assert dataset.mask_dir.name == "SegmentationClass"
    assert torch.unique(dataset[0][1]).tolist() == [3]


def test_classes_keeps_named_class_only(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 255]])
    root = make_voc(tmp_path, {"a": mask}, class_names=["_background_", "dog", "cat"])
    binary = VOCSegmentationDataset(root, classes=["cat"])
    assert binary.class_names == ["_background_", "cat"]
    assert binary[0][1].tolist() == [[0, 0], [1, 255]]
    swapped = VOCSegmentationDataset(root, classes=["_background_", "cat", "dog"])
    assert swapped[0][1].tolist() == [[0, 2], [1, 255]]
    with pytest.raises(ConfigError, match=r"unknown: \['horse'\]"):
        VOCSegmentationDataset(root, classes=["horse"])
    small = VOCSegmentationDataset(root, classes=["cat"], mask_dtype="uint8")[0][1]
    assert small.dtype == torch.uint8
    assert small.tolist() == [[0, 0], [1, 255]]


def test_uint8_masks_equal_int64_masks(synthetic: Path) -> None:
    wide = VOCSegmentationDataset(synthetic, "train", image_size=16)
    narrow = VOCSegmentationDataset(synthetic, "train", image_size=16, mask_dtype="uint8")
    for index in range(len(wide)):
        mask = narrow[index][1]
        assert mask.dtype == torch.uint8
        assert torch.equal(mask.long(), wide[index][1])


def test_classes_needs_class_names_file(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match=r"class_names\.txt.*missing"):
        VOCSegmentationDataset(root, classes=["cat"])


def test_mask_id_outside_class_names(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.array([[0, 7]])}, class_names=["_background_", "cat"])
    with pytest.raises(DataError, match=r"a\.png holds ids \[7\] outside class_names"):
        VOCSegmentationDataset(root)[0]


def test_missing_masks_listed(tmp_path: Path) -> None:
    ids = [f"id{i}" for i in range(7)]
    root = make_voc(tmp_path, {"ok": np.zeros((4, 4))}, extra_images=tuple(ids))
    make_voc(tmp_path / "unused", {}, splits={})
    split_dir = root / "ImageSets" / "Segmentation"
    split_dir.mkdir(parents=True)
    (split_dir / "train.txt").write_text("\n".join(["ok", *ids]))
    with pytest.raises(
        MissingFileError, match=r"7 id\(s\).*no mask.*id0, id1, id2, id3, id4 and 2 more"
    ):
        VOCSegmentationDataset(root, "train")
    skipping = VOCSegmentationDataset(root, "train", on_error="skip")
    assert skipping.ids == ["ok"]
    assert skipping.num_skipped == 7
    with pytest.raises(MissingFileError, match=r"available splits: \['train'\]"):
        VOCSegmentationDataset(root, "test")


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.zeros((4, 4))})
    save_palette_mask(np.zeros((3, 5)), root / "SegmentationClassPNG" / "a.png")
    with pytest.raises(
        DataError, match=r"JPEGImages/a\.png is 4x4 .*SegmentationClassPNG/a\.png is 5x3"
    ):
        VOCSegmentationDataset(root)[0]


def test_on_error_skip_returns_next_item(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.zeros((4, 4)), "b": np.ones((4, 4))})
    (root / "JPEGImages" / "a.png").write_bytes(b"")
    dataset = VOCSegmentationDataset(root, on_error="skip")
    _, mask = dataset[0]
    assert int(mask.sum()) == 16  # item "b"
    assert dataset.skipped_ids == ("a",)
    with pytest.raises(DataError, match=r"a\.png is empty"):
        VOCSegmentationDataset(root)[0]


def test_cache_keeps_decoded_items(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.ones((4, 4))})
    dataset = VOCSegmentationDataset(root, cache=True)
    first = dataset[0]
    (root / "JPEGImages" / "a.png").unlink()
    second = dataset[0]
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])


@pytest.mark.parametrize(
    ("names", "classes"),
    [
        (None, None),
        (["_background_", "dog", "cat"], None),
        (["_background_", "dog", "cat"], ["cat"]),
    ],
)
@pytest.mark.parametrize("mask_dtype", ["int64", "uint8"])
def test_editing_an_item_never_changes_the_cache(
    tmp_path: Path, names: list[str] | None, classes: list[str] | None, mask_dtype: str
) -> None:
    mask = np.array([[0, 1], [2, 255]])
    root = make_voc(tmp_path, {"a": mask}, class_names=names)
    dataset = VOCSegmentationDataset(root, classes=classes, cache=True, mask_dtype=mask_dtype)
    image, labels = dataset[0]
    expected = labels.tolist()
    image.fill_(0.5)
    labels.fill_(7)
    again_image, again_labels = dataset[0]
    assert again_labels.tolist() == expected
    assert not bool((again_image == 0.5).all())


def test_transforms_applied_last(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": np.array([[0, 1, 2, 3]] * 2)})
    dataset = VOCSegmentationDataset(root, transforms=RandomHorizontalFlip(p=1.0))
    image, mask = dataset[0]
    assert mask[0].tolist() == [3, 2, 1, 0]
    assert (image[0, 0] * 255).round().tolist() == [30.0, 20.0, 10.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"on_error": "ignore"}, "on_error must be one of 'raise', 'skip'; got 'ignore'"),
        (
            {"image_dtype": "float16"},
            "image_dtype must be one of 'float32', 'uint8'; got 'float16'",
        ),
        ({"mask_dtype": "int32"}, "mask_dtype must be one of 'int64', 'uint8'; got 'int32'"),
        ({"image_size": (0, 4)}, r"image_size .*got \(0, 4\)"),
        ({"image_size": 16.0}, r"image_size must be an int or \(height, width\) .*got 16\.0"),
        ({"cache": "no"}, r"cache must be True or False, got 'no'"),
        ({"split": 3}, r"split must be a split name \(str\) or None, got 3"),
    ],
)
def test_bad_arguments(synthetic: Path, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        VOCSegmentationDataset(synthetic, **kwargs)  # type: ignore[arg-type]


def test_missing_root_and_index(tmp_path: Path, synthetic: Path) -> None:
    with pytest.raises(MissingFileError, match="dataset root not found"):
        VOCSegmentationDataset(tmp_path / "nothing")
    dataset = VOCSegmentationDataset(synthetic)
    with pytest.raises(IndexOutOfRangeError, match="index 8 out of range") as info:
        dataset[8]
    assert isinstance(info.value, IndexError)
    # the sequence protocol still ends a plain ``for`` loop at the last item
    assert sum(1 for _ in dataset) == len(dataset) == 8


# --- the real data ------------------------------------------------------------------------


def test_cats_voc_splits_and_mask_values(cats_voc: Path) -> None:
    train = VOCSegmentationDataset(cats_voc, "train")
    val = VOCSegmentationDataset(cats_voc, "val")
    assert len(train) == 250
    assert len(val) == 44
    assert not set(train.ids) & set(val.ids)
    assert train.class_names == ["_background_", "cat"]
    values: set[int] = set()
    for path in sorted((cats_voc / "SegmentationClassPNG").glob("*.png")):
        values.update(np.unique(read_mask(path)).tolist())
    assert values == {0, 1, 255}
    image, mask = train[0]
    assert image.shape[1:] == mask.shape
    small_image, small_mask = VOCSegmentationDataset(cats_voc, "val", image_size=64)[0]
    assert tuple(small_image.shape) == (3, 64, 64)
    assert set(torch.unique(small_mask).tolist()) <= {0, 1, 255}


def test_exif_rotated_photo_matches_upright_mask(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {})
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255  # stored left half white: the top half once upright
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    photo.save(root / "JPEGImages" / "phone.jpg", exif=exif, quality=100)
    upright_mask = np.zeros((16, 8), np.uint8)  # drawn on the upright photo: 8 wide, 16 high
    upright_mask[:8] = 1
    save_palette_mask(upright_mask, root / "SegmentationClassPNG" / "phone.png")
    image, mask = VOCSegmentationDataset(root)[0]
    assert tuple(image.shape) == (3, 16, 8)
    assert float(image[:, :8].mean()) > 0.9
    assert float(image[:, 8:].mean()) < 0.1
    assert torch.equal(mask, torch.from_numpy(upright_mask.astype(np.int64)))


def test_works_in_a_dataloader_with_workers(synthetic: Path) -> None:
    dataset = VOCSegmentationDataset(synthetic, "train", image_size=16, image_dtype="uint8")
    loader = DataLoader(dataset, batch_size=3, num_workers=1)
    batches = list(loader)
    assert [tuple(images.shape) for images, _ in batches] == [(3, 3, 16, 16)] * 2
    assert torch.equal(batches[0][1][0], dataset[0][1])


def test_reads_labelme2voc_output(shared_data: Path) -> None:
    root = shared_data / "labelme-semantic-example" / "data_dataset_voc"
    dataset = VOCSegmentationDataset(root)  # no split files: every image with a mask
    assert dataset.mask_dir.name == "SegmentationClass"
    assert dataset.ids == ["2011_000003", "2011_000006", "2011_000025"]
    assert len(dataset.class_names) == 21
    for index, sample_id in enumerate(dataset.ids):
        reference = np.load(root / "SegmentationClassNpy" / f"{sample_id}.npy")
        expected = torch.from_numpy(np.where(reference == -1, 255, reference).astype(np.int64))
        assert torch.equal(dataset[index][1], expected)
