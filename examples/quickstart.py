"""catseg in under a minute: data -> UNet -> Dice loss -> fit -> mIoU -> Segmenter -> PNGs.

With no arguments this builds a small synthetic Pascal-VOC dataset (bright blobs on a
noisy background) in a temporary folder, trains a small UNet on the CPU (under a minute
on a 2-core machine), prints one line per epoch and the best validation mIoU, segments
one validation image with the best checkpoint and writes ``mask.png`` and
``overlay.png``. The temporary folder is removed at the end.

    python examples/quickstart.py                  # outputs/quickstart/ in the repository
    python examples/quickstart.py --out results    # ... or in ./results
    python examples/quickstart.py --data DIR       # any Pascal-VOC folder (labelme2voc output too)

``--data`` uses ``ImageSets/Segmentation/train.txt`` and ``val.txt`` when the folder has
them, and otherwise holds out every fifth image for validation. Every run starts fresh
(``resume=False``) and overwrites the files in ``--out``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from _data import output_dir, parser
from torch.utils.data import DataLoader, Subset

from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.data.transforms import RandomHorizontalFlip
from catseg.losses import DiceLoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit

Pair = tuple[torch.Tensor, torch.Tensor]
Data = VOCSegmentationDataset | Subset[Pair]


def datasets(root: Path, size: int) -> tuple[Data, Data, list[str], list[str]]:
    """Train (with flips) and val datasets, the class names and the val ids.

    Images are decoded at reduced size, cached in memory and kept uint8 until the
    batch is formed (``fit`` converts them to float on the device).
    """
    splits = root / "ImageSets" / "Segmentation"
    flips = RandomHorizontalFlip(seed=0)
    if (splits / "train.txt").is_file() and (splits / "val.txt").is_file():
        train = VOCSegmentationDataset(
            root, "train", image_size=size, transforms=flips, cache=True, image_dtype="uint8"
        )
        val = VOCSegmentationDataset(root, "val", image_size=size, cache=True, image_dtype="uint8")
        return train, val, val.class_names, val.ids
    augmented = VOCSegmentationDataset(
        root, image_size=size, transforms=flips, cache=True, image_dtype="uint8"
    )
    plain = VOCSegmentationDataset(root, image_size=size, cache=True, image_dtype="uint8")
    val_idx = list(range(0, len(plain), 5))  # every fifth image is held out
    train_idx = [i for i in range(len(plain)) if i % 5]
    val_ids = [plain.ids[i] for i in val_idx]
    return Subset(augmented, train_idx), Subset(plain, val_idx), plain.class_names, val_ids


def run(root: Path, out: Path, size: int, epochs: int, width: int) -> None:
    """Train on the VOC folder ``root`` and write checkpoints and PNGs to ``out``."""
    train, val, classes, val_ids = datasets(root, size)
    if len(classes) < 2:
        raise SystemExit(f"{root} has no class_names.txt with background + classes")
    binary = len(classes) == 2
    print(f"data: {root} ({len(train)} train, {len(val)} val images, classes {classes})")

    # 1 logit + sigmoid for two classes, one logit per class + softmax otherwise
    model = UNet(num_classes=1 if binary else len(classes), init_features=width, depth=3)
    train_loader = DataLoader(train, batch_size=8, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * len(train_loader)
    )
    history = fit(
        model,
        train_loader,
        loss_fn=DiceLoss(mode="binary" if binary else "multiclass"),
        optimizer=optimizer,
        scheduler=schedule,
        epochs=epochs,
        val_loader=val_loader,
        # the one-cycle schedule spans exactly `epochs`: always start over
        checkpoint_dir=out / "checkpoints",
        resume=False,
        run=RunOptions(seed=0, scheduler_interval="step"),
        progress=False,  # one log line per epoch (history.to_markdown() has the table)
    )
    print(f"val mIoU {history.best_val_miou:.4f} (best epoch {history.best_epoch} of {epochs})")

    # predict one validation photo at its own size with the best checkpoint
    segmenter = Segmenter.from_checkpoint(out / "checkpoints" / "best.pt")
    image_path = next(
        VOCSegmentationDataset(root).root.joinpath("JPEGImages").glob(f"{val_ids[0]}.*")
    )
    prediction = segmenter.predict(image_path)
    prediction.save(out / "mask.png")
    prediction.overlay(alpha=0.4).save(out / "overlay.png")
    print(f"wrote {out / 'mask.png'} and {out / 'overlay.png'} for {image_path.name}")


def main() -> None:
    args = parser(__doc__)
    args.add_argument(
        "--data", type=Path, default=None, help="a Pascal-VOC folder (default: synthetic data)"
    )
    args.add_argument(
        "--out", type=Path, default=output_dir("quickstart"), help="checkpoints and PNGs go here"
    )
    args.add_argument(
        "--epochs", type=int, default=None, help="default: 20 for synthetic data, 30 with --data"
    )
    args.add_argument(
        "--size", type=int, default=None, help="default: 64 for synthetic data, 128 with --data"
    )
    options = args.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    # a model this small trains fastest on one thread, and a second thread that has to
    # wait for a busy core slows every step down; larger models gain from torch's
    # default of one thread per core (see docs/guides/training.md)
    torch.set_num_threads(1)
    options.out.mkdir(parents=True, exist_ok=True)

    if options.data is not None:
        size, epochs = options.size or 128, options.epochs or 30
        run(options.data, options.out, size, epochs, width=16)
        return
    # the embedded toy dataset, written to a temporary folder removed at the end
    with tempfile.TemporaryDirectory(prefix="catseg-quickstart-") as tmp:
        root = make_synthetic_voc(Path(tmp) / "synthetic", n=96, size=64)
        size, epochs = options.size or 64, options.epochs or 20
        run(root, options.out, size, epochs, width=8)


if __name__ == "__main__":
    main()
