"""Generate the pictures of the catseg docs (``docs/images/*.png``) from real runs.

Nothing here is drawn by hand: every mask comes from a model trained by catseg, and
the chart is drawn from the tables ``benchmarks/run_all.py`` writes into
``docs/benchmarks.md``.

Figures:

* ``quickstart-overlay.png`` — ``examples/quickstart.py`` run as a user runs it (a
  small UNet trained for about a minute on synthetic blobs): the held-out image, its
  ground truth, and the ``mask.png`` and ``overlay.png`` the script writes.
* ``home-overlay.png`` — one held-out cat photo and the prediction of a cats model
  blended over it: the val photo whose IoU is the median of the val split (a typical
  result, not the best one).
* ``cats-grid.png`` — eight val cats evenly spaced through the val list (not picked by
  hand): ground truth above, prediction below, each with its IoU, and the IoU over all
  val pixels in the title.
* ``benchmarks.png`` — one bar panel per benchmark table that has a ratio column
  (``× ...``, ``speed-up``, a header starting ``vs ...``), with 1× marked.

Usage::

    python docs/make_figures.py --checkpoint cats.pt    # a trained cats model, e.g. from
                                                        # benchmarks/quality_cats.py --save cats.pt
    python docs/make_figures.py                         # no checkpoint: trains a small cats
                                                        # model first (--train-minutes, default 5)
    python docs/make_figures.py --only chart            # just the benchmark chart
    python docs/make_figures.py --only quickstart home grid

The cats data is ``--data``, else ``$CATSEG_SHARED_DATA/cats-voc``, else
``../shared/data/cats-voc`` beside the repository. Needs only catseg's own dependencies
(torch, numpy, Pillow).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.data import VOCSegmentationDataset, make_synthetic_voc, open_image, read_mask
from catseg.data.transforms import Compose, RandomHorizontalFlip, RandomResizedCrop
from catseg.losses import DiceLoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import EpochRecord, RunOptions, fit
from catseg.visualize import overlay

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IMAGES = HERE / "images"
MAX_BYTES = 300_000
FIGURES = ("quickstart", "home", "grid", "chart")
WHITE = (255, 255, 255)
INK = (33, 33, 33)
GREEN = (46, 125, 50)
GREY = (158, 158, 158)


# ----------------------------------------------------------------------------- helpers
FONT_FILES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "Arial.ttf")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (has ×, ², …) at ``size`` pixels, else Pillow's bundled font."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def save_png(image: Image.Image, path: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Save an optimised PNG under ``max_bytes``: quantise to 256 colours, then shrink."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    candidate = image
    while path.stat().st_size > max_bytes:
        if candidate.mode != "P":
            candidate = candidate.convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
        else:
            w, h = candidate.size
            candidate = (
                image.convert("RGB")
                .resize((int(w * 0.85), int(h * 0.85)), Image.Resampling.LANCZOS)
                .quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
            )
            image = image.resize(candidate.size, Image.Resampling.LANCZOS)
        candidate.save(path, optimize=True)
    print(
        f"wrote {path.relative_to(REPO)} ({candidate.width}×{candidate.height}, "
        f"{path.stat().st_size / 1000:.0f} kB)"
    )
    return path


def to_height(image: Image.Image, height: int) -> Image.Image:
    """Resize keeping the aspect ratio."""
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def boxed(image: Image.Image, width: int, height: int) -> Image.Image:
    """The image scaled to fit a ``width × height`` box, centred on white."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    out = Image.new("RGB", (width, height), WHITE)
    out.paste(
        image.resize(size, Image.Resampling.LANCZOS),
        ((width - size[0]) // 2, (height - size[1]) // 2),
    )
    return out


def caption(image: Image.Image, text: str, size: int = 15) -> Image.Image:
    """The image with a line of text on a white band below it (widened to fit the text)."""
    band = size + 10
    face = font(size)
    text_width = round(ImageDraw.Draw(image).textlength(text, font=face)) + 8
    out = Image.new("RGB", (max(image.width, text_width), image.height + band), WHITE)
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 4), text, fill=INK, font=face)
    return out


def hstack(images: Sequence[Image.Image], gap: int = 6) -> Image.Image:
    """Images side by side, top-aligned, on white."""
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(i.height for i in images)), WHITE)
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width + gap
    return out


def vstack(images: Sequence[Image.Image], gap: int = 6) -> Image.Image:
    """Images one above the other, left-aligned, on white."""
    height = sum(i.height for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (max(i.width for i in images), height), WHITE)
    y = 0
    for image in images:
        out.paste(image, (0, y))
        y += image.height + gap
    return out


