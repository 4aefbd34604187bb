"""Does labelling the photos the model doubts most help more than labelling random ones?

The labelling loop of issue 28, measured on the cats (``cats-voc``), for each seed:

1. Train a small UNet from scratch on ``--initial`` labelled train photos (a random draw).
2. With that model, measure the **pre-annotation error** on the val photos: the fraction
   of pixels (255 ignored) that differ from the ground truth, for the predicted mask and
   for the labelme polygons written by ``Prediction.to_labelme`` and read back (what a
   user would correct in labelme).
3. Choose ``--added`` more photos from the remaining train photos (a) at random and (b)
   by :func:`catseg.rank_for_labelling` (most uncertain first, normalised entropy,
   ``--spread`` as given), add their ground-truth masks, and retrain each set from scratch
   the same way (same seed, epochs, settings).
4. Report the val cat IoU at original resolution (one confusion matrix over all val
   pixels) of the three models: mean and spread (standard deviation) over the seeds.

Training: UNet(init_features=8, depth=3) on 128x128 resized photos, random horizontal
flips, BCE + Dice, AdamW 3e-3, batch 8, fp32, ``--epochs`` epochs; the photos are cached
in memory as uint8. One training step of 8 photos takes about 0.4 s on one core of a
2-core EPYC, so the default run (3 seeds x 3 trainings of 20 epochs, ranking 225 photos)
should take about 9 minutes there.

Usage::

    python benchmarks/bench_labelling.py                  # 3 seeds, prints a markdown table
    python benchmarks/bench_labelling.py --seeds 0 1 2 3 4 --epochs 30 --spread 0.05
    python benchmarks/bench_labelling.py --quick          # smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine_description, markdown_table
from torch.utils.data import DataLoader, Subset

from catseg import rank_for_labelling
from catseg.data import VOCSegmentationDataset, read_labelme, read_mask
from catseg.data.transforms import RandomHorizontalFlip
from catseg.losses import BCEDiceLoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ["CATSEG_SHARED_DATA"]) / "cats-voc"
    if os.environ.get("CATSEG_SHARED_DATA")
    else REPO.parent / "shared" / "data" / "cats-voc"
)
CLASSES = ["_background_", "cat"]


def train(data: Path, ids: list[str], args: argparse.Namespace, seed: int) -> Segmenter:
    """A UNet trained from scratch on the train photos ``ids``, as a Segmenter."""
    dataset = VOCSegmentationDataset(
        data,
        "train",
        image_size=args.size,
        transforms=RandomHorizontalFlip(seed=seed),
        cache=True,
        image_dtype="uint8",
    )
    index = {name: i for i, name in enumerate(dataset.ids)}
    torch.manual_seed(seed)
    model = UNet(num_classes=1, init_features=8, depth=3)
    fit(
        model,
        DataLoader(Subset(dataset, [index[i] for i in ids]), batch_size=8, shuffle=True),
        loss_fn=BCEDiceLoss(),
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        epochs=args.epochs,
        run=RunOptions(seed=seed, precision="fp32"),
        progress=False,
    )
    return Segmenter(model, classes=CLASSES, precision="fp32")


def val_figures(seg: Segmenter, data: Path, val: list[str], folder: Path) -> tuple[float, ...]:
    """``(cat IoU, mask pixel error, labelme-polygon pixel error)`` over the val photos."""
    inter = union = pixels = 0
    wrong = np.zeros(2)
    for name in val:
        photo = data / "JPEGImages" / f"{name}.jpg"
        truth = read_mask(data / "SegmentationClassPNG" / f"{name}.png")
        known = truth != 255
        prediction = seg.predict(photo)
        mask = prediction.mask.numpy()
        out = prediction.to_labelme(folder / f"{name}.json", image_path=photo, overwrite=True)
        polygons = read_labelme(out, CLASSES, image_root=data)[1]
        cat, true_cat = (mask == 1) & known, (truth == 1) & known
        inter, union = inter + int((cat & true_cat).sum()), union + int((cat | true_cat).sum())
        wrong += [((mask != truth) & known).sum(), ((polygons != truth) & known).sum()]
        pixels += int(known.sum())
    return inter / union, wrong[0] / pixels, wrong[1] / pixels


def spread(values: list[float], scale: float = 1.0) -> str:
    """``mean ± standard deviation`` (times ``scale``)."""
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f}" if scale == 1.0 else f"{mean:.2f} ± {std:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cats VOC folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every training")
    parser.add_argument("--size", type=int, default=128, help="training input size")
    parser.add_argument("--initial", type=int, default=25, help="photos labelled first")
    parser.add_argument("--added", type=int, default=25, help="photos labelled next")
    parser.add_argument("--spread", type=float, default=0.0, help="rank_for_labelling(spread=)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="smoke run (tiny settings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.epochs, args.size, args.initial, args.added = [0, 1], 2, 64, 6, 4
    split = args.data / "ImageSets" / "Segmentation"
    train_ids = (split / "train.txt").read_text().split()
    val_ids = (split / "val.txt").read_text().split()
    if args.quick:
        train_ids, val_ids = train_ids[:24], val_ids[:4]
    started = time.perf_counter()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            pool = train_ids[:]
            random.Random(seed).shuffle(pool)
            initial, rest = pool[: args.initial], pool[args.initial :]
            first = train(args.data, initial, args, seed)
            iou, mask_error, polygon_error = val_figures(first, args.data, val_ids, Path(tmp))
            photos = [args.data / "JPEGImages" / f"{name}.jpg" for name in rest]
            ranked = rank_for_labelling(first, photos, spread=args.spread)
            chosen = {
                "random": random.Random(seed + 1000).sample(rest, args.added),
                "ranked": [Path(str(p)).stem for p, _ in ranked[: args.added]],
            }
            rows = {"initial": iou, "mask error": mask_error, "polygon error": polygon_error}
            for how, extra in chosen.items():
                model = train(args.data, initial + extra, args, seed)
                rows[how] = val_figures(model, args.data, val_ids, Path(tmp))[0]
            for key, value in rows.items():
                results.setdefault(key, []).append(value)
            print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows.items()))
    minutes = (time.perf_counter() - started) / 60
    n, m = args.initial, args.added
    table = [
        (f"{n} photos (first round)", spread(results["initial"])),
        (f"{n} + {m} chosen at random", spread(results["random"])),
        (f"{n} + {m} ranked by uncertainty", spread(results["ranked"])),
    ]
    gains = [r - q for r, q in zip(results["ranked"], results["random"], strict=True)]
    print(f"\n{machine_description()}")
    print(
        f"{len(args.seeds)} seeds, {args.epochs} epochs at {args.size} px, "
        f"{len(val_ids)} val photos, {minutes:.1f} min\n"
    )
    print(markdown_table(["labelled train photos", "val cat IoU (mean ± std)"], table))
    print(f"\nranked − random, per seed: {', '.join(f'{g:+.3f}' for g in gains)}")
    print(
        f"pre-annotation pixel error of the {n}-photo model on val (% of pixels to fix): "
        f"mask {spread(results['mask error'], 100)}, "
        f"labelme polygons {spread(results['polygon error'], 100)}"
    )


if __name__ == "__main__":
    main()
