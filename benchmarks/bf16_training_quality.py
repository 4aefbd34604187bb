"""Does bf16 training cost quality? One cat model trained twice for the same steps.

Trains the cat recipe's model, data augmentation and schedule (with the soft Dice loss)
from the same seed on ``cats-voc`` train for ``--epochs`` epochs, once with ``precision="bf16"``
autocast and once in fp32 (both channels-last, same data
order, same one-cycle schedule), then measures the val cat IoU at original resolution
with an fp32 Segmenter. Prints a markdown table; the last line is
``bf16 IoU <a> fp32 IoU <b> difference <c>``.

Usage::

    python benchmarks/bf16_training_quality.py --epochs 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import machine_description, markdown_table
from torch.utils.data import DataLoader

from catseg.data import VOCSegmentationDataset
from catseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
)
from catseg.losses import DiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import fit

REPO = Path(__file__).resolve().parents[1]
SIZE = 128


def train_and_score(data: Path, precision: str, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    augment = Compose(
        [
            RandomResizedCrop(SIZE, scale=(0.5, 1.0), ratio=(0.6, 1.67), seed=seed),
            RandomHorizontalFlip(seed=seed + 1),
            ColorJitter(0.3, 0.3, 0.3, seed=seed + 2),
        ]
    )
    train = VOCSegmentationDataset(
        data, "train", transforms=augment, cache=True, image_dtype="uint8"
    )
    loader = DataLoader(
        train,
        batch_size=8,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = UNet(num_classes=1, init_features=16, depth=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * len(loader), pct_start=0.05
    )
    start = time.perf_counter()
    fit(
        model,
        loader,
        loss_fn=DiceLoss(),
        optimizer=optimizer,
        scheduler=schedule,
        scheduler_interval="step",
        epochs=epochs,
        precision=precision,
        seed=seed,
        progress=False,
    )
    seconds = time.perf_counter() - start
    val = VOCSegmentationDataset(data, "val", image_dtype="uint8")
    segmenter = Segmenter(
        model, classes=train.class_names, image_size=(SIZE, SIZE), precision="fp32"
    )
    metric = MeanIoU(2)
    for index in range(len(val)):
        image, mask = val[index]
        metric.update(segmenter.predict(image).mask[None].long(), mask[None])
    return float(metric.compute().iou[1]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cats-voc")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_description())
    rows = []
    scores = {}
    for precision in ("bf16", "fp32"):
        iou, seconds = train_and_score(args.data, precision, args.epochs, args.seed)
        scores[precision] = iou
        rows.append([precision, str(args.epochs), f"{seconds:.0f}", f"{iou:.4f}"])
    print()
    print(markdown_table(["training precision", "epochs", "seconds", "val cat IoU"], rows))
    diff = scores["bf16"] - scores["fp32"]
    print()
    print(f"bf16 IoU {scores['bf16']:.4f} fp32 IoU {scores['fp32']:.4f} difference {diff:+.4f}")


if __name__ == "__main__":
    main()