def title(image: Image.Image, text: str, size: int = 18) -> Image.Image:
    """The image under a title line."""
    band = size + 14
    out = Image.new("RGB", (image.width, image.height + band), WHITE)
    ImageDraw.Draw(out).text((6, 6), text, fill=INK, font=font(size))
    out.paste(image, (0, band))
    return out


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of label 1 over the pixels whose truth is not 255 (NaN if both are empty)."""
    valid = truth != 255
    p = (pred == 1) & valid
    t = (truth == 1) & valid
    union = int((p | t).sum())
    return float("nan") if union == 0 else int((p & t).sum()) / union


def default_data() -> Path:
    env = os.environ.get("CATSEG_SHARED_DATA")
    if env:
        return Path(env) / "cats-voc"
    return REPO.parent / "shared" / "data" / "cats-voc"


# ----------------------------------------------------------------------------- training
def train_model(
    root: Path, *, size: int, width: int, depth: int, minutes: float, lr: float, seed: int
) -> tuple[UNet, list[str]]:
    """Train a binary UNet on ``root``'s train split until ``minutes`` have passed.

    Images are decoded at ``size`` and cached as uint8; random resized crops and flips;
    AdamW with a cosine decay laid over the time budget; Dice loss; the fast path.
    """
    torch.manual_seed(seed)
    augment = Compose([RandomResizedCrop(size, scale=(0.5, 1.0)), RandomHorizontalFlip()])
    train = VOCSegmentationDataset(
        root, "train", image_size=size, transforms=augment, cache=True, image_dtype="uint8"
    )
    loader = DataLoader(train, batch_size=8, shuffle=True, drop_last=True)
    model = UNet(num_classes=1, init_features=width, depth=depth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    budget = minutes * 60
    start = time.perf_counter()

    def progress() -> float:
        return min(1.0, (time.perf_counter() - start) / budget)

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda _: 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress()))
    )

    def stop(record: EpochRecord) -> bool:
        print(f"  epoch {record.epoch}: loss {record.train_loss:.3f}", flush=True)
        return progress() >= 1.0

    fit(
        model,
        loader,
        loss_fn=DiceLoss(),
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=100_000,  # the time budget ends training
        run=RunOptions(seed=seed, scheduler_interval="step"),
        callbacks=[stop],
        progress=False,
    )
    return model, list(train.class_names)


def cats_checkpoint(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    """``--checkpoint`` if given, else a freshly trained small cats model; and a label."""
    if args.checkpoint is not None:
        path = Path(args.checkpoint)
        recipe = load_checkpoint(path).extra.get("recipe")
        return path, f"model {path.name}" + (f" (recipe {recipe})" if recipe else "")
    print(f"no --checkpoint: training a cats model for {args.train_minutes:g} min", flush=True)
    size = args.train_size
    model, classes = train_model(
        args.data, size=size, width=16, depth=4, minutes=args.train_minutes, lr=3e-3, seed=0
    )
    path = workdir / "cats.pt"
    model.describe(classes=classes, image_size=(size, size))  # fit recorded them already
    save_checkpoint(path, model, extra={"made_by": "docs/make_figures.py"})
    return path, f"model trained by make_figures.py for {args.train_minutes:g} min"


# ----------------------------------------------------------------------------- figures
def quickstart_figure(workdir: Path, seconds: float) -> None:
    """The quickstart's own output: ``examples/quickstart.py`` run as a user runs it.

    Its ``mask.png`` and ``overlay.png`` are shown beside the input image and its ground
    truth (the quickstart's synthetic dataset is deterministic, so it is rebuilt here to
    get them). Without the example script, a small model is trained here instead and four
    held-out images are shown.
    """
    script = REPO / "examples" / "quickstart.py"
    if not script.is_file():
        quickstart_fallback(workdir, seconds)
        return
    out = workdir / "quickstart"
    print(f"quickstart: running {script.relative_to(REPO)}", flush=True)
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        cwd=workdir, capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    name = re.findall(r"for (\S+?)\.jpg", text)[-1]
    miou = re.findall(r"val mIoU ([0-9.]+)", text)[-1]
    root = make_synthetic_voc(workdir / "synthetic", n=96, size=64, seed=0)  # as the script
    photo = open_image(root / "JPEGImages" / f"{name}.jpg")
    truth = read_mask(root / "SegmentationClassPNG" / f"{name}.png")
    scale = 4

    def big(image: Image.Image) -> Image.Image:
        return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)

    cells = [
        caption(big(photo), f"{name}.jpg (held out)", 13),
        caption(big(overlay(photo, truth, alpha=0.4, palette="binary")), "ground truth", 13),
        caption(big(Image.open(out / "mask.png").convert("RGB")), "mask.png", 13),
        caption(big(Image.open(out / "overlay.png").convert("RGB")), "overlay.png", 13),
    ]
    figure = title(hstack(cells, gap=10), f"python examples/quickstart.py — val mIoU {miou}", 16)
    save_png(figure, IMAGES / "quickstart-overlay.png")


def quickstart_fallback(workdir: Path, seconds: float) -> None:
    """Synthetic blobs: image / ground truth / prediction for four held-out images."""
    root = make_synthetic_voc(workdir / "synthetic", n=96, size=64, seed=0)
    print(f"quickstart: training on synthetic blobs for {seconds:g} s", flush=True)
    model, classes = train_model(
        root, size=64, width=8, depth=3, minutes=seconds / 60, lr=5e-3, seed=0
    )
    segmenter = Segmenter(model, classes=classes)
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:4]
    columns = []
    for name in ids:
        photo = open_image(root / "JPEGImages" / f"{name}.jpg")
        truth = read_mask(root / "SegmentationClassPNG" / f"{name}.png")
        pred = segmenter.predict(photo)
        iou = foreground_iou(pred.mask.numpy(), truth)
        cells = [
            caption(to_height(photo, 160), "image", 13),
            caption(to_height(overlay(photo, truth, palette="binary"), 160), "ground truth", 13),
            caption(to_height(pred.overlay(alpha=0.3), 160), f"prediction, IoU {iou:.2f}", 13),
        ]
        columns.append(vstack(cells, gap=2))
    figure = title(hstack(columns, gap=10), "Quickstart: held-out synthetic images", 16)
    save_png(figure, IMAGES / "quickstart-overlay.png")


@dataclass(frozen=True)
class CatResult:
    name: str
    photo: Image.Image
    truth: np.ndarray
    pred: np.ndarray
    iou: float


def predict_val(checkpoint: Path, root: Path) -> tuple[list[CatResult], float, str]:
    """Predictions for every val photo, and the IoU over all val pixels.

    The foreground is the data's class 1 (``cat``); a checkpoint with other classes
    (e.g. the 21 VOC classes) is scored on its class of the same name (else its class 1).
    """
    segmenter = Segmenter.from_checkpoint(checkpoint)
    names = [n.strip() for n in (root / "class_names.txt").read_text("utf-8").splitlines()]
    wanted = names[1] if len(names) > 1 else "cat"
    fg = segmenter.classes.index(wanted) if wanted in segmenter.classes else 1
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    results, inter, union = [], 0, 0
    for name in ids:
        photo = open_image(root / "JPEGImages" / f"{name}.jpg")
        truth = read_mask(root / "SegmentationClassPNG" / f"{name}.png")
        pred = (segmenter.predict(photo).mask.numpy() == fg).astype(np.uint8)
        valid = truth != 255
        inter += int(((pred == 1) & (truth == 1) & valid).sum())
        union += int((((pred == 1) | (truth == 1)) & valid).sum())
        results.append(CatResult(name, photo, truth, pred, foreground_iou(pred, truth)))
    return results, inter / max(union, 1), segmenter.classes[fg]


def home_figure(results: Sequence[CatResult]) -> None:
    """The val photo of median IoU: the photo and the prediction over it."""
    ious = [r.iou for r in results if r.iou == r.iou]
    median = statistics.median(ious)
    typical = min(results, key=lambda r: abs(r.iou - median) if r.iou == r.iou else 9.0)
    photo = to_height(typical.photo, 260)
    blended = to_height(overlay(typical.photo, typical.pred, alpha=0.3, palette="binary"), 260)
    figure = hstack(
        [caption(photo, typical.name), caption(blended, f"prediction, IoU {typical.iou:.2f}")]
    )
    save_png(figure, IMAGES / "home-overlay.png")


def grid_figure(results: Sequence[CatResult], overall: float, model: str) -> None:
    """Eight val cats evenly spaced through the list: truth above, prediction below."""
    count = min(8, len(results))
    picks = [results[round(i * (len(results) - 1) / max(count - 1, 1))] for i in range(count)]
    columns = []
    for r in picks:
        truth = boxed(overlay(r.photo, r.truth, alpha=0.4, palette="binary"), 180, 140)
        pred = boxed(overlay(r.photo, r.pred, alpha=0.4, palette="binary"), 180, 140)
        cells = [
            caption(truth, f"{r.name}: ground truth", 12),
            caption(pred, f"prediction, IoU {r.iou:.2f}", 12),
        ]
        columns.append(vstack(cells, gap=2))
    rows = (
        [hstack(columns[:4], gap=8), hstack(columns[4:], gap=8)]
        if count > 4
        else [hstack(columns, gap=8)]
    )
    text = (
        f"Held-out cats (val split): IoU over all {len(results)} val photos {overall:.3f} — {model}"
    )
    save_png(title(vstack(rows, gap=10), text, 16), IMAGES / "cats-grid.png")


# ----------------------------------------------------------------------------- chart
RATIO_HEADER = re.compile(r"×|speed-up|^vs\b", re.IGNORECASE)
NUMBER = re.compile(r"^\s*([0-9][0-9,]*\.?[0-9]*)\s*[×x]?\s*$")


@dataclass(frozen=True)
class Panel:
    section: str
    column: str
    bars: list[tuple[str, float]]


def parse_tables(markdown: str) -> list[Panel]:
    """Ratio columns of the markdown tables, one panel per table, under their ``##`` section."""
    panels: list[Panel] = []
    section = ""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("## "):
            section = line[3:].strip()
        is_table = (
            line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: ")
        )
        if not is_table:
            i += 1
            continue
        headers = [c.strip() for c in line.strip("|").split("|")]
        rows = []
        i += 2
        while i < len(lines) and lines[i].strip().startswith("|"):
            rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
            i += 1
        ratio_cols = [j for j, h in enumerate(headers) if RATIO_HEADER.search(h)]
        if not ratio_cols:
            continue
        j = ratio_cols[0]
        text_cols = [
            k for k in range(len(headers)) if k != j and rows and not NUMBER.match(rows[0][k])
        ][:2]
        bars = []
        for row in rows:
            match = NUMBER.match(row[j]) if len(row) > j else None
            if match:
                label = " · ".join(row[k] for k in text_cols if k < len(row))
                bars.append((label, float(match.group(1).replace(",", ""))))
        if bars:
            panels.append(Panel(section, headers[j], bars))
    return panels


