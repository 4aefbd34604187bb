"""Nothing the user owns is modified: tensors, arrays, images, models, files (issue #9).

Each case builds fresh user objects, snapshots them, makes the public call and checks
every object is exactly as before (values, dtype, shape, mode, EXIF, gradient flags).
NumPy inputs are also passed read-only, so an in-place write fails loudly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_builders import (
    EXIF_ORIENTATION,
    random_sample,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
    tree_snapshot,
    write_labelme,
    write_voc,
)

from catseg.data import VOCSegmentationDataset, labelme_to_voc, make_synthetic_voc, to_rgb
from catseg.data import transforms as tfm
from catseg.errors import DataError
from catseg.losses import DiceLoss, soft_dice
from catseg.metrics import MeanIoU, confusion_matrix, mean_iou
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.visualize import colorize, overlay


def _snapshot(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.detach().clone(), obj.requires_grad, obj.grad, obj.stride())
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy(), obj.flags.writeable)
    if isinstance(obj, Image.Image):
        return ("image", obj.mode, obj.size, obj.tobytes(), dict(obj.info), dict(obj.getexif()))
    if isinstance(obj, torch.nn.Module):
        return ("module", obj.training, copy.deepcopy(obj.state_dict()))
    if isinstance(obj, Path):
        return ("file", obj.read_bytes())
    raise TypeError(type(obj))


def _assert_same(before: Any, obj: Any) -> None:
    after = _snapshot(obj)
    assert before[0] == after[0]
    if before[0] == "tensor":
        assert torch.equal(before[1], after[1])
        assert before[1].dtype == after[1].dtype
        assert before[2:] == after[2:]
    elif before[0] == "array":
        assert np.array_equal(before[1], after[1])
        assert before[1].dtype == after[1].dtype
        assert before[2] == after[2]
    elif before[0] == "module":
        assert before[1] == after[1]
        assert before[2].keys() == after[2].keys()
        assert all(torch.equal(before[2][k], after[2][k]) for k in before[2])
    else:
        assert before == after


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _logits(c: int) -> torch.Tensor:
    return torch.randn(2, c, 5, 6, requires_grad=True)


def _target(c: int) -> torch.Tensor:
    target = torch.randint(0, max(c, 2), (2, 5, 6))
    target[:, 0] = 255
    return target


def _phone_image() -> Image.Image:
    image = Image.fromarray(random_sample(6, 9, 1)[0]).convert("RGBA")
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6
    image.info["exif"] = exif.tobytes()
    return image


def _tiny_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 2, init_features=4, depth=2)  # left in training mode on purpose


def _image_and_mask(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(3, 6, 7)
    if kind == "uint8":
        image = (image * 255).round().to(torch.uint8)
    mask = torch.randint(0, 3, (6, 7))
    mask[0, :3] = 255
    return image, mask


def _segmenter_call(**options: Any) -> Callable[..., Any]:
    def call(model: UNet, image: Any) -> Any:
        seg = Segmenter(model, classes=["a", "b"], precision="fp32", **options)
        return seg.predict(image, return_probabilities=True)

    return call


def _save_png(path: Path) -> Path:
    Image.fromarray(random_sample(7, 5, 3)[0]).save(path)
    return path


CASES: list[tuple[str, Callable[[Path], tuple[Any, ...]], Callable[..., Any]]] = [
    ("soft_dice-binary", lambda tmp: (_logits(1), _target(1)), soft_dice),
    (
        "DiceLoss-multiclass",
        lambda tmp: (_logits(3), _target(3)),
        lambda x, t: DiceLoss(mode="multiclass")(x, t),
    ),
    (
        "DiceLoss-float-target-with-void",
        lambda tmp: (_logits(1), _target(1).unsqueeze(1).float()),
        lambda x, t: DiceLoss()(x, t),
    ),
    ("mean_iou-scores", lambda tmp: (_logits(3), _target(3)), lambda x, t: mean_iou(x, t, 3)),
    (
        "MeanIoU-binary-scores",
        lambda tmp: (_logits(1), _target(1)),
        lambda x, t: MeanIoU(2).update(x, t),
    ),
    (
        "confusion_matrix-labels",
        lambda tmp: (_target(3).clamp(max=2), _target(3)),
        lambda p, t: confusion_matrix(p, t, 3),
    ),
    *[
        (
            f"transform-{name}-{kind}",
            lambda tmp, kind=kind: _image_and_mask(kind),
            transform,
        )
        for name, transform in [
            ("Resize", tfm.Resize((4, 9))),
            ("RandomResizedCrop", tfm.RandomResizedCrop(5, seed=0)),
            ("RandomHorizontalFlip", tfm.RandomHorizontalFlip(p=1.0)),
            ("RandomRotation", tfm.RandomRotation(20.0, seed=0)),
            ("PadToMultiple", tfm.PadToMultiple(4)),
            ("ColorJitter", tfm.ColorJitter(0.5, 0.5, 0.5, seed=0)),
            ("Compose", tfm.Compose([tfm.RandomHorizontalFlip(p=1.0), tfm.PadToMultiple(8)])),
        ]
        for kind in ("float", "uint8")
    ],
    (
        "transform-Normalize",
        lambda tmp: (torch.rand(3, 4, 4), torch.zeros(4, 4, dtype=torch.int64)),
        tfm.Normalize([0.5] * 3, [0.2] * 3),
    ),
    (
        "Segmenter.predict-float-tensor",
        lambda tmp: (_tiny_unet().describe(mean=(0.4,) * 3, std=(0.3,) * 3), torch.rand(3, 9, 11)),
        _segmenter_call(),
    ),
    (
        "Segmenter.predict-uint8-tensor-tta-tiled",
        lambda tmp: (_tiny_unet(), torch.randint(0, 256, (3, 20, 23), dtype=torch.uint8)),
        _segmenter_call(tta=True, tile=(8, 2)),
    ),
    (
        "Segmenter.predict-read-only-array",
        lambda tmp: (_tiny_unet(), _read_only(random_sample(8, 6, 2)[0])),
        _segmenter_call(image_size=(16, 16)),
    ),
    (
        "Segmenter.predict-RGBA-EXIF-PIL-image",
        lambda tmp: (_tiny_unet(), _phone_image()),
        _segmenter_call(),
    ),
    (
        "Segmenter.predict-file",
        lambda tmp: (_tiny_unet(), _save_png(tmp / "photo.png")),
        _segmenter_call(),
    ),
    (
        "Segmenter.predict-postprocess-sees-a-copy",
        lambda tmp: (_tiny_unet(), torch.rand(3, 5, 5)),
        _segmenter_call(postprocess=lambda probs: probs.mul_(1.0)),
    ),
    (
        "colorize-read-only-array",
        lambda tmp: (_read_only(random_sample(4, 5, 0, num_classes=21)[1]),),
        colorize,
    ),
    ("colorize-tensor", lambda tmp: (torch.randint(0, 21, (4, 5)),), colorize),
    (
        "overlay-array-and-tensor",
        lambda tmp: (_read_only(random_sample(4, 5, 0)[0]), torch.randint(0, 3, (4, 5))),
        lambda image, mask: overlay(image, mask, alpha=0.5),
    ),
    (
        "overlay-PIL-images",
        lambda tmp: (_phone_image().convert("RGB"), colorize(torch.zeros(6, 9, dtype=torch.int64))),
        overlay,
    ),
    ("to_rgb-RGBA-EXIF", lambda tmp: (_phone_image(),), to_rgb),
]


@pytest.mark.parametrize(("make", "call"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_public_call_leaves_its_inputs_unchanged(
    make: Callable[[Path], tuple[Any, ...]], call: Callable[..., Any], tmp_path: Path
) -> None:
    inputs = make(tmp_path)
    before = [_snapshot(obj) for obj in inputs]
    call(*inputs)
    for snapshot, obj in zip(before, inputs, strict=True):
        _assert_same(snapshot, obj)


@pytest.mark.parametrize("size", [(1, 1), (4, 5)], ids=["1x1", "4x5"])
@pytest.mark.parametrize("image_dtype", ["uint8", "float32"])
def test_in_place_user_transform_cannot_corrupt_the_dataset_cache(
    tmp_path: Path, size: tuple[int, int], image_dtype: str
) -> None:
    image, mask = random_sample(*size, seed=0)
    root = write_voc(tmp_path / "voc", {"x": (image, mask)})

    def vandal(img: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return img.zero_(), labels.fill_(7)  # a user transform that works in place

    dataset = VOCSegmentationDataset(
        root,
        cache=True,
        transforms=vandal,
        image_dtype=image_dtype,  # type: ignore[arg-type]
    )
    dataset[0]
    dataset.transforms = None
    got_image, got_mask = dataset[0]  # from the cache
    assert torch.equal(got_mask, torch.from_numpy(mask).long())
    expected = torch.from_numpy(image).permute(2, 0, 1)
    if image_dtype == "float32":
        expected = expected.float() / 255
    assert torch.equal(got_image, expected)


def test_labelme_to_voc_refuses_a_non_empty_destination_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    source = tmp_path / "labelme"
    write_labelme(source, [{"label": "cat", "points": [[1, 1], [4, 3]], "shape_type": "rectangle"}])
    destination = tmp_path / "dataset"
    destination.mkdir()
    (destination / ".keep").write_text("")  # even a hidden file makes it "not empty"
    (destination / "JPEGImages").mkdir()
    (destination / "JPEGImages" / "mine.jpg").write_bytes(b"user data")
    before = tree_snapshot(tmp_path)
    with pytest.raises(DataError, match=r"dataset exists and is not empty; refusing"):
        labelme_to_voc(source, destination, ["_background_", "cat"])
    assert tree_snapshot(tmp_path) == before  # no staging folder left, nothing deleted

    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    with pytest.raises(DataError, match=r"a-file exists and is not empty"):
        labelme_to_voc(source, blocker, ["_background_", "cat"])
    assert blocker.read_text() == "keep me"


def test_labelme_to_voc_leaves_its_source_folder_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "labelme"
    write_labelme(source, [{"label": "cat", "points": [[1, 1], [4, 3]], "shape_type": "rectangle"}])
    before = tree_snapshot(source)
    out = labelme_to_voc(source, tmp_path / "voc", ["_background_", "cat"])
    assert tree_snapshot(source) == before
    assert VOCSegmentationDataset(out)[0][1].sum() == 12  # the 4x3 rectangle is class 1


def test_make_synthetic_voc_refuses_a_non_empty_folder_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "JPEGImages" / "synth_0000.jpg").write_bytes(b"my own photo")
    before = tree_snapshot(tmp_path)
    with pytest.raises(DataError, match=r"data exists and is not an empty folder; refusing"):
        make_synthetic_voc(root, n=4, size=16)
    assert tree_snapshot(tmp_path) == before
