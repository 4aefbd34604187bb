"""int8 onnxruntime against fp32 onnxruntime and the PyTorch fast path on the CPU, on the cats.

Run: ``python benchmarks/bench_int8.py`` (``--quick`` for a short, indicative run;
``--checkpoint model.pt`` to use a trained catseg checkpoint instead of training here).

1. Without ``--checkpoint``, a binary UNet is trained for ``--seconds`` on the cats' train
   split (``--quick``: a small UNet, 128² crops, ~30 s), so that the activations the
   quantiser calibrates are those of a real model, not of random weights.
2. It is exported with :func:`catseg.export.to_onnx` (from a Segmenter, so the file
   carries classes, input size and normalisation) and quantised with
   :func:`catseg.export.quantize_onnx` on ``--calibration`` train photos.
3. Speed: the same batch (default 4 × 3 × 256 × 256) through the PyTorch fast path
   (BatchNorm folded, channels_last, bf16 autocast where the CPU has native bf16: what
   the Segmenter runs), onnxruntime fp32 and onnxruntime int8, timed in interleaved
   rounds (one call each per round, best round reported).
4. Agreement: every val photo is segmented at its original size by
   ``Segmenter.from_onnx`` on the fp32 and on the int8 file; the table gives the share
   of pixels whose label agrees, the cat IoU of the int8 masks against the fp32 masks,
   and each model's cat IoU against the ground truth (the IoU drop is fp32 − int8).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import machine_description, markdown_table, measure
from torch.utils.data import DataLoader, Subset

from catseg._runtime import autocast, resolve_precision
from catseg.data import VOCSegmentationDataset
from catseg.export import OnnxRunner, quantize_onnx, to_onnx
from catseg.losses import BCEDiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import EpochRecord, fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ["CATSEG_SHARED_DATA"]) / "cats-voc"
    if os.environ.get("CATSEG_SHARED_DATA")
    else REPO.parent / "shared" / "data" / "cats-voc"
)


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted)


def train(data: Path, seconds: float, size: int, features: int, limit: int | None) -> UNet:
    """A binary UNet trained on the cats' train split for about ``seconds``."""
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=features)
    dataset = VOCSegmentationDataset(
        data, "train", image_size=size, cache=True, image_dtype="uint8"
    )
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))  # type: ignore[assignment]
    loader = DataLoader(
        dataset, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    start = time.perf_counter()

    def stop(record: EpochRecord) -> bool:
        return time.perf_counter() - start > seconds

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    fit(
        model,
        loader,
        loss_fn=BCEDiceLoss(),
        optimizer=optimizer,
        epochs=10_000,
        callbacks=[stop],
        progress=False,
    )
    return model.eval()


def agreement(
    fp32: Segmenter, int8: Segmenter, data: Path, limit: int | None
) -> tuple[float, float, float, float]:
    """(pixel agreement, IoU int8 vs fp32, fp32 cat IoU, int8 cat IoU) on the val photos."""
    val = VOCSegmentationDataset(data, "val", image_dtype="uint8")
    count = len(val) if limit is None else min(limit, len(val))
    same = total = 0
    versus, truth32, truth8 = MeanIoU(2), MeanIoU(2), MeanIoU(2)
    for index in range(count):
        image, mask = val[index]
        a = fp32.predict(image).mask.long()
        b = int8.predict(image).mask.long()
        same += int((a == b).sum())
        total += a.numel()
        versus.update(b[None], a[None])
        truth32.update(a[None], mask[None])
        truth8.update(b[None], mask[None])
    return (
        same / total,
        float(versus.compute().iou[1]),
        float(truth32.compute().iou[1]),
        float(truth8.compute().iou[1]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cats VOC folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="trained catseg checkpoint")
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="training time without --checkpoint"
    )
    parser.add_argument("--features", type=int, default=64, help="UNet init_features when training")
    parser.add_argument("--train-size", type=int, default=256, help="training input size")
    parser.add_argument("--size", type=int, default=256, help="benchmark input height and width")
    parser.add_argument("--batch", type=int, default=4, help="images per timed call")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--calibration", type=int, default=32, help="calibration photos")
    parser.add_argument(
        "--val", type=int, default=None, help="val photos for agreement (default all)"
    )
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (no-VNNI CPUs)")
    parser.add_argument("--train-limit", type=int, default=None, help="train photos used")
    parser.add_argument("--quick", action="store_true", help="short indicative run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.features, args.train_size, args.train_limit = 20.0, 16, 96, 48
        args.repeats, args.calibration, args.val = 3, 16, 12

    ids = (args.data / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    calibration = [args.data / "JPEGImages" / f"{i}.jpg" for i in ids[: args.calibration]]
    started = time.perf_counter()
    if args.checkpoint is not None:
        source = Segmenter.from_checkpoint(args.checkpoint, device="cpu")
        how = f"checkpoint `{args.checkpoint.name}`"
    else:
        model = train(args.data, args.seconds, args.train_size, args.features, args.train_limit)
        classes = (args.data / "class_names.txt").read_text().split()
        size = (args.train_size, args.train_size)
        source = Segmenter(model, classes=classes, image_size=size, device="cpu")
        spent = time.perf_counter() - started
        how = f"`UNet(3, 1, init_features={args.features})` trained {spent:.0f} s"
        how += f" at {args.train_size}²"
    model = source.model
    assert model is not None

    with tempfile.TemporaryDirectory() as folder:
        fp32_path = to_onnx(source, Path(folder) / "fp32.onnx")
        start = time.perf_counter()
        int8_path = quantize_onnx(
            fp32_path,
            Path(folder) / "int8.onnx",
            calibration_images=calibration,
            reduce_range=args.reduce_range,
        )
        quantize_seconds = time.perf_counter() - start
        sizes = [p.stat().st_size / 2**20 for p in (fp32_path, int8_path)]
        fp32_runner = OnnxRunner(fp32_path, providers=["CPUExecutionProvider"])
        int8_runner = OnnxRunner(int8_path, providers=["CPUExecutionProvider"])

        x = torch.rand(
            args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)
        )
        cpu = torch.device("cpu")
        dtype = resolve_precision("auto", cpu)
        fast = model.fuse_for_inference().to(memory_format=torch.channels_last)  # type: ignore[operator]
        x_last = x.contiguous(memory_format=torch.channels_last)

        def pytorch_fast() -> torch.Tensor:
            with torch.inference_mode(), autocast(cpu, dtype):
                out: torch.Tensor = fast(x_last)
            return out.float()

        bf16 = "bf16 autocast" if dtype is not None else "fp32 (no native bf16)"
        runs: list[tuple[str, Callable[[], torch.Tensor]]] = [
            ("onnxruntime fp32", lambda: fp32_runner(x)),
            ("onnxruntime int8 (QDQ, per-channel)", lambda: int8_runner(x)),
            (f"PyTorch fast path (fused, channels_last, {bf16})", pytorch_fast),
        ]
        for _, fn in runs:
            fn()
        best = [float("inf")] * len(runs)
        for _ in range(args.repeats):
            for i, (_, fn) in enumerate(runs):
                best[i] = min(best[i], measure(fn, warmup=0, repeats=1).best)
        rows = [
            [name, args.batch / seconds, f"{best[0] / seconds:.2f}×"]
            for (name, _), seconds in zip(runs, best, strict=True)
        ]

        fp32_seg = Segmenter.from_onnx(fp32_path, providers=["CPUExecutionProvider"])
        int8_seg = Segmenter.from_onnx(int8_path, providers=["CPUExecutionProvider"])
        pixels, versus, iou32, iou8 = agreement(fp32_seg, int8_seg, args.data, args.val)

    quick = " (quick run: indicative only)" if args.quick else ""
    print(f"### int8 on the CPU (`catseg.export.quantize_onnx`){quick}\n")
    print(f"{machine_description()}; CPU flags: {_cpu_flags()}\n")
    print(
        f"Model: {how}; exported fp32 {sizes[0]:.1f} MiB, int8 {sizes[1]:.1f} MiB "
        f"(quantised in {quantize_seconds:.1f} s on {len(calibration)} train photos). "
        f"Speed: batch {args.batch} × 3 × {args.size}², best of {args.repeats} "
        "interleaved rounds.\n"
    )
    print(markdown_table(["runtime", "images/s", "vs onnxruntime fp32"], rows))
    n_val = "all" if args.val is None else str(args.val)
    print(f"\nMask agreement on {n_val} val photos, original size (int8 against fp32):\n")
    print(
        markdown_table(
            [
                "pixels agreeing",
                "IoU int8 vs fp32 masks",
                "cat IoU fp32",
                "cat IoU int8",
                "IoU drop",
            ],
            [
                [
                    f"{pixels:.2%}",
                    f"{versus:.4f}",
                    f"{iou32:.4f}",
                    f"{iou8:.4f}",
                    f"{iou32 - iou8:+.4f}",
                ]
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
