"""MeanIoU.update vs torchmetrics' Jaccard indices (validate_args=False), side by side.

Multiclass (label maps and logits) against ``MulticlassJaccardIndex``, and
``MeanIoU(mode="multilabel")`` on ``(N, K, H, W)`` logits and multi-hot targets against
``MultilabelJaccardIndex``. Run: ``python benchmarks/bench_metrics.py`` (``--quick`` for
a smoke run, ``--device cuda`` on a GPU). Prints a markdown table; ratio > 1 means
catseg is faster.
"""

from __future__ import annotations

import argparse
import functools

import torch
from _common import best_of_interleaved
from torchmetrics.classification import MulticlassJaccardIndex, MultilabelJaccardIndex

from catseg.metrics import MeanIoU


def _multilabel_row(
    n: int, size: int, labels: int, repeats: int, device: torch.device
) -> tuple[float, float, float]:
    """Times of ``MeanIoU(mode="multilabel")`` and ``MultilabelJaccardIndex``, and |diff|."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(n, labels, size, size, generator=gen).to(device)
    target = torch.randint(0, 2, (n, labels, size, size), generator=gen)
    target[:, :, :8] = 255  # a band of ignored pixels, every label
    target = target.to(device)
    ours = MeanIoU(labels, mode="multilabel")
    theirs = MultilabelJaccardIndex(
        labels, average="macro", ignore_index=255, validate_args=False
    ).to(device)
    t_ours, t_theirs = best_of_interleaved(
        functools.partial(ours.update, logits, target),
        functools.partial(theirs.update, logits, target),
        repeats=repeats,
        device=device,
    )
    ours.reset()
    theirs.reset()
    ours.update(logits, target)
    theirs.update(logits, target)
    return t_ours, t_theirs, abs(ours.compute().miou - float(theirs.compute()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    n, size, classes, repeats = (2, 128, 21, 3) if args.quick else (8, 512, 21, 15)
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, classes, (n, size, size), generator=gen)
    target[:, :8] = 255  # a band of VOC "void" pixels
    labels = torch.randint(0, classes, (n, size, size), generator=gen)
    logits = torch.randn(n, classes, size, size, generator=gen)
    target, labels, logits = target.to(device), labels.to(device), logits.to(device)

    ours = MeanIoU(classes, include_background=True)
    theirs = MulticlassJaccardIndex(
        classes, average="macro", ignore_index=255, validate_args=False
    ).to(device)
    rows = []
    for name, preds in (("label map", labels), ("logits", logits)):
        t_ours, t_theirs = best_of_interleaved(
            functools.partial(ours.update, preds, target),
            functools.partial(theirs.update, preds, target),
            repeats=repeats,
            device=device,
        )
        rows.append((name, "MulticlassJaccardIndex", t_ours, t_theirs))
    ours.reset()
    theirs.reset()
    ours.update(logits, target)
    theirs.update(logits, target)
    diff = abs(ours.compute().miou - float(theirs.compute()))
    del labels, logits, target
    t_ours, t_theirs, multi_diff = _multilabel_row(n, size, classes, repeats, device)
    rows.append((f"multilabel logits, K={classes}", "MultilabelJaccardIndex", t_ours, t_theirs))

    print(
        f"MeanIoU.update, {n}x{size}x{size}, {classes} classes (labels), {device}, "
        f"{torch.get_num_threads()} threads, best of {repeats}"
    )
    print()
    print("| input | catseg MeanIoU (ms) | torchmetrics (ms) | torchmetrics metric | speed-up |")
    print("|---|---:|---:|---|---:|")
    for name, reference, t_ours, t_theirs in rows:
        print(
            f"| {name} | {t_ours * 1e3:.1f} | {t_theirs * 1e3:.1f} | {reference} "
            f"| {t_theirs / t_ours:.2f}x |"
        )
    print()
    print(f"|mIoU(catseg, include_background=True) - mIoU(torchmetrics macro)| = {diff:.2e}")
    print(f"|mIoU(catseg multilabel) - mIoU(torchmetrics multilabel macro)| = {multi_diff:.2e}")


if __name__ == "__main__":
    main()
