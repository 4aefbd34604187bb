"""onnxruntime against PyTorch on the CPU: inference images/s measured side by side.

Run: ``python benchmarks/bench_onnx.py`` (``--quick`` for a smoke run). A randomly
initialised UNet (default: the tutorial's ``UNet(3, 1)``, ``--encoder`` to change) is
exported once with :func:`catseg.export.to_onnx` and the same batch (default 4 images
of 256×256) is timed, in this one process, through:

* PyTorch fp32: eval mode, ``torch.inference_mode``, contiguous tensors, no fusion
  (the baseline every ratio refers to);
* PyTorch fp32 with BatchNorm folded (``fuse_for_inference``) and ``channels_last``;
* the PyTorch fast path: the same plus bf16 autocast, only where the CPU has native
  bf16 (what ``precision="auto"`` picks there; elsewhere it is the row above);
* onnxruntime: :class:`catseg.export.OnnxRunner` on the exported file (CPU provider,
  onnxruntime's default threads).

The runtimes are timed in interleaved rounds (one call each per round, after a warm-up
call each); each row reports the best round's throughput, its ratio to PyTorch fp32 and
the max abs difference of the logits to PyTorch fp32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import machine_description, markdown_table, measure

from catseg._runtime import autocast, resolve_precision
from catseg.export import OnnxRunner, to_onnx
from catseg.models import UNet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (small input, 1 repeat)")
    parser.add_argument("--encoder", default="unet", help="registered encoder name")
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument("--batch", type=int, default=4, help="images per call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per runtime")
    args = parser.parse_args()
    size, batch, repeats = args.size, args.batch, args.repeats
    if args.quick:
        size, batch, repeats = 64, 2, 1

    torch.manual_seed(0)
    model = UNet(3, 1, encoder=args.encoder).eval()
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = to_onnx(model, Path(folder) / "model.onnx")
        export_seconds = time.perf_counter() - start
        megabytes = path.stat().st_size / 2**20
        runner = OnnxRunner(path, providers=["CPUExecutionProvider"])

        cpu = torch.device("cpu")
        dtype = resolve_precision("auto", cpu)
        fast_model = model.fuse_for_inference().to(memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)

        def pytorch_fp32() -> torch.Tensor:
            with torch.inference_mode():
                out: torch.Tensor = model(x)
            return out

        def pytorch_fused_fp32() -> torch.Tensor:
            with torch.inference_mode():
                out: torch.Tensor = fast_model(x_last)
            return out

        def pytorch_fast() -> torch.Tensor:
            with torch.inference_mode(), autocast(cpu, dtype):
                out: torch.Tensor = fast_model(x_last)
            return out.float()

        def onnxruntime() -> torch.Tensor:
            return runner(x)

        reference = pytorch_fp32()
        runs: list[tuple[str, Callable[[], torch.Tensor]]] = [
            ("PyTorch fp32 (eval, inference_mode)", pytorch_fp32),
            ("PyTorch fp32, fused + channels_last", pytorch_fused_fp32),
        ]
        if dtype is not None:  # without native bf16 the fast path is the row above
            runs.append(("PyTorch fast path (fused, channels_last, bf16 autocast)", pytorch_fast))
        runs.append(("onnxruntime fp32 (CPUExecutionProvider)", onnxruntime))
        for _, fn in runs:  # warm-up (oneDNN / onnxruntime kernel selection)
            fn()
        # Rounds interleave the runtimes so that a busy machine disturbs all of them alike.
        best = [float("inf")] * len(runs)
        for _ in range(repeats):
            for i, (_, fn) in enumerate(runs):
                best[i] = min(best[i], measure(fn, warmup=0, repeats=1).best)
        rows: list[list[object]] = []
        for (name, fn), seconds in zip(runs, best, strict=True):
            per_second = batch / seconds
            ratio = best[0] / seconds
            diff = (fn() - reference).abs().max().item()
            rows.append([name, per_second, f"{ratio:.2f}×", f"{diff:.1e}"])

    print(f"### ONNX export (`catseg.export`)\n\n{machine_description()}\n")
    print(
        f"Model: random-init `UNet(3, 1, encoder={args.encoder!r})`; batch {batch} × 3 × "
        f"{size} × {size} float32; best of {repeats} interleaved rounds after one warm-up call. "
        f"Export (`to_onnx`, dynamic size, including its onnxruntime check): "
        f"{export_seconds:.1f} s, file {megabytes:.1f} MiB.\n"
    )
    headers = ["runtime", "images/s", "vs PyTorch fp32", "max abs diff to fp32"]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
