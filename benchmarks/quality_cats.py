"""Held-out quality on real cats for a fixed wall-clock training budget.

Trains a recipe on ``cats-voc`` train for ``--minutes`` of wall-clock time (training
stops mid-epoch when the budget is spent), then evaluates the **cat IoU on the val split
at original resolution**: every val photo goes through :class:`catseg.predict.Segmenter`
(resized to the recipe's input size, probabilities resized back to the photo's own size,
threshold 0.5), and one confusion matrix over all val pixels, 255 ignored, gives the IoU.

Recipes:

* ``tutorial`` — the original tutorial: default UNet (``init_features=32``, depth 4),
  Adam lr 1e-4 constant, batch 16, 256×256 resized images, no augmentation, fp32 NCHW,
  soft Dice loss.
* ``catseg`` — the documented catseg recipe (docs/guides/training.md): a narrower UNet
  (``init_features=16``) at 128×128 with the fast path (bf16 autocast where native,
  channels-last), batch 4, AdamW with a one-cycle schedule laid over the *time* budget
  (warm-up over the first 5 %, cosine decay to zero at the end), random resized crops
  (scale 0.5–1), horizontal flips and colour jitter (0.3) on images cached in memory as
  uint8, BCE + Dice loss; evaluation averages the horizontal flip (`tta=True`).

Usage::

    python benchmarks/quality_cats.py                       # catseg recipe, 10 minutes
    python benchmarks/quality_cats.py --recipe tutorial     # the tutorial, same budget
    python benchmarks/quality_cats.py --minutes 2 --save cats.pt
    python benchmarks/quality_cats.py --quick               # 20-second smoke run
    python benchmarks/quality_cats.py --progressive 0.5 --min-scale 0.75  # a variant

The overrides (``--help`` lists them) change one part of the recipe each; the training
guide's table says what each variant measured.

Prints a markdown table and, as its last line, ``val cat IoU <x> images/s <y>`` (training
images per second over the whole budget, data loading included).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from _common import machine_description, markdown_table
from torch import nn
from torch.utils.data import DataLoader

from catseg.checkpoint import save_checkpoint
from catseg.data import VOCSegmentationDataset
from catseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    Resize,
)
from catseg.losses import BCEDiceLoss, DiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import EpochRecord, RunOptions, fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cats-voc"


@dataclass(frozen=True)
class Recipe:
    """Everything that differs between the two recipes."""

    image_size: int
    init_features: int
    depth: int
    batch_size: int
    optimizer: Literal["adam", "adamw"]
    lr: float
    weight_decay: float
    one_cycle: bool
    augment: bool
    crop_scale: tuple[float, float]
    loss: Literal["dice", "bce+dice"]
    precision: Literal["auto", "fp32"]
    channels_last: bool
    num_workers: int
    jitter: float = 0.0
    tta: bool = False
    decoder_channels: tuple[int, ...] | None = None
    upsample: Literal["transpose", "bilinear"] = "transpose"
    dice_weight: float = 1.0
    rotate: float = 0.0
    dropout: float = 0.0
    encoder: str = "unet"


RECIPES = {
    "tutorial": Recipe(
        image_size=256, init_features=32, depth=4, batch_size=16, optimizer="adam", lr=1e-4,
        weight_decay=0.0, one_cycle=False, augment=False, crop_scale=(1.0, 1.0), loss="dice",
        precision="fp32", channels_last=False, num_workers=0,
    ),
    "catseg": Recipe(
        image_size=128, init_features=16, depth=4, batch_size=4, optimizer="adamw", lr=2e-3,
        weight_decay=1e-4, one_cycle=True, augment=True, crop_scale=(0.5, 1.0),
        loss="bce+dice", precision="auto", channels_last=True, num_workers=0,
        jitter=0.3, tta=True,
    ),
}  # fmt: skip


class TimeBudget:
    """Wall-clock budget shared by the loader (stops mid-epoch) and the lr schedule."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self.images = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self) -> bool:
        return self.elapsed() >= self.seconds

    def one_cycle(self, _step: int) -> float:
        """lr factor: 1/25 -> 1 linearly over the first 5 % of the time, cosine to 0 after."""
        progress = min(self.elapsed() / self.seconds, 1.0)
        warm = 0.05
        if progress < warm:
            return 0.04 + 0.96 * progress / warm
        return 0.5 * (1.0 + math.cos(math.pi * (progress - warm) / (1.0 - warm)))


