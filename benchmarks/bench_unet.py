"""UNet speed: memory format, bf16 and BatchNorm folding, as ratios to the tutorial's way.

Run: ``python benchmarks/bench_unet.py`` (``--quick`` for a smoke run). For the default
``UNet(3, 1)`` at 256×256, batch 4, it measures in one run:

* forward (``torch.inference_mode``) images/s for fp32 NCHW (the tutorial's way),
  channels_last fp32, channels_last + bf16 autocast, BatchNorm-folded model
  (+ channels_last, fp32 / bf16 autocast / bf16 weights);
* train-step (forward + backward + SGD step) images/s for fp32 NCHW, channels_last
  fp32 and channels_last + bf16 autocast;
* achieved GFLOP/s (model FLOPs counted with ``torch.utils.flop_counter``) against the
  fp32 and bf16 matmul peaks measured in the same run.

Prints a markdown table; "× fp32" is the ratio to the fp32 NCHW row of the same mode.
Variants are timed round-robin (each repeat runs every variant once) and keep their best
time, and the matmul peaks are measured before and after the model runs (the higher one
is kept), so load from other processes disturbs all rows alike.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from _common import machine_description, markdown_table, matmul_peak_gflops, measure
from torch.utils.flop_counter import FlopCounterMode

from catseg._runtime import cpu_has_native_bf16
from catseg.models import UNet


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool
    autocast_bf16: bool = False
    fused: bool = False
    bf16_weights: bool = False


INFERENCE = [
    Variant("fp32 NCHW (tutorial)", channels_last=False),
    Variant("channels_last fp32", channels_last=True),
    Variant("channels_last + bf16 autocast", channels_last=True, autocast_bf16=True),
    Variant("fused + channels_last fp32", channels_last=True, fused=True),
    Variant("fused + channels_last + bf16 autocast", True, autocast_bf16=True, fused=True),
    Variant("fused + channels_last + bf16 weights", True, fused=True, bf16_weights=True),
]
TRAINING = INFERENCE[:3]


@contextlib.contextmanager
def maybe_autocast(enabled: bool, device: torch.device) -> Iterator[None]:
    if enabled:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def count_flops(model: UNet, x: torch.Tensor, *, train: bool) -> int:
    """FLOPs of one forward (and backward when ``train``) of ``model`` on ``x``."""
    with FlopCounterMode(display=False) as counter:
        if train:
            model(x).float().mean().backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def inference_fn(
    model: UNet, x: torch.Tensor, v: Variant, device: torch.device
) -> Callable[[], object]:
    net = model.fuse_for_inference() if v.fused else model
    inp = x
    if v.channels_last:
        net = net.to(memory_format=torch.channels_last)
        inp = inp.contiguous(memory_format=torch.channels_last)
    if v.bf16_weights:
        net = net.to(torch.bfloat16)
        inp = inp.to(torch.bfloat16)

    def run() -> object:
        with torch.inference_mode(), maybe_autocast(v.autocast_bf16, device):
            return net(inp)

    return run


def train_fn(
    config: dict[str, object],
    x: torch.Tensor,
    target: torch.Tensor,
    v: Variant,
    device: torch.device,
) -> Callable[[], object]:
    torch.manual_seed(0)
    net = UNet.from_config(config).to(device).train()
    inp = x
    if v.channels_last:
        net = net.to(memory_format=torch.channels_last)
        inp = inp.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with maybe_autocast(v.autocast_bf16, device):
            logits = net(inp)
        loss = F.binary_cross_entropy_with_logits(logits.float(), target)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _uses_bf16(v: Variant) -> bool:
    return v.autocast_bf16 or v.bf16_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-train", action="store_true", help="inference rows only")
    parser.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="bf16 rows: auto = only where the device computes bf16 natively (a CPU without "
        "native bf16 emulates it, tens of times slower than fp32)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size, batch, repeats = (64, 1, 1) if args.quick else (args.size, args.batch, args.repeats)

    model = UNet(3, 1).to(device).eval()
    config = model.config.to_dict()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    target = (torch.rand(batch, 1, size, size, generator=gen) > 0.5).float().to(device)

    with_bf16 = args.bf16 == "on" or (
        args.bf16 == "auto" and (device.type != "cpu" or cpu_has_native_bf16())
    )
    inference = INFERENCE if with_bf16 else [v for v in INFERENCE if not _uses_bf16(v)]
    training = TRAINING if with_bf16 else [v for v in TRAINING if not _uses_bf16(v)]
    peak_n = 512 if args.quick else 2048
    bf16_n = peak_n if with_bf16 else 256  # emulated bf16: a small matmul is enough to show it
    peak_fp32 = matmul_peak_gflops(torch.float32, n=peak_n, repeats=10, device=device)
    peak_bf16 = matmul_peak_gflops(torch.bfloat16, n=bf16_n, repeats=3, device=device)
    fwd_flops = count_flops(model, x, train=False)
    train_flops = count_flops(UNet.from_config(config).to(device), x, train=True)

    rows: list[list[object]] = []

    def add(mode: str, v: Variant, seconds: float, base: float, flops: int) -> None:
        gflops = flops / seconds / 1e9
        rows.append(
            [
                mode,
                v.name,
                batch / seconds,
                base / seconds,
                gflops,
                100 * gflops / peak_fp32,
                100 * gflops / peak_bf16,
            ]
        )

    # Round-robin: every repeat runs each variant once, so a burst of load from other
    # processes hits all variants alike; each variant keeps its best time.
    jobs: list[tuple[str, Variant, Callable[[], object], int]] = [
        ("forward", v, inference_fn(model, x, v, device), fwd_flops) for v in inference
    ]
    if not args.skip_train:
        jobs += [
            ("train step", v, train_fn(config, x, target, v, device), train_flops) for v in training
        ]
    best = [measure(fn, warmup=1, repeats=1, device=device).best for _, _, fn, _ in jobs]
    for _ in range(repeats - 1):
        for i, (_, _, fn, _) in enumerate(jobs):
            best[i] = min(best[i], measure(fn, warmup=0, repeats=1, device=device).best)
    # peaks again after the model runs; keep the higher (less disturbed) measurement
    peak_fp32 = max(
        peak_fp32, matmul_peak_gflops(torch.float32, n=peak_n, repeats=10, device=device)
    )
    peak_bf16 = max(
        peak_bf16, matmul_peak_gflops(torch.bfloat16, n=bf16_n, repeats=3, device=device)
    )
    baselines: dict[str, float] = {}
    for (mode, v, _, flops), seconds in zip(jobs, best, strict=True):
        base = baselines.setdefault(mode, seconds)
        add(mode, v, seconds, base, flops)

    print(
        f"UNet(3, 1) (7,765,985 params), batch {batch} at {size}x{size}, best of {repeats} "
        "(variants timed round-robin)"
    )
    print(f"{machine_description()}")
    print(
        f"Model: {fwd_flops / batch / 1e9:.1f} GFLOP/image forward, "
        f"{train_flops / batch / 1e9:.1f} GFLOP/image train step. "
        f"Matmul peak measured now ({peak_n}^2): fp32 {peak_fp32:,.0f} GFLOP/s, "
        f"bf16 {peak_bf16:,.0f} GFLOP/s."
    )
    if not with_bf16:
        print()
        print(
            f"bf16 rows skipped: this CPU has no native bf16, so torch emulates it (the bf16 "
            f"matmul ran at {peak_bf16:,.1f} GFLOP/s, {peak_fp32 / peak_bf16:,.0f}x slower "
            "than fp32); `--bf16 on` times them anyway. Figures from CPUs with native bf16 "
            "are on the other benchmark pages."
        )
    print()
    headers = [
        "mode",
        "variant",
        "images/s",
        "× fp32 NCHW",
        "GFLOP/s",
        "% fp32 peak",
        "% bf16 peak",
    ]
    if not with_bf16:  # against an emulated peak the percentage means nothing
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
