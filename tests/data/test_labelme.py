"""labelme reading: conformance with labelme's converter output and per-shape rules."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.data.labelme import LabelmeDataset, labelme_to_voc, read_labelme, read_labels
from catseg.data.voc import VOCSegmentationDataset
from catseg.errors import ConfigError, DataError, LabelmeError, MissingFileError

LABELS = ["__ignore__", "_background_", "cat", "dog"]


def write_doc(
    folder: Path,
    shapes: list[dict[str, Any]],
    *,
    size: tuple[int, int] = (10, 10),
    name: str = "sample",
    colour: tuple[int, int, int] = (10, 20, 30),
) -> Path:
    """Write ``name.png`` (size = (width, height)) and ``name.json`` pointing at it."""
    Image.new("RGB", size, colour).save(folder / f"{name}.png")
    doc = {"version": "5.0.0", "imagePath": f"{name}.png", "imageData": None, "shapes": shapes}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def shape(
    kind: str | None, points: Sequence[Sequence[float]], label: str = "cat"
) -> dict[str, Any]:
    return {"label": label, "points": points, "shape_type": kind, "group_id": None, "flags": {}}


def disc(size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Pixels whose centres lie within radius + 0.5 of the centre (hand rule for Pillow discs)."""
    yy, xx = np.mgrid[0:size, 0:size]
    inside: np.ndarray = (xx - cx) ** 2 + (yy - cy) ** 2 < (radius + 0.5) ** 2
    return inside.astype(np.uint8)


# --- conformance with labelme's own output --------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "allowed"), [("2011_000003", 0), ("2011_000006", 2), ("2011_000025", 0)]
)
def test_matches_labelme_reference(shared_data: Path, stem: str, allowed: int) -> None:
    root = shared_data / "labelme-semantic-example"
    image, mask = read_labelme(root / "data_annotated" / f"{stem}.json", root / "labels.txt")
    reference = np.load(root / "data_dataset_voc" / "SegmentationClassNpy" / f"{stem}.npy")
    reference = np.where(reference == -1, 255, reference).astype(np.uint8)
    assert mask.shape == reference.shape
    assert image.shape == (*reference.shape, 3)
    assert int((mask != reference).sum()) <= allowed
    with Image.open(root / "data_dataset_voc" / "SegmentationClass" / f"{stem}.png") as file:
        png = np.array(file)
    assert set(np.unique(mask).tolist()) == set(np.unique(png).tolist())


def test_conformance_exact_on_two_files(shared_data: Path) -> None:
    root = shared_data / "labelme-semantic-example"
    exact = 0
    for path in sorted((root / "data_annotated").glob("*.json")):
        _, mask = read_labelme(path, root / "labels.txt")
        reference = np.load(root / "data_dataset_voc" / "SegmentationClassNpy" / f"{path.stem}.npy")
        exact += int(np.array_equal(mask, np.where(reference == -1, 255, reference)))
    assert exact >= 2


# --- one hand-made JSON per shape type -------------------------------------------------------


def test_polygon_fills_with_outline(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("polygon", [[1, 1], [5, 1], [1, 5]])], size=(8, 8))
    _, mask = read_labelme(path, LABELS)
    yy, xx = np.mgrid[0:8, 0:8]
    expected = ((xx >= 1) & (yy >= 1) & (xx + yy <= 6)).astype(np.uint8)
    np.testing.assert_array_equal(mask, expected)


def test_missing_or_null_shape_type_is_polygon(tmp_path: Path) -> None:
    square = [[1, 1], [3, 1], [3, 3], [1, 3]]
    without = {"label": "cat", "points": square}
    path = write_doc(tmp_path, [without, shape(None, [[5, 5], [7, 5], [7, 7], [5, 7]])])
    _, mask = read_labelme(path, LABELS)
    assert mask[1:4, 1:4].tolist() == [[1] * 3] * 3
    assert mask[5:8, 5:8].tolist() == [[1] * 3] * 3
    assert int(mask.sum()) == 18


def test_fractional_polygon_points_are_truncated_by_pillow(tmp_path: Path) -> None:
    points = [[0.4, 0.4], [3.6, 0.4], [3.6, 3.6], [0.4, 3.6]]
    _, mask = read_labelme(write_doc(tmp_path, [shape("polygon", points)], size=(6, 6)), LABELS)
    expected = np.zeros((6, 6), np.uint8)
    expected[0:4, 0:4] = 1
    np.testing.assert_array_equal(mask, expected)