def draw_panel(panel: Panel, width: int = 900) -> Image.Image:
    """Horizontal bars of one ratio column with the 1× line."""
    bar_h, gap, label_w, top = 24, 8, 330, 40
    height = top + len(panel.bars) * (bar_h + gap) + 10
    out = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(out)
    draw.text((8, 8), f"{panel.section}: {panel.column}", fill=INK, font=font(17))
    vmax = max(max(v for _, v in panel.bars), 1.0) * 1.12
    plot_w = width - label_w - 20

    def x_of(value: float) -> int:
        return label_w + round(plot_w * value / vmax)

    for n, (label, value) in enumerate(panel.bars):
        y = top + n * (bar_h + gap)
        shown = label if len(label) <= 44 else label[:43] + "…"
        draw.text((8, y + 4), shown, fill=INK, font=font(14))
        colour = GREEN if value > 1.005 else GREY
        draw.rectangle([label_w, y, x_of(value), y + bar_h], fill=colour)
        draw.text((x_of(value) + 6, y + 4), f"{value:.2f}×", fill=INK, font=font(14))
    one = x_of(1.0)
    draw.line([one, top - 4, one, height - 6], fill=INK, width=1)
    return out


def chart_figure(benchmarks: Path) -> None:
    """All ratio panels of ``benchmarks`` stacked into ``benchmarks.png``."""
    if not benchmarks.is_file():
        print(f"chart: {benchmarks} does not exist (run benchmarks/run_all.py first); skipped")
        return
    panels = parse_tables(benchmarks.read_text(encoding="utf-8"))
    if not panels:
        print(f"chart: no table with a ratio column in {benchmarks}; skipped")
        return
    figure = title(
        vstack([draw_panel(p) for p in panels], gap=12),
        f"Measured side by side in one run ({benchmarks.name}); "
        "green: faster than the baseline (1×, grey)",
        16,
    )
    save_png(figure, IMAGES / "benchmarks.png")


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained cats model")
    parser.add_argument("--data", type=Path, default=default_data(), help="cats VOC folder")
    parser.add_argument(
        "--train-minutes", type=float, default=5.0, help="training budget without --checkpoint"
    )
    parser.add_argument("--train-size", type=int, default=128, help="training size (square)")
    parser.add_argument("--quickstart-seconds", type=float, default=60.0)
    parser.add_argument("--benchmarks", type=Path, default=HERE / "benchmarks.md")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "chart" in args.only:
            chart_figure(args.benchmarks)
        if "quickstart" in args.only:
            quickstart_figure(workdir, args.quickstart_seconds)
        if {"home", "grid"} & set(args.only):
            checkpoint, label = cats_checkpoint(args, workdir)
            results, overall, name = predict_val(checkpoint, args.data)
            print(f"val {name} IoU over all pixels: {overall:.4f} ({len(results)} photos)")
            if "home" in args.only:
                home_figure(results)
            if "grid" in args.only:
                grid_figure(results, overall, label)


if __name__ == "__main__":
    main()
