"""Does bf16 training cost quality? One cat model trained twice for the same steps.

Trains the cat recipe's model, data augmentation, loss (BCE + Dice) and schedule from
the same seed on ``cats-voc`` train for ``--epochs`` epochs, once with
``precision="bf16"`` autocast and once in fp32 (both channels-last, same data order,
same one-cycle schedule), then measures the val cat IoU at original resolution with an
fp32 Segmenter; repeated for each of ``--seeds``. Prints a markdown table; the last line
is ``bf16 IoU <a> fp32 IoU <b> difference <c>`` (means over the seeds).

Usage::

    python benchmarks/bf16_training_quality.py --epochs 20 --seeds 0 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import machine_description, markdown_table

from catseg.data import SegmentationLoader, VOCSegmentationDataset
from catseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
)
from catseg.losses import BCEDiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit

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
    loader = SegmentationLoader(
        train,
        batch_size=8,
        shuffle=True,
        drop_last=True,
        num_workers=0,
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
        loss_fn=BCEDiceLoss(),
        optimizer=optimizer,
        scheduler=schedule,
        epochs=epochs,
        run=RunOptions(precision=precision, seed=seed, scheduler_interval="step"),
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch, 1 seed")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds = 1, args.seeds[:1]
    print(machine_description())
    rows = []
    scores: dict[str, list[float]] = {"bf16": [], "fp32": []}
    for seed in args.seeds:
        for precision in ("bf16", "fp32"):
            iou, seconds = train_and_score(args.data, precision, args.epochs, seed)
            scores[precision].append(iou)
            rows.append([str(seed), precision, str(args.epochs), f"{seconds:.0f}", f"{iou:.4f}"])
    print()
    headers = ["seed", "training precision", "epochs", "seconds", "val cat IoU"]
    print(markdown_table(headers, rows))
    bf16 = sum(scores["bf16"]) / len(args.seeds)
    fp32 = sum(scores["fp32"]) / len(args.seeds)
    print()
    print(f"bf16 IoU {bf16:.4f} fp32 IoU {fp32:.4f} difference {bf16 - fp32:+.4f}")


if __name__ == "__main__":
    main()