def test_rectangle_corners_any_order_inclusive(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("rectangle", [[4, 3], [1, 1]])])
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((10, 10), np.uint8)
    expected[1:4, 1:5] = 1  # rows 1..3, columns 1..4 inclusive
    np.testing.assert_array_equal(mask, expected)


def test_rectangle_fractional_corners(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("rectangle", [[1.2, 0.8], [3.7, 2.2]])], size=(6, 6))
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((6, 6), np.uint8)
    expected[0:3, 1:4] = 1
    np.testing.assert_array_equal(mask, expected)


def test_circle_radius_is_distance_to_rim_point(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("circle", [[5, 5], [5, 8]])], size=(11, 11))
    _, mask = read_labelme(path, LABELS)
    np.testing.assert_array_equal(mask, disc(11, 5, 5, 3))
    assert int(mask.sum()) == 37


def test_point_is_disc_of_radius_five(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("point", [[5, 5]])], size=(12, 12))
    _, mask = read_labelme(path, LABELS)
    np.testing.assert_array_equal(mask, disc(12, 5, 5, 5))
    assert mask[5, 0:11].tolist() == [1] * 11  # about 11 px across


def test_point_clipped_at_image_border(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("point", [[0, 0]])], size=(12, 12))
    _, mask = read_labelme(path, LABELS)
    np.testing.assert_array_equal(mask, disc(12, 0, 0, 5))


def test_line_is_ten_pixels_wide(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("line", [[2, 10], [17, 10]])], size=(20, 20))
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((20, 20), np.uint8)
    expected[6:16, 2:18] = 1  # rows y-4..y+5, columns x1..x2
    np.testing.assert_array_equal(mask, expected)


def test_linestrip_rounded_joint_and_clipping(tmp_path: Path) -> None:
    points = [[2, 2], [15, 2], [15, 15]]
    path = write_doc(tmp_path, [shape("linestrip", points)], size=(22, 22))
    _, mask = read_labelme(path, LABELS)
    assert mask[0:8, 2:16].all()  # horizontal stroke rows -2..7, clipped at row 0
    assert mask[2:16, 11:21].all()  # vertical stroke columns 11..20
    assert not mask[8:, :10].any()
    assert not mask[17:, :].any()
    assert mask[0, 18] == 1  # the rounded joint fills the outer corner's arc ...
    assert mask[0, 20] == 0  # ... but not the square corner itself


def _bitmap_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(bool)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _mask_shape(points: list[list[float]], bitmap: np.ndarray) -> dict[str, Any]:
    item = shape("mask", points)
    item["mask"] = _bitmap_b64(bitmap)
    return item


def test_mask_integer_corners_crop_bitmap(tmp_path: Path) -> None:
    bitmap = np.ones((4, 4), bool)
    bitmap[0, 0] = False
    path = write_doc(tmp_path, [_mask_shape([[1, 1], [3, 2]], bitmap)], size=(8, 8))
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((8, 8), np.uint8)
    expected[1:3, 1:4] = 1  # (y2 - y1 + 1) x (x2 - x1 + 1) = 2 x 3 patch
    expected[1, 1] = 0
    np.testing.assert_array_equal(mask, expected)


def test_mask_fractional_corners_use_whole_bitmap(tmp_path: Path) -> None:
    bitmap = np.ones((4, 4), bool)
    path = write_doc(tmp_path, [_mask_shape([[1.4, 1.6], [3.2, 2.5]], bitmap)], size=(8, 8))
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((8, 8), np.uint8)
    expected[2:6, 1:5] = 1  # top-left at (round(1.4), round(1.6)) = (1, 2)
    np.testing.assert_array_equal(mask, expected)


def test_mask_is_clipped_to_image(tmp_path: Path) -> None:
    bitmap = np.ones((4, 4), bool)
    path = write_doc(tmp_path, [_mask_shape([[6, 6], [9, 9]], bitmap)], size=(8, 8))
    _, mask = read_labelme(path, LABELS)
    expected = np.zeros((8, 8), np.uint8)
    expected[6:8, 6:8] = 1
    np.testing.assert_array_equal(mask, expected)


