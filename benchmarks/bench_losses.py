"""Forward + backward time of every catseg loss against the Dice loss, side by side.

Run: ``python benchmarks/bench_losses.py`` (8 x 21 x 512 x 512 logits, multiclass) or
``--quick`` for a smoke run (2 x 21 x 128 x 128); ``--repeats`` sets the timed repetitions
(7 by default). ``--mode binary|multilabel`` times the sigmoid modes instead (1 or 21
channels). Each repetition times the loss and the Dice
loss alternately, so that machine load hits both alike; the best of the repetitions is
kept. The ratio column is loss time / Dice time (< 1: faster than Dice). DiceCE is also
shown against its parts run separately (torch's cross-entropy + the Dice loss), the
reference it must not be slower than. Where ``segmentation_models_pytorch`` or ``monai``
imports (neither is a catseg dependency), each catseg loss is also timed against that
library's loss of the same definition.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from _common import best_of_interleaved
from torch import Tensor

from catseg.losses import (
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LovaszLoss,
    TverskyLoss,
)

Step = Callable[[], None]


def _step(loss_fn: Callable[[Tensor, Tensor], Tensor], logits: Tensor, target: Tensor) -> Step:
    def run() -> None:
        logits.grad = None
        loss_fn(logits, target).backward()  # type: ignore[no-untyped-call]

    return run


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def _data(mode: str, n: int, classes: int, size: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    channels = 1 if mode == "binary" else classes
    logits = torch.randn(n, channels, size, size, generator=gen).requires_grad_(True)
    if mode == "multiclass":
        target = torch.randint(0, classes, (n, size, size), generator=gen)
        target[:, :8] = 255  # a band of VOC "void" pixels
    elif mode == "binary":
        target = torch.randint(0, 2, (n, size, size), generator=gen)
        target[:, :8] = 255
    else:
        target = torch.randint(0, 2, (n, classes, size, size), generator=gen)
        target[:, :, :8] = 255
    return logits, target


def _references(
    mode: str, classes: int
) -> list[tuple[str, str, Callable[[Tensor, Tensor], Tensor]]]:
    """(catseg loss name, reference name, reference loss) for the libraries that import."""
    refs: list[tuple[str, str, Callable[[Tensor, Tensor], Tensor]]] = []
    try:
        import segmentation_models_pytorch.losses as smp
    except Exception:  # any failure means "not available"
        print("(segmentation_models_pytorch not importable: no smp rows)")
    else:
        smp_mode = mode
        wrap = (lambda f: lambda x, t: f(x, t.unsqueeze(1))) if mode == "binary" else (lambda f: f)
        refs += [
            ("DiceLoss (again)", "smp DiceLoss", wrap(smp.DiceLoss(smp_mode, ignore_index=255))),
            (
                "TverskyLoss(gamma=1.5)",
                "smp TverskyLoss",
                wrap(smp.TverskyLoss(smp_mode, alpha=0.3, beta=0.7, gamma=1.5, ignore_index=255)),
            ),
            ("FocalLoss", "smp FocalLoss", wrap(smp.FocalLoss(smp_mode, ignore_index=255))),
            ("LovaszLoss", "smp LovaszLoss", wrap(smp.LovaszLoss(smp_mode, ignore_index=255))),
            (
                "LovaszLoss(per_image)",
                "smp LovaszLoss(per_image)",
                wrap(smp.LovaszLoss(smp_mode, per_image=True, ignore_index=255)),
            ),
        ]
    return refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--mode", default="multiclass", choices=("binary", "multiclass", "multilabel")
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--repeats", type=int, default=0, help="timed repetitions per loss (0: 5 quick, 7 full)"
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=tuple(CLOCK),
        help="wall time, or the process's CPU time (steadier on a loaded shared machine)",
    )
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    n, size, classes, repeats = (2, 128, 21, 5) if args.quick else (8, 512, 21, 7)
    repeats = args.repeats or repeats
    mode = args.mode
    logits, target = _data(mode, n, classes, size)
    dice = DiceLoss(mode=mode)
    losses: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "DiceLoss (again)": DiceLoss(mode=mode),
        "DiceCELoss": DiceCELoss(mode=mode),
        "FocalLoss": FocalLoss(mode=mode),
        "TverskyLoss(gamma=1.5)": TverskyLoss(mode=mode, alpha=0.3, beta=0.7, gamma=1.5),
        "JaccardLoss": JaccardLoss(mode=mode),
        "LovaszLoss": LovaszLoss(mode=mode),
        "LovaszLoss(per_image)": LovaszLoss(mode=mode, per_image=True),
    }
    print(
        f"forward+backward, {mode}, logits {tuple(logits.shape)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock, best of {repeats} "
        "(interleaved with DiceLoss)\n"
    )
    print("| loss | ms | DiceLoss ms | ratio to Dice |")
    print("|---|---:|---:|---:|")
    for name, loss_fn in losses.items():
        t_loss, t_dice = best_of_interleaved(
            _step(loss_fn, logits, target),
            _step(dice, logits, target),
            repeats=repeats,
            clock=clock,
        )
        print(f"| {name} | {t_loss * 1e3:.1f} | {t_dice * 1e3:.1f} | {t_loss / t_dice:.2f} |")

    def parts(x: Tensor, t: Tensor) -> Tensor:
        if mode == "multiclass":
            ce = F.cross_entropy(x, t, ignore_index=255)
        else:
            g = t.reshape(x.shape)
            valid = g != 255
            ce = F.binary_cross_entropy_with_logits(x[valid], g[valid].to(x.dtype))
        return ce + dice(x, t)

    t_ours, t_parts = best_of_interleaved(
        _step(DiceCELoss(mode=mode), logits, target),
        _step(parts, logits, target),
        repeats=repeats,
        clock=clock,
    )
    print(
        f"\nDiceCELoss {t_ours * 1e3:.1f} ms vs torch cross-entropy + DiceLoss run separately "
        f"{t_parts * 1e3:.1f} ms: ratio {t_ours / t_parts:.2f}"
    )
    refs = _references(mode, classes)
    if refs:
        print("\n| catseg loss | ms | reference | ms | ratio (< 1: catseg faster) |")
        print("|---|---:|---|---:|---:|")
    for ours, name, ref in refs:
        try:
            t_loss, t_ref = best_of_interleaved(
                _step(losses[ours], logits, target),
                _step(ref, logits, target),
                repeats=repeats,
                clock=clock,
            )
        except Exception as error:  # the reference library fails on this input
            print(f"| {ours} | | {name} | failed: {type(error).__name__} | |")
            continue
        print(
            f"| {ours} | {t_loss * 1e3:.1f} | {name} | {t_ref * 1e3:.1f} | {t_loss / t_ref:.2f} |"
        )


if __name__ == "__main__":
    main()