class BudgetLoader(DataLoader[Any]):
    """A DataLoader whose epochs end early once the time budget is spent."""

    budget: TimeBudget
    small_until: float = 0.0  # share of the budget trained at 3/4 of the size

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for step, batch in enumerate(super().__iter__()):
            if step > 0 and self.budget.spent():  # an epoch has at least one batch
                return
            self.budget.images += int(batch[0].shape[0])
            if self.budget.elapsed() < self.small_until * self.budget.seconds:
                batch = _shrink(batch)
            yield batch


def _shrink(batch: Any) -> Any:
    """Resize an (images, masks) batch to 3/4 of its size (progressive resizing)."""
    images, masks = batch
    height, width = images.shape[-2:]
    resize = Resize((max(1, round(height * 0.75)), max(1, round(width * 0.75))))
    pairs = [resize(image, mask) for image, mask in zip(images, masks, strict=True)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def build_loader(data: Path, recipe: Recipe, budget: TimeBudget, seed: int) -> BudgetLoader:
    size = recipe.image_size
    if recipe.augment:
        # cache the photos at their own size; crops and flips are drawn per sample
        transforms = Compose(
            [
                RandomResizedCrop(size, scale=recipe.crop_scale, ratio=(0.6, 1.67), seed=seed),
                RandomHorizontalFlip(seed=seed + 1),
                *([RandomRotation(recipe.rotate, seed=seed + 3)] if recipe.rotate > 0 else []),
                *(
                    [ColorJitter(recipe.jitter, recipe.jitter, recipe.jitter, seed=seed + 2)]
                    if recipe.jitter > 0
                    else []
                ),
            ]
        )
        dataset = VOCSegmentationDataset(
            data, "train", transforms=transforms, cache=True, image_dtype="uint8"
        )
    else:
        dataset = VOCSegmentationDataset(
            data, "train", image_size=size, cache=True, image_dtype="uint8"
        )
    workers = recipe.num_workers
    loader = BudgetLoader(
        dataset,
        batch_size=recipe.batch_size,
        shuffle=True,
        drop_last=recipe.augment,
        num_workers=workers,
        persistent_workers=workers > 0,  # each worker keeps its own image cache
        generator=torch.Generator().manual_seed(seed),
    )
    loader.budget = budget
    return loader


def evaluate_original_resolution(
    model: nn.Module, data: Path, recipe: Recipe, classes: list[str]
) -> float:
    """Cat IoU over the val split, each prediction at its photo's original size."""
    val = VOCSegmentationDataset(data, "val", image_dtype="uint8")
    segmenter = Segmenter(
        model,
        channels_last=recipe.channels_last,
        classes=classes,
        image_size=(recipe.image_size, recipe.image_size),
        precision=recipe.precision,
        tta=recipe.tta,
    )
    metric = MeanIoU(2)
    for index in range(len(val)):
        image, mask = val[index]
        prediction = segmenter.predict(image)
        metric.update(prediction.mask[None].long(), mask[None])
    return float(metric.compute().iou[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="VOC folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="catseg")
    parser.add_argument("--save", type=Path, default=None, help="write a catseg checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="20-second smoke run")
    parser.add_argument("--size", type=int, default=None, help="override the input size")
    parser.add_argument("--features", type=int, default=None, help="override init_features")
    parser.add_argument("--depth", type=int, default=None, help="override the UNet depth")
    parser.add_argument("--encoder", type=str, default=None, help="override the encoder name")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    parser.add_argument("--min-scale", type=float, default=None, help="override the crop scale")
    parser.add_argument("--lr", type=float, default=None, help="override the peak lr")
    parser.add_argument("--wd", type=float, default=None, help="override the weight decay")
    parser.add_argument("--jitter", type=float, default=None, help="override colour jitter")
    parser.add_argument(
        "--decoder", type=str, default=None, help="override decoder widths, e.g. 64,32,16,16"
    )
    parser.add_argument("--upsample", choices=["transpose", "bilinear"], default=None)
    parser.add_argument("--rotate", type=float, default=None, help="random rotation (degrees)")
    parser.add_argument("--dropout", type=float, default=None, help="UNet Dropout2d")
    parser.add_argument(
        "--progressive", type=float, default=None, help="share of the time at 3/4 size"
    )
    parser.add_argument("--workers", type=int, default=None, help="override loader workers")
    parser.add_argument("--dice-weight", type=float, default=None, help="Dice term weight")
    parser.add_argument(
        "--ema", type=float, default=None, help="also evaluate an EMA of the weights (decay)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    minutes = 1 / 3 if args.quick else args.minutes
    recipe = RECIPES[args.recipe]
    overrides = {
        "image_size": args.size,
        "init_features": args.features,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "crop_scale": None if args.min_scale is None else (args.min_scale, 1.0),
        "lr": args.lr,
        "weight_decay": args.wd,
        "jitter": args.jitter,
        "decoder_channels": None
        if args.decoder is None
        else tuple(int(w) for w in args.decoder.split(",")),
        "upsample": args.upsample,
        "dice_weight": args.dice_weight,
        "num_workers": args.workers,
        "rotate": args.rotate,
        "dropout": args.dropout,
        "encoder": args.encoder,
    }
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})

    torch.manual_seed(args.seed)
    classic = recipe.encoder == "unet"  # init_features and depth size the classic encoder
    model = UNet(
        num_classes=1,
        encoder=recipe.encoder,
        **({"init_features": recipe.init_features, "depth": recipe.depth} if classic else {}),
        decoder_channels=recipe.decoder_channels,
        upsample=recipe.upsample,
        dropout=recipe.dropout,
    )
    if recipe.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
        )
    loss_fn: nn.Module = (
        BCEDiceLoss(dice_weight=recipe.dice_weight) if recipe.loss == "bce+dice" else DiceLoss()
    )

    budget = TimeBudget(minutes * 60)
    loader = build_loader(args.data, recipe, budget, args.seed)
    loader.small_until = args.progressive or 0.0
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, budget.one_cycle) if recipe.one_cycle else None
    )

    ema = None
    if args.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
        optimizer.register_step_post_hook(lambda *_: ema.update_parameters(model))

    def stop_when_spent(record: EpochRecord) -> bool:
        return budget.spent()

    history = fit(
        model,
        loader,
        loss_fn=loss_fn,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=100_000,  # the time budget ends training
        run=RunOptions(
            precision=recipe.precision,
            channels_last=recipe.channels_last,
            seed=args.seed,
            scheduler_interval="step",
        ),
        callbacks=[stop_when_spent],
        progress=False,
    )
    train_seconds = budget.elapsed()
    images_per_second = budget.images / train_seconds

    classes = list(loader.dataset.class_names)  # type: ignore[attr-defined]
    start = time.perf_counter()
    iou = evaluate_original_resolution(model, args.data, recipe, classes)
    if ema is not None:
        ema_iou = evaluate_original_resolution(ema.module, args.data, recipe, classes)
        print(f"raw weights IoU {iou:.4f}, EMA({args.ema}) IoU {ema_iou:.4f}")
    eval_seconds = time.perf_counter() - start
    if args.save is not None:
        model.describe(classes=classes, image_size=recipe.image_size)
        save_checkpoint(
            args.save,
            model,
            extra={"recipe": args.recipe, "val_cat_iou": iou, **asdict(recipe)},
        )

    print(machine_description())
    print()
    rows = [
        [
            args.recipe,
            f"{minutes:g}",
            f"{len(history)}",
            f"{budget.images}",
            f"{history.precision}",
            f"{recipe.image_size}",
            f"{images_per_second:.1f}",
            f"{eval_seconds:.0f}",
            f"{iou:.4f}",
        ]
    ]
    headers = [
        "recipe", "minutes", "epochs", "images", "precision", "size", "images/s",
        "eval s", "val cat IoU",
    ]  # fmt: skip
    print(markdown_table(headers, rows))
    print()
    print(f"val cat IoU {iou:.4f} images/s {images_per_second:.2f}")


if __name__ == "__main__":
    main()
