"""MeanIoU.update vs torchmetrics MulticlassJaccardIndex(validate_args=False), side by side.

Run: ``python benchmarks/bench_metrics.py`` (``--quick`` for a smoke run). Prints a
markdown table; ratio > 1 means catseg is faster.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from catseg.metrics import MeanIoU


def _best_of_interleaved(
    first: Callable[[], None], second: Callable[[], None], repeats: int
) -> tuple[float, float]:
    """Best time of each, run alternately so that machine load hits both alike."""
    first()  # warm-up
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, size, classes, repeats = (2, 128, 21, 3) if args.quick else (8, 512, 21, 15)
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, classes, (n, size, size), generator=gen)
    target[:, :8] = 255  # a band of VOC "void" pixels
    labels = torch.randint(0, classes, (n, size, size), generator=gen)
    logits = torch.randn(n, classes, size, size, generator=gen)

    ours = MeanIoU(classes, include_background=True)
    theirs = MulticlassJaccardIndex(classes, average="macro", ignore_index=255, validate_args=False)
    rows = []
    for name, preds in (("label map", labels), ("logits", logits)):
        t_ours, t_theirs = _best_of_interleaved(
            functools.partial(ours.update, preds, target),
            functools.partial(theirs.update, preds, target),
            repeats,
        )
        rows.append((name, t_ours, t_theirs))
    ours.reset()
    theirs.reset()
    ours.update(logits, target)
    theirs.update(logits, target)
    diff = abs(ours.compute().miou - float(theirs.compute()))

    print(
        f"MeanIoU.update, {n}x{size}x{size}, {classes} classes, "
        f"{torch.get_num_threads()} threads, best of {repeats}"
    )
    print()
    print("| input | catseg MeanIoU (ms) | torchmetrics MulticlassJaccardIndex (ms) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, t_ours, t_theirs in rows:
        print(f"| {name} | {t_ours * 1e3:.1f} | {t_theirs * 1e3:.1f} | {t_theirs / t_ours:.2f}x |")
    print()
    print(f"|mIoU(catseg, include_background=True) - mIoU(torchmetrics macro)| = {diff:.2e}")


if __name__ == "__main__":
    main()
