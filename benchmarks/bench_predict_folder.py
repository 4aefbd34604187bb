"""Folder-scale prediction speed: ``predict_folder`` against ``predict_batch``, same run.

Run: ``python benchmarks/bench_predict_folder.py`` (``--quick``: a tiny model on 20
photos, a smoke run of well under a minute). Photos are copied from
``$CATSEG_SHARED_DATA/cats-voc/JPEGImages`` (or ``../shared/data/cats-voc``) into a
temporary folder. Measured, in photos per second (best of interleaved rounds, so that other load on
the machine hits every path alike):

* ``predict_batch`` on the photos already decoded into uint8 arrays (the model and the
  pre- and post-processing only: no JPEG decoding, no PNG writing);
* ``predict_folder`` from the files to palette PNGs in a fresh output folder (decoding
  in ``num_workers`` DataLoader processes, encoding and atomic writes included), with
  the default ``num_workers=None`` (the row names what it resolved to, and how many
  background writing threads were used) and with ``--workers`` explicit counts (default
  0, 1 and 2).

The ratio folder / batch is the figure of issue 19 (target ≥ 0.9×): how much of the
forward-pass speed survives reading and writing files. With a tiny model decoding and
encoding dominate, so ``--quick`` understates what a real model gets.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import machine_description, markdown_table, measure

from catseg.data import open_image
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.predict._folder import default_workers, default_writers

REPO = Path(__file__).resolve().parents[1]


def cats_photos(n: int) -> list[Path]:
    env = os.environ.get("CATSEG_SHARED_DATA")
    for base in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        folder = base / "cats-voc" / "JPEGImages"
        if folder.is_dir():
            return sorted(folder.glob("*.jpg"))[:n]
    sys.exit("the cats photos were not found: set CATSEG_SHARED_DATA (see README)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 20 photos")
    parser.add_argument("--photos", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3/5)")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); fewer than the cores leaves cores free, the "
        "case where the default starts decoding workers and background writers",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.photos or (20 if args.quick else 200)
    torch.manual_seed(0)
    model = (
        UNet(3, 1, init_features=8, depth=3) if args.quick else UNet(3, 1)
    )  # random weights: speed only
    seg = Segmenter(
        model,
        classes=["_background_", "cat"],
        image_size=(args.image_size, args.image_size),
        batch_size=args.batch_size,
    )
    rounds = args.rounds or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        for photo in cats_photos(n):
            shutil.copyfile(photo, src / photo.name)
        count = len(list(src.iterdir()))
        arrays = [np.asarray(open_image(p)) for p in sorted(src.iterdir())]
        runs = itertools.count()

        def folder(workers: int | None) -> None:
            dst = Path(tmp) / f"out{workers}-{next(runs)}"
            summary = seg.predict_folder(src, dst, num_workers=workers)
            assert summary.written == count, summary
            shutil.rmtree(dst)

        calls: dict[str, Callable[[], object]] = {
            "batch": lambda: seg.predict_batch(arrays),
            "folderNone": lambda: folder(None),
        }
        for w in args.workers:
            calls[f"folder{w}"] = functools.partial(folder, w)
        best = {name: float("inf") for name in calls}
        for call in calls.values():  # warm-up
            call()
        for _ in range(rounds):  # interleaved, so load changes hit every path alike
            for name, call in calls.items():
                best[name] = min(best[name], measure(call, warmup=0, repeats=1).best)
        speed = {name: count / seconds for name, seconds in best.items()}
        default = f"None -> {default_workers(seg.device)} (writers: {default_writers(seg.device)})"
        rows: list[list[object]] = [["predict_batch, pre-decoded arrays", "-", speed["batch"], 1.0]]
        for w in [None, *args.workers]:
            ratio = speed[f"folder{w}"] / speed["batch"]
            label = default if w is None else w
            rows.append(["predict_folder, files to PNGs", label, speed[f"folder{w}"], ratio])
    size = f"{args.image_size}²"
    arch = "UNet(3, 1, init_features=8, depth=3)" if args.quick else "UNet(3, 1)"
    print(machine_description())
    print(
        f"{count} cats photos, {arch} at {size}, batch {args.batch_size}, best of {rounds}, "
        f"{torch.get_num_threads()} torch threads on {os.cpu_count()} cores"
    )
    print()
    print(markdown_table(["path", "num_workers", "photos/s", "× predict_batch"], rows))


if __name__ == "__main__":
    main()
