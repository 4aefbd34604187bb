"""labelme ``mode="multilabel"``: overlapping shapes kept as one layer per label."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.data import LabelmeDataset, read_labelme
from catseg.data._samples import resize_sample
from catseg.errors import ConfigError, LabelmeError

LABELS = ["__ignore__", "_background_", "cat", "dog"]


def write_doc(folder: Path, shapes: list[dict[str, Any]], size: tuple[int, int] = (10, 10)) -> Path:
    """Write ``a.png`` (size = (width, height)) and ``a.json`` pointing at it."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(folder / "a.png")
    doc = {"version": "5.0.0", "imagePath": "a.png", "imageData": None, "shapes": shapes}
    (folder / "a.json").write_text(json.dumps(doc))
    return folder / "a.json"


def square(label: str, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    points = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return {"label": label, "points": points, "shape_type": "polygon"}


def layers_of(path: Path, labels: Any = LABELS) -> np.ndarray:
    image, layers = read_labelme(path, labels, mode="multilabel")
    assert image.shape[:2] == layers.shape[1:]
    assert layers.dtype == np.uint8
    return layers


# --- hand-made overlaps -----------------------------------------------------------------------


def test_two_overlapping_polygons_stay_in_both_layers(tmp_path: Path) -> None:
    # cat: columns 1..5 x rows 1..5 (25 px, outline included); dog: columns 3..8 x rows
    # 3..7 (30 px); they share columns 3..5 x rows 3..5 (9 px).
    path = write_doc(tmp_path, [square("cat", 1, 1, 5, 5), square("dog", 3, 3, 8, 7)])
    layers = layers_of(path)
    assert layers.shape == (2, 10, 10)
    cat, dog = layers
    assert int(cat.sum()) == 25
    assert int(dog.sum()) == 30
    assert int(((cat == 1) & (dog == 1)).sum()) == 9
    expected_cat = np.zeros((10, 10), np.uint8)
    expected_cat[1:6, 1:6] = 1
    expected_dog = np.zeros((10, 10), np.uint8)
    expected_dog[3:8, 3:9] = 1
    np.testing.assert_array_equal(cat, expected_cat)
    np.testing.assert_array_equal(dog, expected_dog)
    _, single = read_labelme(path, LABELS)  # z-order: dog painted over 9 cat pixels
    assert int((single == 1).sum()) == 25 - 9
    assert int((single == 2).sum()) == 30


def test_same_label_shapes_overlapping_count_once(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [square("cat", 0, 0, 4, 4), square("cat", 2, 2, 6, 6)])
    cat, dog = layers_of(path)
    assert int(cat.sum()) == 25 + 25 - 9
    assert int(dog.sum()) == 0


def test_ignore_and_background_shapes_apply_to_every_layer_in_json_order(tmp_path: Path) -> None:
    shapes = [
        square("cat", 0, 0, 3, 0),  # row 0, columns 0..3
        square("__ignore__", 2, 0, 5, 0),  # covers cat columns 2..3 -> 255 in both layers
        square("dog", 5, 0, 7, 0),  # drawn after the ignore: 1 at column 5
        square("_background_", 7, 0, 8, 0),  # erases dog at column 7, zero elsewhere
    ]
    cat, dog = layers_of(write_doc(tmp_path, shapes, size=(10, 1)))
    assert cat[0].tolist() == [1, 1, 255, 255, 255, 255, 0, 0, 0, 0]
    assert dog[0].tolist() == [0, 0, 255, 255, 255, 1, 1, 0, 0, 0]
    _, single = read_labelme(tmp_path / "a.json", LABELS)
    assert single[0].tolist() == [1, 1, 255, 255, 255, 2, 2, 0, 0, 0]


def _mask_shape(label: str) -> dict[str, Any]:
    bitmap = np.array([[1, 0], [1, 1]], np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(bitmap).save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"label": label, "points": [[1, 1], [2, 2]], "shape_type": "mask", "mask": data}


def test_every_shape_type_with_one_label_equals_the_binary_map(tmp_path: Path) -> None:
    shapes = [
        {"label": "cat", "points": [[1, 1], [6, 4]], "shape_type": "rectangle"},
        {"label": "cat", "points": [[14, 10], [14, 14]], "shape_type": "circle"},
        {"label": "__ignore__", "points": [[3, 2], [9, 9]], "shape_type": "line"},
        {"label": "cat", "points": [[0, 18], [10, 12], [19, 19]], "shape_type": "linestrip"},
        {"label": "_background_", "points": [[15, 3]], "shape_type": "point"},
        {"label": "cat", "points": [[16, 2]], "shape_type": "point"},
        _mask_shape("cat"),
        _mask_shape("__ignore__") | {"points": [[8, 8], [9, 9]]},
    ]
    path = write_doc(tmp_path, shapes, size=(20, 20))
    labels = ["__ignore__", "_background_", "cat"]
    _, binary = read_labelme(path, labels)
    layers = layers_of(path, labels)
    assert layers.shape == (1, 20, 20)
    np.testing.assert_array_equal(layers[0], binary)
    assert {0, 1, 255} == set(np.unique(binary).tolist())


def test_mask_bitmap_paints_only_its_label_layer(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [square("cat", 0, 0, 3, 3), _mask_shape("dog")], size=(4, 4))
    cat, dog = layers_of(path)
    assert int(cat.sum()) == 16
    assert dog.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


# --- the shared labelme examples, against the z-ordered reader -------------------------------


def _only(doc: dict[str, Any], label: str, folder: Path) -> dict[str, Any]:
    keep = {label, "__ignore__", "_background_"}
    shapes = [s for s in doc["shapes"] if s["label"] in keep]
    return doc | {"shapes": shapes, "imagePath": str(folder / doc["imagePath"])}


@pytest.mark.parametrize("folder", ["labelme-semantic-example", "labelme-instance-example"])
def test_shared_examples_layers_against_the_single_map(
    shared_data: Path, tmp_path: Path, folder: str
) -> None:
    root = shared_data / folder
    labels = root / "labels.txt"
    names = [n for n in labels.read_text().split("\n")[2:] if n]
    covered_later = 0
    for path in sorted((root / "data_annotated").glob("*.json")):
        _, single = read_labelme(path, labels)
        layers = layers_of(path, labels)
        assert layers.shape == (len(names), *single.shape)
        # background and ignore mean the same in both modes
        np.testing.assert_array_equal(single == 255, (layers == 255).all(axis=0))
        np.testing.assert_array_equal(single == 0, (layers == 0).all(axis=0))
        doc = json.loads(path.read_text())
        for k, name in enumerate(names):
            # reference: the z-ordered reader on the shapes of this label alone
            only = tmp_path / f"{path.stem}-{k}.json"
            only.write_text(json.dumps(_only(doc, name, path.parent)))
            _, alone = read_labelme(only, labels, image_root=root)
            expected = np.where(alone == k + 1, 1, np.where(alone == 255, 255, 0))
            np.testing.assert_array_equal(layers[k], expected)
            # layer k is the single map's class k+1, plus pixels a later shape of
            # another foreground label painted over
            assert ((single == k + 1) <= (layers[k] == 1)).all()
            extra = (layers[k] == 1) & (single != k + 1)
            other = single[extra]
            assert ((other >= 1) & (other <= len(names))).all()
            assert (layers[(other.astype(np.int64) - 1, *np.nonzero(extra))] == 1).all()
            covered_later += int(extra.sum())
    assert covered_later > 0  # the examples do hold overlaps that z-order hides


def test_shared_example_overlap_count(shared_data: Path) -> None:
    root = shared_data / "labelme-instance-example"
    labels = root / "labels.txt"
    path = root / "data_annotated" / "2011_000006.json"
    layers = layers_of(path, labels)
    _, single = read_labelme(path, labels)
    names = [n for n in labels.read_text().split("\n")[2:] if n]
    person, sofa = names.index("person"), names.index("sofa")
    both = int(((layers[person] == 1) & (layers[sofa] == 1)).sum())
    hidden = int(((layers[sofa] == 1) & (single == person + 1)).sum())
    hidden += int(((layers[person] == 1) & (single == sofa + 1)).sum())
    assert both == hidden > 0


# --- dataset --------------------------------------------------------------------------------


def test_dataset_multilabel_items(tmp_path: Path) -> None:
    write_doc(tmp_path / "d", [square("cat", 1, 1, 5, 5), square("dog", 3, 3, 8, 7)])
    data = LabelmeDataset(tmp_path / "d", LABELS, mode="multilabel")
    assert data.mode == "multilabel"
    assert data.class_names == ["cat", "dog"]
    image, mask = data[0]
    assert mask.dtype == torch.uint8
    assert tuple(mask.shape) == (2, 10, 10)
    assert mask.sum(dim=(1, 2)).tolist() == [25, 30]
    assert tuple(image.shape) == (3, 10, 10)
    assert "mode='multilabel'" in repr(data)
    wide = LabelmeDataset(tmp_path / "d", LABELS, mode="multilabel", mask_dtype="int64")
    assert wide[-1][1].dtype == torch.int64
    assert torch.equal(wide[0][1], mask.long())
    single = LabelmeDataset(tmp_path / "d", LABELS)
    assert single.mode == "multiclass"
    assert single[0][1].dtype == torch.int64
    assert single.class_names == ["_background_", "cat", "dog"]


def test_dataset_multilabel_resize_is_nearest_per_layer(tmp_path: Path) -> None:
    write_doc(tmp_path / "d", [square("cat", 0, 0, 4, 9), square("dog", 3, 0, 9, 9)])
    data = LabelmeDataset(tmp_path / "d", LABELS, mode="multilabel", image_size=(5, 5))
    _, mask = data[0]
    full = torch.from_numpy(layers_of(tmp_path / "d" / "a.json"))
    assert tuple(mask.shape) == (2, 5, 5)
    assert torch.equal(mask, full[:, 1::2, 1::2])  # Pillow's nearest at 1/2: odd pixels


def test_resize_sample_layers_equal_per_layer_resizing() -> None:
    rng = np.random.default_rng(0)
    layers = rng.choice(np.array([0, 1, 255], np.uint8), size=(3, 7, 9))
    _, resized = resize_sample(Image.new("RGB", (9, 7)), layers, (4, 5))
    for k in range(3):
        _, one = resize_sample(Image.new("RGB", (9, 7)), layers[k], (4, 5))
        np.testing.assert_array_equal(resized[k], one)


def test_fit_reads_the_multilabel_mode(tmp_path: Path) -> None:
    from catseg.training._data import read_data_facts

    write_doc(tmp_path / "d", [square("cat", 1, 1, 5, 5)])
    layers = LabelmeDataset(tmp_path / "d", LABELS, mode="multilabel")
    assert read_data_facts(layers).mode == "multilabel"
    assert read_data_facts(LabelmeDataset(tmp_path / "d", LABELS)).mode != "multilabel"


# --- bad inputs -----------------------------------------------------------------------------


def test_unknown_label_names_label_and_file(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [square("cat", 0, 0, 2, 2), square("horse", 1, 1, 3, 3)])
    with pytest.raises(LabelmeError, match=r"a\.json: shape 1 has label 'horse', which is not"):
        read_labelme(path, LABELS, mode="multilabel")


@pytest.mark.parametrize("mode", ["layers", "binary", None, 1, True])
def test_unknown_mode_is_a_config_error(tmp_path: Path, mode: Any) -> None:
    path = write_doc(tmp_path, [])
    with pytest.raises(ConfigError, match=r"mode must be one of 'multiclass', 'multilabel'"):
        read_labelme(path, LABELS, mode=mode)
    with pytest.raises(ConfigError, match=r"mode must be one of"):
        LabelmeDataset(tmp_path, LABELS, mode=mode)


def test_no_label_besides_background_is_refused(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [])
    with pytest.raises(ConfigError, match=r"name no class besides '_background_'"):
        read_labelme(path, ["__ignore__", "_background_"], mode="multilabel")
    with pytest.raises(ConfigError, match=r"name no class besides '_background_'"):
        LabelmeDataset(tmp_path, ["_background_"], mode="multilabel")
    assert read_labelme(path, ["_background_"])[1].sum() == 0  # fine as one map


def test_bad_shape_in_multilabel_mode_names_the_field(tmp_path: Path) -> None:
    bad = {"label": "dog", "points": [[0, 0], ["x", 1]], "shape_type": "rectangle"}
    path = write_doc(tmp_path, [square("cat", 0, 0, 2, 2), bad])
    with pytest.raises(LabelmeError, match=r"shape 1 \(rectangle\): points\[1\]\[0\] must be"):
        read_labelme(path, LABELS, mode="multilabel")
