"""From labelme annotations to a trained model: labelme JSON -> Pascal VOC -> fit -> overlays.

    python examples/labelme_workflow.py                 # the labelme semantic example
    python examples/labelme_workflow.py --data my_json_folder --labels my_labels.txt

The default input is labelme's own semantic-segmentation example in the shared data
(``labelme-semantic-example/data_annotated``, found like the tests find it: ``--data``,
else ``$CATSEG_SHARED_DATA``, else ``../shared/data`` beside the checkout) with its
``labels.txt`` (``__ignore__``, ``_background_`` and the 20 VOC classes).

1. The JSON folder is converted with :func:`catseg.data.labelme.labelme_to_voc` into
   ``<out>/voc`` (a second run reuses it).
2. A small multiclass UNet (one logit per class, softmax) trains with cross-entropy plus
   soft Dice on random flips of the photos at 96×96 (about a minute on a 2-core CPU).
3. Every photo is segmented at its own size with the best checkpoint; masks and overlays
   go to ``<out>``.

The example has three annotated photos: too few to hold any out. The model therefore
trains on all of them, and every mIoU it prints is measured on those same photos. It
shows that the pipeline learns the annotations (about 0.75 mIoU at 96×96 after 40
epochs), not how the model would do on new photos: for that, label more photos and
keep some back (``labelme_to_voc(..., val_fraction=0.2)`` writes a ``val`` split).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from _data import default_data, output_dir, parser, require_data
from torch.utils.data import DataLoader, RandomSampler

from catseg.data import VOCSegmentationDataset
from catseg.data.labelme import labelme_to_voc
from catseg.data.transforms import RandomHorizontalFlip
from catseg.losses import DiceCELoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit


def convert(src: Path, labels: Path, voc: Path) -> Path:
    """labelme JSON -> VOC folder (JPEGImages, SegmentationClassPNG, class names), once."""
    if voc.is_dir() and any(voc.iterdir()):
        print(f"reusing {voc}")
        return voc
    labelme_to_voc(src, voc, labels, val_fraction=0.0)  # no split: every photo trains
    print(f"converted {src} -> {voc}")
    return voc


def main() -> None:
    args = parser(__doc__)
    args.add_argument(
        "--data",
        "--src",
        type=Path,
        default=default_data("labelme-semantic-example/data_annotated"),
        help="a folder of labelme JSON files (with their images)",
    )
    args.add_argument(
        "--labels", type=Path, default=None, help="labels.txt (default: <data>/../labels.txt)"
    )
    args.add_argument("--out", type=Path, default=output_dir("labelme_workflow"), help="outputs")
    args.add_argument("--epochs", type=int, default=40, help="training epochs")
    args.add_argument("--size", type=int, default=96, help="training size (square)")
    options = args.parse_args()
    src = require_data(options.data, "labelme-semantic-example")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny model on a few images: one thread is fastest
    out: Path = options.out
    out.mkdir(parents=True, exist_ok=True)

    voc = convert(src, options.labels or src.parent / "labels.txt", out / "voc")
    # every photo, decoded at the training size and cached; flipped at random for training
    size = (options.size, options.size)
    flips = RandomHorizontalFlip(seed=0)
    train = VOCSegmentationDataset(voc, image_size=size, transforms=flips, cache=True)
    photos = VOCSegmentationDataset(voc, image_size=size, cache=True)
    classes = train.class_names
    print(
        f"{len(train)} annotated photos, {len(classes)} classes. Too few to hold any out: "
        "the model trains on all of them and every mIoU below is measured on the same "
        "photos (it shows the model learns the annotations, not how it does on new photos)."
    )

    model = UNet(num_classes=len(classes), init_features=8, depth=3)
    # ten random flips of the photos per epoch, three per batch
    loader = DataLoader(
        train, batch_size=3, sampler=RandomSampler(train, replacement=True, num_samples=30)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=options.epochs * len(loader)
    )
    history = fit(
        model,
        loader,
        loss_fn=DiceCELoss(mode="multiclass"),  # CE gives every pixel a gradient
        optimizer=optimizer,
        scheduler=schedule,
        epochs=options.epochs,
        val_loader=DataLoader(photos, batch_size=3),  # the training photos, unflipped
        # the one-cycle schedule spans exactly `epochs`: always start over
        checkpoint_dir=out / "checkpoints",
        resume=False,
        run=RunOptions(seed=0, scheduler_interval="step"),
        progress=False,  # one log line per epoch ("val_mIoU": on the training photos)
    )
    print(
        f"mIoU on the training photos at {size[0]}x{size[1]}: {history.best_val_miou:.4f} "
        f"(best epoch {history.best_epoch} of {options.epochs})"
    )

    # segment every photo at its own size with the best checkpoint and draw the classes
    segmenter = Segmenter.from_checkpoint(out / "checkpoints" / "best.pt")
    originals = VOCSegmentationDataset(voc)
    metric = MeanIoU(len(classes))
    for index, photo_id in enumerate(originals.ids):
        _, mask = originals[index]
        prediction = segmenter.predict(next((voc / "JPEGImages").glob(f"{photo_id}.*")))
        metric.update(prediction.mask[None].long(), mask[None])
        prediction.save(out / f"mask_{photo_id}.png")
        prediction.overlay(alpha=0.5).save(out / f"overlay_{photo_id}.png")
        drawn = sorted({classes[i] for i in mask.unique().tolist() if 0 < i < 255})
        found = sorted({classes[i] for i in prediction.mask.unique().tolist() if i > 0})
        print(f"{photo_id}: annotated {drawn}, found {found}")
    print(f"mIoU on the training photos at their own size: {metric.compute().miou:.4f}")
    print(f"masks and overlays in {out}")


if __name__ == "__main__":
    main()