def test_later_shapes_win_and_ignore_is_255(tmp_path: Path) -> None:
    shapes = [
        shape("rectangle", [[0, 0], [5, 5]], "dog"),
        shape("rectangle", [[3, 3], [7, 7]], "cat"),
        shape("rectangle", [[6, 6], [9, 9]], "__ignore__"),
        shape("rectangle", [[0, 0], [1, 1]], "_background_"),
    ]
    _, mask = read_labelme(write_doc(tmp_path, shapes), LABELS)
    assert mask[2, 2] == 2
    assert mask[4, 4] == 1
    assert mask[7, 7] == 255
    assert mask[9, 9] == 255
    assert mask[0, 0] == 0
    assert mask[5, 2] == 2
    assert mask[3, 6] == 1
    assert sorted(np.unique(mask).tolist()) == [0, 1, 2, 255]


# --- images: imageData first, Windows paths -----------------------------------------------


def test_image_data_preferred_over_image_path(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [], size=(3, 2), colour=(1, 2, 3))
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 100, 50)).save(buffer, format="PNG")
    doc = json.loads(path.read_text())
    doc["imageData"] = base64.b64encode(buffer.getvalue()).decode()
    path.write_text(json.dumps(doc))
    image, mask = read_labelme(path, LABELS)
    assert image[0, 0].tolist() == [200, 100, 50]
    assert mask.shape == (2, 3)


def test_windows_separators_in_image_path(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (4, 3), (7, 8, 9)).save(tmp_path / "imgs" / "x.png")
    doc: dict[str, Any] = {"imagePath": "imgs\\x.png", "imageData": None, "shapes": []}
    (tmp_path / "x.json").write_text(json.dumps(doc))
    image, _ = read_labelme(tmp_path / "x.json", LABELS)
    assert image.shape == (3, 4, 3)
    assert image[0, 0].tolist() == [7, 8, 9]


def test_labels_from_file_and_list(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\ncat\n\n")
    assert read_labels(tmp_path / "labels.txt") == ["_background_", "cat"]
    assert read_labels(["_background_", "cat"]) == ["_background_", "cat"]


# --- errors -----------------------------------------------------------------------------


def test_unknown_label_names_label_and_file(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("point", [[1, 1]], "horse")])
    with pytest.raises(LabelmeError, match=r"sample\.json.*'horse'"):
        read_labelme(path, LABELS)


@pytest.mark.parametrize(
    ("kind", "points", "pattern"),
    [
        ("polygon", [[0, 0], [1, 1]], r"shape 0 \(polygon\) has 2 point\(s\).*at least 3"),
        ("rectangle", [[0, 0]], r"shape 0 \(rectangle\) has 1 point\(s\).*exactly 2"),
        ("circle", [[0, 0], [1, 1], [2, 2]], r"shape 0 \(circle\).*exactly 2"),
        ("point", [[0, 0], [1, 1]], r"shape 0 \(point\).*exactly 1"),
        ("polygon", [[0, 0], [1], [2, 2]], r"shape 0 \(polygon\) has malformed points"),
        ("hexagon", [[0, 0]], r"shape 0 has unknown shape_type 'hexagon'"),
    ],
)
def test_bad_shapes_name_index_and_file(
    tmp_path: Path, kind: str, points: list[list[float]], pattern: str
) -> None:
    path = write_doc(tmp_path, [shape(kind, points)])
    with pytest.raises(LabelmeError, match=pattern):
        read_labelme(path, LABELS)


def test_missing_image_reference(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"imageData": None, "shapes": []}))
    with pytest.raises(LabelmeError, match="neither imageData nor imagePath"):
        read_labelme(tmp_path / "a.json", LABELS)
    (tmp_path / "b.json").write_text(json.dumps({"imagePath": "gone.png", "shapes": []}))
    with pytest.raises(MissingFileError, match=r"gone\.png"):
        read_labelme(tmp_path / "b.json", LABELS)


def test_bad_json_and_labels(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LabelmeError, match=r"bad\.json is not valid JSON"):
        read_labelme(tmp_path / "bad.json", LABELS)
    with pytest.raises(ConfigError, match="_background_"):
        read_labels(["cat", "_background_"])
    with pytest.raises(ConfigError, match=r"repeats label\(s\) \['cat'\]"):
        read_labels(["_background_", "cat", "cat"])
    with pytest.raises(ConfigError, match="'__ignore__' may only be the first entry"):
        read_labels(["_background_", "__ignore__"])


