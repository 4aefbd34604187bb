"""From labelme annotations to a trained model: labelme JSON -> Pascal VOC -> fit -> overlay.

    python examples/labelme_workflow.py                 # the labelme semantic example
    python examples/labelme_workflow.py --src my_json_folder --labels my_labels.txt

The default input is ``../shared/data/labelme-semantic-example/data_annotated`` with its
``labels.txt`` (``__ignore__``, ``_background_`` and the 20 VOC classes). The folder is
converted once with :func:`catseg.data.labelme.labelme_to_voc` into ``<out>/voc`` (a
second run reuses it), then a small multiclass UNet trains for a few quick epochs and
segments one validation image. With only a handful of annotated photos this shows the
workflow, not a useful model: label more images for that.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from catseg.data import VOCSegmentationDataset
from catseg.data.labelme import labelme_to_voc
from catseg.data.transforms import RandomHorizontalFlip
from catseg.losses import DiceLoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import CheckpointOptions, RunOptions, fit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "data" / "labelme-semantic-example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=EXAMPLE / "data_annotated")
    parser.add_argument("--labels", type=Path, default=None, help="default: <src>/../labels.txt")
    parser.add_argument("--out", type=Path, default=Path("labelme-output"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny model on a few images: one thread is fastest

    # 1. labelme JSON -> VOC folder (JPEGImages, SegmentationClassPNG, splits, class names)
    voc = args.out / "voc"
    if voc.is_dir() and any(voc.iterdir()):
        print(f"reusing {voc}")
    else:
        labels = args.labels or args.src.parent / "labels.txt"
        labelme_to_voc(args.src, voc, labels, val_fraction=0.3, seed=0)
        print(f"converted {args.src} -> {voc}")

    # 2. datasets: decoded at reduced size, cached, uint8 until the batch is formed
    size = (args.size, args.size)
    train = VOCSegmentationDataset(
        voc, "train", image_size=size, transforms=RandomHorizontalFlip(seed=0), cache=True,
        image_dtype="uint8",
    )  # fmt: skip
    val = VOCSegmentationDataset(voc, "val", image_size=size, cache=True, image_dtype="uint8")
    classes = train.class_names
    print(f"{len(train)} train / {len(val)} val images, {len(classes)} classes")

    # 3. a multiclass UNet (one logit per class, softmax) trained with multiclass Dice
    model = UNet(num_classes=len(classes), init_features=8, depth=3)
    history = fit(
        model,
        DataLoader(train, batch_size=2, shuffle=True),
        loss_fn=DiceLoss(mode="multiclass"),
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        epochs=args.epochs,
        val_loader=DataLoader(val, batch_size=2),
        checkpoint=CheckpointOptions(args.out / "checkpoints", resume=False),
        run=RunOptions(seed=0),
    )
    print(f"last val mIoU {history.val_miou[-1]:.4f} after {len(history)} epochs")

    # 4. predict a validation photo at its own size and draw the classes over it
    segmenter = Segmenter.from_checkpoint(args.out / "checkpoints" / "last.pt")
    photo = next((voc / "JPEGImages").glob(f"{val.ids[0]}.*"))
    prediction = segmenter.predict(photo)
    prediction.save(args.out / "mask.png")
    prediction.overlay(alpha=0.5).save(args.out / "overlay.png")
    found = sorted({classes[i] for i in torch.unique(prediction.mask).tolist()})
    print(f"wrote {args.out / 'overlay.png'} for {photo.name}; classes found: {found}")


if __name__ == "__main__":
    main()
