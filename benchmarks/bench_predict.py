"""Segmenter speed and agreement: the fast path against the plain fp32 path, in one run.

Run: ``python benchmarks/bench_predict.py`` (``--quick`` for a smoke run,
``--checkpoint PATH`` for a trained model; without it a randomly initialised default
``UNet(3, 1)`` is used with ``--image-size`` (default 256)). It measures, side by side:

* end-to-end ``predict`` latency for a 1024×768 JPEG photo read from disk (decode,
  resize, normalise, model, resize back, threshold) — the fast path
  (``precision="auto"``, BatchNorm fused, ``channels_last``) against
  ``precision="fp32", fuse=False, channels_last=False``;
* ``predict_batch`` throughput (images/s) on cat photos of their own sizes, same pair;
* agreement of masks: bf16 against fp32 on the cats-voc val photos, and tiled
  (``tile=(1024, 256)``, the recommended setting, and the smaller ``(512, 128)``) against
  whole-image inference on a 2000×1500 input (fp32, at the
  input's own size). These are the issue #6 acceptance figures (≥ 99.9 % and ≥ 99.5 %)
  when run with a model trained on cats-voc.

* phone-size photos (issue 29): ``predict`` on a photo-like 4000×3000 JPEG and PNG (a
  cats-voc val photo upscaled, with mild sensor-like noise) as a ratio to the model's
  forward at its input size, timed in interleaved rounds, at the default precision and
  at fp32, for a random-init default ``UNet(3, 1)`` at 256² and, with
  ``--photo-checkpoint PATH``, a trained one. Pillow's decode of the file alone (at the
  JPEG draft scale predict uses) is timed in the same rounds: forward + decode is the
  floor no predict path reaches below, and "catseg's own" is what is left of predict;
  and agreement of the masks with the path before issue 29 (full-size decode, resize as
  float), on the val photos and on 10 such large JPEGs, with the val IoU of both paths
  when a checkpoint is given. ``--photos-only`` runs this part alone.

Photos come from ``$CATSEG_SHARED_DATA/cats-voc`` (or ``../shared/data/cats-voc``);
without them, smooth synthetic images are used and the table says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from _common import best_of_interleaved, machine_description, markdown_table, measure
from PIL import Image

from catseg.checkpoint import load_checkpoint
from catseg.data import open_image, read_mask
from catseg.data._inputs import DRAFT
from catseg.data._io import decode
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["_background_", "cat"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def cats_root() -> Path | None:
    env = os.environ.get("CATSEG_SHARED_DATA")
    for base in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (base / "cats-voc" / "JPEGImages").is_dir():
            return base / "cats-voc"
    return None


def val_photos(root: Path | None, n: int) -> list[Image.Image]:
    """Up to ``n`` cats-voc val photos (RGB), or smooth synthetic images without the data."""
    if root is None:
        gen = torch.Generator().manual_seed(0)
        out = []
        for i in range(n):
            h, w = 240 + 7 * i, 320 - 5 * i
            coarse = torch.rand(1, 3, h // 30, w // 30, generator=gen)
            img = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
            out.append(Image.fromarray((img.permute(1, 2, 0) * 255).byte().numpy()))
        return out
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    return [open_image(root / "JPEGImages" / f"{name}.jpg") for name in ids[:n]]


def progress(message: str) -> None:
    print(f"[bench_predict] {message} ...", file=sys.stderr, flush=True)


def agreement(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b, strict=True))
    return same / sum(x.numel() for x in a)


_RANDOM: list[UNet] = []


def random_model() -> UNet:
    """Default UNet(3, 1), random init, head bias shifted so about half the pixels are cats.

    (Uncentred, a random model marks every pixel background and any agreement is 100 %.)
    """
    if not _RANDOM:
        torch.manual_seed(0)
        model = UNet(3, 1).eval()
        x = torch.rand(1, 3, 128, 128)
        with torch.inference_mode():
            median = model((x - 0.45) / 0.225).median()
        with torch.no_grad():
            model.head.bias -= median
        _RANDOM.append(model)
    return _RANDOM[0]


def build(
    args: argparse.Namespace,
    *,
    precision: str = "auto",
    fuse: bool = True,
    channels_last: bool = True,
    tile: tuple[int, int] | None = None,
    full_size: bool = False,
) -> Segmenter:
    """The Segmenter under test: from --checkpoint, else a random-init default UNet."""
    settings: dict[str, Any] = {
        "precision": precision,
        "fuse": fuse,
        "channels_last": channels_last,
        "tile": tile,
        "device": args.device,
        "batch_size": args.batch_size,
    }
    if args.checkpoint is not None:
        model = load_checkpoint(args.checkpoint).build_model()
        if full_size:  # run at the photo's own size whatever the record says
            model.config = dataclasses.replace(model.config, image_size=None)
        return Segmenter(model, **settings)
    size = (args.image_size, args.image_size) if args.image_size > 0 and not full_size else None
    model = random_model().describe(classes=CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    model.config = dataclasses.replace(model.config, image_size=size)  # shared: set each time
    return Segmenter(model, **settings)


def photo_like(photo: Image.Image, seed: int) -> Image.Image:
    """A 4000×3000 phone-size photo: ``photo`` upscaled (bicubic) with mild noise (σ = 3)."""
    big = np.asarray(photo.resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(seed).normal(0.0, 3.0, big.shape).round().astype(np.int16)
    return Image.fromarray((big + noise).clip(0, 255).astype(np.uint8))


def before_issue_29(seg: Segmenter, path: Path) -> torch.Tensor:
    """The mask as the path before issue 29 made it: full decode, float resize in bands."""
    pixels = torch.from_numpy(np.asarray(open_image(path)).copy()).permute(2, 0, 1)
    pipe = seg._pipeline
    with torch.inference_mode():
        probs = pipe.scores(pipe.prepare(pixels.float() / 255.0))
        return pipe.finish(probs, tuple(pixels.shape[1:]), False)[0][0]


def phone_photos(args: argparse.Namespace, root: Path | None) -> None:
    """Issue 29's table: phone-size photos against the forward pass, and agreement."""
    progress("phone-size photos")
    photos = val_photos(root, 10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = []
        for i, photo in enumerate(photos):
            jpegs.append(Path(tmp) / f"big{i}.jpg")
            photo_like(photo, i).save(jpegs[-1], quality=90)
        png = Path(tmp) / "big0.png"
        photo_like(photos[0], 0).save(png)
        random_init = {**vars(args), "checkpoint": None, "image_size": 256}
        models = [("random-init", argparse.Namespace(**random_init))]
        if args.photo_checkpoint is not None:
            trained = argparse.Namespace(**{**vars(args), "checkpoint": args.photo_checkpoint})
            models.append((f"trained ({args.photo_checkpoint.name})", trained))
        for model, model_args in models:
            for precision in ("auto", "fp32"):
                seg = build(model_args, precision=precision)
                x = torch.randn(1, 3, *(seg.image_size or (256, 256)))

                def forward(seg: Segmenter = seg, x: torch.Tensor = x) -> None:
                    with torch.inference_mode():
                        seg._pipeline.backend.forward(x)

                height, width = seg.image_size or (256, 256)
                draft = (DRAFT * height, DRAFT * width)  # the size predict drafts a JPEG to
                fw, *times = best_of_interleaved(
                    forward,
                    functools.partial(seg.predict, jpegs[0]),
                    functools.partial(seg.predict, png),
                    functools.partial(decode, jpegs[0], "jpeg", draft),  # Pillow, as predict
                    functools.partial(decode, png, "png", draft),
                    repeats=7,
                    device=seg._pipeline.backend.device,  # CUDA: synchronised around each call
                )
                name = str(seg.autocast_dtype or torch.float32).removeprefix("torch.")
                for label, path, took, decoding, target in (
                    ("JPEG", jpegs[0], times[0], times[2], 1.35),
                    ("PNG", png, times[1], times[3], 1.6),
                ):
                    rows.append(
                        [
                            f"{label} ({path.stat().st_size / 1e6:.1f} MB), {name}, {model}",
                            fw * 1e3,
                            took * 1e3,
                            decoding * 1e3,
                            (took - fw - decoding) * 1e3,
                            f"{took / fw:.2f}×",
                            f"{(fw + decoding) / fw:.2f}×",
                            f"≤ {target}×",
                        ]
                    )
        seg = build(args, precision="fp32")
        big = agreement(
            [seg.predict(p).mask for p in jpegs], [before_issue_29(seg, p) for p in jpegs]
        )
        val_ids = []
        if root is not None:
            val_ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        files = [root / "JPEGImages" / f"{i}.jpg" for i in val_ids] if root else []
        now = [seg.predict(f).mask for f in files]
        before = [before_issue_29(seg, f) for f in files]
    header = [
        "4000×3000 photo, precision, model",
        "forward, ms",
        "predict, ms",
        "Pillow decode, ms",
        "catseg's own, ms",
        "ratio",
        "floor",
        "target",
    ]
    print(
        "\n#### Phone-size photos (issue 29)\n\nDefault `UNet(3, 1)` at 256², forward, "
        "predict and Pillow's decode of the file alone (at the JPEG draft scale predict "
        "uses) timed in interleaved rounds (best of 7 each). catseg's own = predict − "
        "forward − decode; ratio = predict / forward; floor = (forward + decode) / forward, "
        "the least ratio any path reaches with this decoder on this machine.\n\n"
        f"{markdown_table(header, rows)}\n"
    )
    agree = [["10 photo-like 4000×3000 JPEGs, fp32", f"{100 * big:.3f} %"]]
    if files:
        agree.append(
            [f"{len(files)} cats-voc val photos, fp32", f"{100 * agreement(now, before):.3f} %"]
        )
    if files and args.checkpoint is not None:
        truth = [
            torch.from_numpy(read_mask(root / "SegmentationClassPNG" / f"{i}.png")) for i in val_ids
        ]  # type: ignore[operator]
        for label, masks in (("now", now), ("before issue 29", before)):
            metric = MeanIoU(num_classes=2)
            for mask, target in zip(masks, truth, strict=True):
                metric.update(mask.long()[None], target.long()[None])
            agree.append([f"val mIoU, {label}", f"{float(metric.compute().miou):.4f}"])
    print(
        markdown_table(["masks against the path before issue 29", "pixels agreeing / mIoU"], agree)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (few images, 1 repeat)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained catseg checkpoint")
    parser.add_argument(
        "--image-size", type=int, default=256, help="model input side without --checkpoint"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--photos-only", action="store_true", help="only the phone-size photos")
    parser.add_argument(
        "--photo-checkpoint",
        type=Path,
        default=None,
        help="also time the phone-size photos with this trained 256² model (its masks have "
        "far less boundary than a random model's, and the mask step's time depends on it)",
    )
    args = parser.parse_args()

    quick = args.quick
    root = cats_root()
    if args.photos_only:
        print(f"### Segmenter (`catseg.predict`)\n\n{machine_description()}\n")
        phone_photos(args, root)
        return 0
    fast = build(args)
    plain = build(args, precision="fp32", fuse=False, channels_last=False)
    fp32_fast = build(args, precision="fp32")
    source = "cats-voc val photos" if root is not None else "synthetic images (no cats-voc)"
    model = f"checkpoint {args.checkpoint.name}" if args.checkpoint else "random-init UNet(3, 1)"

    print(f"### Segmenter (`catseg.predict`)\n\n{machine_description()}\n")
    print(
        f"Model: {model}, model input {fast.image_size or 'original size'}; fast path "
        f"precision: {fast.autocast_dtype or 'fp32'}; photos: {source}.\n"
    )

    progress("latency and throughput")
    # 1. end-to-end latency for a 1024x768 photo read from disk
    photos = val_photos(root, 4 if quick else 8)
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        photos[0].resize((1024, 768), Image.Resampling.BICUBIC).save(photo, quality=92)
        repeats = 1 if quick else 3
        t_plain = measure(lambda: plain.predict(photo), warmup=1, repeats=repeats)
        t_fast = measure(lambda: fast.predict(photo), warmup=1, repeats=repeats)
        t_fp32 = measure(lambda: fp32_fast.predict(photo), warmup=1, repeats=repeats)
    # 2. predict_batch throughput
    bs = args.batch_size
    b_plain = measure(lambda: plain.predict_batch(photos), warmup=1, repeats=1 if quick else 2)
    b_fast = measure(lambda: fast.predict_batch(photos), warmup=1, repeats=1 if quick else 2)
    n = len(photos)
    rows = [
        [
            "predict 1024×768 JPEG, ms",
            t_plain.best * 1e3,
            t_fp32.best * 1e3,
            t_fast.best * 1e3,
            t_plain.best / t_fast.best,
        ],
        [
            f"predict_batch {n} photos (batch {bs}), img/s",
            b_plain.per_second(n),
            "—",
            b_fast.per_second(n),
            b_plain.best / b_fast.best,
        ],
    ]
    print(
        markdown_table(
            [
                "measure",
                "fp32, no fusion, NCHW",
                "fp32 fused channels_last",
                "fast path (default)",
                "speed-up (plain / fast)",
            ],
            rows,
        )
    )

    # 3. agreement: bf16 vs fp32 on val photos; tiled vs whole at 2000x1500
    progress("bf16 vs fp32 agreement")
    bf16 = build(args, precision="bf16")
    val = val_photos(root, 8 if quick else 44)
    masks_fp32 = [p.mask for p in fp32_fast.predict_batch(val)]
    masks_bf16 = [p.mask for p in bf16.predict_batch(val)]
    big_n = 1
    big = [np.asarray(v.resize((2000, 1500), Image.Resampling.BICUBIC)) for v in val[:big_n]]
    progress("tiled vs whole at 2000x1500")
    whole = build(args, precision="fp32", full_size=True)
    masks_whole = [whole.predict(b).mask for b in big]
    tilings = [(1024, 256), (512, 128)]
    tiled_agreement = []
    for tile in tilings:
        tiled = build(args, precision="fp32", full_size=True, tile=tile)
        tiled_agreement.append(agreement([tiled.predict(b).mask for b in big], masks_whole))
    fg = sum(float(m.float().mean()) for m in masks_fp32) / len(masks_fp32)
    print()
    print(
        markdown_table(
            ["mask agreement", "pixels agreeing", "target", "images"],
            [
                [
                    "bf16 vs fp32",
                    f"{100 * agreement(masks_bf16, masks_fp32):.3f} %",
                    "≥ 99.9 %",
                    f"{len(val)} ({source}), foreground {100 * fg:.1f} %",
                ],
                *(
                    [
                        f"tiled {tile} vs whole, 2000×1500 fp32",
                        f"{100 * agreed:.3f} %",
                        "≥ 99.5 %" if tile == tilings[0] else "",
                        str(big_n),
                    ]
                    for tile, agreed in zip(tilings, tiled_agreement, strict=True)
                ),
            ],
        )
    )
    if args.checkpoint is None:
        print("\n(Random-init model: agreement figures are indicative only; pass --checkpoint.)")
    phone_photos(args, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