# --- conversion and dataset --------------------------------------------------------------


def test_labelme_to_voc_round_trip(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "labelme-semantic-example"
    dst = labelme_to_voc(
        root / "data_annotated", tmp_path / "voc", root / "labels.txt", val_fraction=0.34
    )
    split_dir = dst / "ImageSets" / "Segmentation"
    train = split_dir.joinpath("train.txt").read_text().split()
    val = split_dir.joinpath("val.txt").read_text().split()
    assert len(val) == 1
    assert len(train) == 2
    assert not set(train) & set(val)
    assert split_dir.joinpath("trainval.txt").read_text().split() == sorted(train + val)
    names = dst.joinpath("class_names.txt").read_text().splitlines()
    assert names[0] == "_background_"
    assert names[8] == "cat"
    assert len(names) == 21
    dataset = VOCSegmentationDataset(dst, "trainval")
    assert dataset.class_names == names
    for index, stem in enumerate(dataset.ids):
        _, expected = read_labelme(root / "data_annotated" / f"{stem}.json", root / "labels.txt")
        image, mask = dataset[index]
        assert torch.equal(mask, torch.from_numpy(expected.astype(np.int64)))
        assert tuple(image.shape[1:]) == expected.shape
    with Image.open(dst / "SegmentationClassPNG" / f"{dataset.ids[0]}.png") as png:
        assert png.mode == "P"


def test_labelme_to_voc_refuses_non_empty_destination(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_doc(src, [shape("point", [[2, 2]])])
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty"):
        labelme_to_voc(src, dst, LABELS)
    assert (dst / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]


def test_labelme_to_voc_leaves_nothing_on_failure(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_doc(src, [shape("point", [[2, 2]])], name="a")
    write_doc(src, [shape("point", [[2, 2]], "horse")], name="b")
    with pytest.raises(LabelmeError, match="horse"):
        labelme_to_voc(src, tmp_path / "out", LABELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_labelme_dataset_matches_reader(tmp_path: Path) -> None:
    write_doc(tmp_path, [shape("rectangle", [[0, 0], [3, 3]], "dog")], name="a", size=(8, 6))
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    dataset = LabelmeDataset(tmp_path, LABELS, image_dtype="uint8")
    assert len(dataset) == 1
    assert dataset.class_names == ["_background_", "cat", "dog"]
    image, mask = dataset[0]
    assert image.dtype == torch.uint8
    assert image[:, 0, 0].tolist() == [10, 20, 30]
    assert mask.dtype == torch.int64
    assert int(mask.sum()) == 2 * 16
    narrow = LabelmeDataset(tmp_path, LABELS, mask_dtype="uint8")[0][1]
    assert narrow.dtype == torch.uint8
    assert torch.equal(narrow.long(), mask)
    with pytest.raises(IndexError, match="out of range"):
        dataset[1]


# --- hostile files --------------------------------------------------------------------------


def test_image_path_outside_the_folder_is_refused_unless_opted_in(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (4, 3), (5, 6, 7)).save(tmp_path / "images" / "a.png")
    doc = {"imagePath": "../images/a.png", "imageData": None, "shapes": []}
    json_path = tmp_path / "labels" / "a.json"
    json_path.write_text(json.dumps(doc))
    with pytest.raises(LabelmeError, match=r"a\.json: imagePath '\.\./images/a\.png' resolves"):
        read_labelme(json_path, LABELS)
    image, _ = read_labelme(json_path, LABELS, image_root=tmp_path)
    assert image.shape == (3, 4, 3)
    assert image[0, 0].tolist() == [5, 6, 7]
    with pytest.raises(LabelmeError, match="outside"):
        labelme_to_voc(tmp_path / "labels", tmp_path / "out", LABELS)
    assert not (tmp_path / "out").exists()
    out = labelme_to_voc(tmp_path / "labels", tmp_path / "out", LABELS, image_root=tmp_path)
    assert (out / "JPEGImages" / "a.jpg").is_file()
    with pytest.raises(LabelmeError, match="outside"):
        LabelmeDataset(tmp_path / "labels", LABELS)[0]
    assert LabelmeDataset(tmp_path / "labels", LABELS, image_root=tmp_path)[0][1].shape == (3, 4)


def test_absolute_and_symlinked_image_paths_are_confined(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "abs.json").write_text(json.dumps({"imagePath": str(secret), "shapes": []}))
    with pytest.raises(LabelmeError, match=r"abs\.json: imagePath .* outside"):
        read_labelme(folder / "abs.json", LABELS)
    (folder / "link.png").symlink_to(secret)
    (folder / "link.json").write_text(json.dumps({"imagePath": "link.png", "shapes": []}))
    with pytest.raises(LabelmeError, match=r"link\.json: imagePath 'link\.png' resolves .*outside"):
        read_labelme(folder / "link.json", LABELS)


def test_ids_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    write_doc(tmp_path, [], name="cat")
    (tmp_path / "cat.JSON").write_text((tmp_path / "cat.json").read_text())
    write_doc(tmp_path, [], name="Cat")
    with pytest.raises(DataError, match=r"Cat\.json and .*cat\.JSON give ids that differ only"):
        labelme_to_voc(tmp_path, tmp_path.parent / "voc-case", LABELS)


@pytest.mark.parametrize(
    ("shapes", "pattern"),
    [
        ([shape("polygon", [[0, 0], [1e308, 0], [0, 1e308]])], r"points\[1\]\[0\] = 1e\+308 lies"),
        ([shape("rectangle", [[0, 0], [-2e5, 3]])], r"points\[1\]\[0\] = -200000\.0 lies"),
        ([shape("circle", [[5, 5], [5, 1e6]])], r"shape 0 \(circle\): points\[1\]\[1\]"),
        ([shape("polygon", [[0, 0], [10**400, 0], [0, 1]])], r"integer of 1329 bits"),
        ([shape("polygon", [[True, 0], [1, 0], [0, 1]])], r"points\[0\]\[0\] must be a JSON"),
        ([shape("polygon", [["1", 0], [1, 0], [0, 1]])], r"must be a JSON number, got '1'"),
        ([{"label": ["cat"], "points": [[0, 0], [1, 0], [0, 1]]}], r"a label must be a string"),
        ([{"label": "cat", "points": [[0, 0]], "shape_type": ["point"]}], r"unknown shape_type"),
        ({"cat": 1}, r"shapes must be a list, got dict"),
    ],
    ids=["1e308", "far-outside", "huge-circle", "bigint", "bool", "string", "label-list",
         "type-list", "shapes-dict"],
)  # fmt: skip
def test_extreme_numbers_and_wrong_types_name_file_and_field(
    tmp_path: Path, shapes: Any, pattern: str
) -> None:
    path = write_doc(tmp_path, [])
    doc = json.loads(path.read_text())
    doc["shapes"] = shapes
    path.write_text(json.dumps(doc))
    with pytest.raises(LabelmeError, match=rf"sample\.json.*{pattern}"):
        read_labelme(path, LABELS)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[" * 100_000 + "]" * 100_000, r"deep\.json is nested too deeply"),
        ('{"shapes": [], "imagePath": 5}', r"deep\.json: imagePath must be a string, got 5$"),
        ('{"shapes": [], "imageData": [1]}', r"imageData must be a base64 string or null"),
        ('{"shapes": [[0, ' + "9" * 5000 + "]]}", r"deep\.json is not valid JSON"),
        ("[1, 2]", r"deep\.json is not a labelme file .*got a JSON list"),
        # long imagePath names: tests/reliability/test_catalogue_data.py
        ('{"shapes": [], "imagePath": [' + "1, " * 9999 + "1]}",
         r"imagePath must be a string, got \[1, 1, 1, 1, \.\.\.\]$"),
    ],
    ids=["nesting", "imagePath-int", "imageData-list", "5000-digit-int", "top-level-list",
         "imagePath-long-list"],
)  # fmt: skip
def test_hostile_documents(tmp_path: Path, text: str, pattern: str) -> None:
    (tmp_path / "deep.json").write_text(text)
    with pytest.raises(LabelmeError, match=pattern) as exc:
        read_labelme(tmp_path / "deep.json", LABELS)
    assert len(str(exc.value)) < 300 + 2 * len(str(tmp_path))  # the message is bounded


def test_points_within_the_margin_still_draw_like_labelme(tmp_path: Path) -> None:
    path = write_doc(tmp_path, [shape("rectangle", [[-99_000, -5], [3, 99_000]])])
    _, mask = read_labelme(path, LABELS)
    assert mask[:, :4].tolist() == [[1] * 4] * 10
    assert int(mask[:, 4:].sum()) == 0
