"""GPU figures: catseg's fit and Segmenter in fp32/bf16/fp16, and Segmenter against smp.

Run by ``benchmarks/gpu_checks.py`` on a CUDA machine; prints markdown. The smp rows
need ``segmentation_models_pytorch`` importable (skipped with a note otherwise).

"Equal FLOPs": catseg's ``UNet(encoder="resnet34")`` and smp's ``Unet("resnet34")``
share the encoder but not the decoder, so their FLOPs per image differ. Both are
counted with ``torch.utils.flop_counter`` and throughput is also reported as achieved
TFLOP/s (images/s × FLOPs per image), which compares the two at equal work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table

from catseg import DiceLoss, Segmenter, UNet, VOCSegmentationDataset, fit
from catseg.data import make_synthetic_voc
from catseg.training import RunOptions

DEVICE = torch.device("cuda")


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    x = torch.randn(1, 3, size, size, device=DEVICE)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def fit_rows(size: int, batch: int, epochs: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_voc(Path(tmp) / "voc", n=256, size=size)
        train = VOCSegmentationDataset(root, "train", image_dtype="uint8", cache=True)
        val = VOCSegmentationDataset(root, "val", image_dtype="uint8", cache=True)
        for precision in ("fp32", "bf16", "fp16"):
            torch.manual_seed(0)
            model = UNet(3, 1)
            history = fit(
                model,
                DataLoader(train, batch_size=batch, shuffle=True, num_workers=2),
                val_loader=DataLoader(val, batch_size=batch),
                loss_fn=DiceLoss(),
                epochs=epochs,
                run=RunOptions(device="cuda", precision=precision),  # type: ignore[arg-type]
                progress=False,
            )
            last = history.records[-1]
            best_ips = max(r.images_per_second for r in history.records[1:])
            rows.append([precision, best_ips, last.train_loss, last.val_miou])
    return rows


def segmenter_rows(size: int, batch: int, n: int) -> list[list[object]]:
    gen = np.random.default_rng(0)
    photos = [gen.integers(0, 256, (768, 1024, 3), dtype=np.uint8) for _ in range(n)]
    rows: list[list[object]] = []
    for precision in ("fp32", "bf16", "fp16"):
        torch.manual_seed(0)
        seg = Segmenter(
            UNet(3, 2),
            batch_size=batch,
            classes=["bg", "fg"],
            image_size=(size, size),
            device="cuda",
            precision=precision,  # type: ignore[arg-type]
        )
        t = timed(lambda s=seg: s.predict_batch(photos), 3)
        rows.append([precision, n / t])
    return rows


def smp_rows(size: int, batch: int, n: int) -> tuple[list[list[object]], str]:
    try:
        import segmentation_models_pytorch as smp
    except ImportError as exc:
        return [], f"smp not importable ({exc}); rows skipped"
    torch.manual_seed(0)
    ours = UNet(3, 2, encoder="resnet34").to(DEVICE).eval()
    theirs = smp.Unet("resnet34", encoder_weights=None, classes=2).to(DEVICE).eval()
    f_ours, f_theirs = flops_per_image(ours, size), flops_per_image(theirs, size)
    x = torch.randn(batch, 3, size, size, device=DEVICE)
    rows: list[list[object]] = []
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        speeds = []
        for model in (ours, theirs):
            m = model.to(memory_format=torch.channels_last)
            xc = x.contiguous(memory_format=torch.channels_last)

            def forward(
                m: torch.nn.Module = m, xc: torch.Tensor = xc, dtype: torch.dtype | None = dtype
            ) -> None:
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None),
                ):
                    m(xc)

            speeds.append(batch / timed(forward, 5))
        rows.append(
            [
                f"forward, {precision}, channels_last, batch {batch}",
                speeds[0],
                speeds[1],
                speeds[0] * f_ours / 1e12,
                speeds[1] * f_theirs / 1e12,
                (speeds[0] * f_ours) / (speeds[1] * f_theirs),
            ]
        )
    # End to end: catseg's Segmenter (decode-free numpy photos in, masks out) against the
    # same steps written by hand around smp (resize, normalise, forward, argmax, to host).
    gen = np.random.default_rng(0)
    photos = [gen.integers(0, 256, (768, 1024, 3), dtype=np.uint8) for _ in range(n)]
    seg = Segmenter(
        UNet(3, 2, encoder="resnet34"),
        batch_size=batch,
        classes=["bg", "fg"],
        image_size=(size, size),
        device="cuda",
        precision="bf16",
    )
    mean = torch.tensor([0.485, 0.456, 0.406], device=DEVICE).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=DEVICE).view(1, 3, 1, 1)

    def smp_pipeline() -> None:
        for i in range(0, n, batch):
            chunk = torch.from_numpy(np.stack(photos[i : i + batch])).to(DEVICE)
            xb = chunk.permute(0, 3, 1, 2).float().div_(255)
            xb = torch.nn.functional.interpolate(xb, size=(size, size), mode="bilinear")
            xb = ((xb - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                logits = theirs(xb)
            logits = torch.nn.functional.interpolate(logits.float(), size=(768, 1024))
            logits.argmax(1).to(torch.uint8).cpu()

    t_ours = timed(lambda: seg.predict_batch(photos), 3)
    t_theirs = timed(smp_pipeline, 3)
    rows.append(
        [
            f"end to end, {n} 1024×768 photos, bf16",
            n / t_ours,
            n / t_theirs,
            n / t_ours * f_ours / 1e12,
            n / t_theirs * f_theirs / 1e12,
            (n / t_ours * f_ours) / (n / t_theirs * f_theirs),
        ]
    )
    note = (
        f"smp {smp.__version__}; GFLOPs per {size}² image: catseg {f_ours / 1e9:.1f}, "
        f"smp {f_theirs / 1e9:.1f} (torch.utils.flop_counter, 2 FLOPs per MAC)"
    )
    return rows, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing measured")
        return 1
    q = args.quick
    print(f"### GPU ({torch.cuda.get_device_name(0)}, torch {torch.__version__})\n")
    print("#### fit on synthetic 256² images, default UNet(3, 1), batch 32\n")
    print(
        markdown_table(
            ["precision", "train img/s (best epoch)", "last train loss", "last val mIoU"],
            fit_rows(256, 32, 2 if q else 4),
        )
    )
    print("\n#### Segmenter.predict_batch, 1024×768 photos at 512², UNet(3, 2), batch 16\n")
    print(markdown_table(["precision", "photos/s"], segmenter_rows(512, 16, 16 if q else 64)))
    rows, note = smp_rows(512, 16, 16 if q else 64)
    print("\n#### catseg against smp, UNet with a ResNet-34 encoder at 512²\n")
    print(note + "\n")
    if rows:
        print(
            markdown_table(
                [
                    "measure",
                    "catseg img/s",
                    "smp img/s",
                    "catseg TFLOP/s",
                    "smp TFLOP/s",
                    "catseg / smp at equal FLOPs",
                ],
                rows,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
