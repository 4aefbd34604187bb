"""Make docs/images/labelling.png: a photo, its labelme pre-annotation, its uncertainty map.

Run from the repository root: ``python docs/make_labelling_figure.py`` (about a minute
on one CPU core). It trains a small UNet on 25 cats-voc train photos (the first round of
the labelling guide), then for two val photos draws: the photo, the polygons that
``Prediction.to_labelme`` writes (read back from the JSON, outlined over the photo) and
the per-pixel ``Prediction.uncertainty()`` map (dark: sure, bright: unsure); it prints
each photo's score (the map's mean).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageOps
from torch.utils.data import DataLoader, Subset

from catseg.data import VOCSegmentationDataset
from catseg.data.transforms import RandomHorizontalFlip
from catseg.losses import BCEDiceLoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit

DATA = Path(os.environ.get("CATSEG_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
OUT = Path(__file__).parent / "images" / "labelling.png"
PHOTOS = ["Abyssinian_116", "Abyssinian_139"]  # val photos
SIZE = 180  # height of a tile


def draw_shapes(photo: Image.Image, doc: dict[str, object]) -> Image.Image:
    """The JSON's polygons over the photo: translucent fill, outline, corner dots."""
    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for shape in doc["shapes"]:  # type: ignore[attr-defined]
        points = [tuple(p) for p in shape["points"]]
        cat = shape["label"] == "cat"
        draw.polygon(points, fill=(0, 200, 0, 70) if cat else (0, 0, 0, 0), outline=(255, 255, 0))
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(255, 60, 60))
    return Image.alpha_composite(photo.convert("RGBA"), layer).convert("RGB")


def main() -> None:
    cats = DATA / "cats-voc"
    work = Path(tempfile.mkdtemp())
    train = VOCSegmentationDataset(
        cats,
        "train",
        image_size=128,
        transforms=RandomHorizontalFlip(seed=0),
        cache=True,
        image_dtype="uint8",
    )
    torch.manual_seed(0)
    model = UNet(num_classes=1, init_features=8, depth=3)
    fit(
        model,
        DataLoader(Subset(train, range(25)), batch_size=8, shuffle=True),
        loss_fn=BCEDiceLoss(),
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        epochs=20,
        run=RunOptions(seed=0, precision="fp32"),
        progress=False,
    )
    seg = Segmenter(model, classes=["_background_", "cat"], precision="fp32")
    rows = []
    for name in PHOTOS:
        photo_path = cats / "JPEGImages" / f"{name}.jpg"
        pred = seg.predict(photo_path, return_probabilities=True)
        out = pred.to_labelme(work / f"{name}.json", image_path=photo_path)
        doc = json.loads(out.read_text(encoding="utf-8"))
        doubt = pred.uncertainty()
        points = sum(len(s["points"]) for s in doc["shapes"])
        print(name, "score", round(float(doubt.mean()), 3), "polygon points", points)
        heat = Image.fromarray((doubt * 255).round().byte().numpy(), "L")
        heat = ImageOps.colorize(heat, black="#10103a", mid="#c03a76", white="#ffe34d")
        photo = pred.image.convert("RGB")  # type: ignore[union-attr]
        rows.append([photo, draw_shapes(photo, doc), heat])
    width = max(sum(round(t.width * SIZE / t.height) + 10 for t in tiles) for tiles in rows)
    sheet = Image.new("RGB", (width - 10, len(rows) * (SIZE + 10) - 10), (255, 255, 255))
    for r, tiles in enumerate(rows):
        x = 0
        for tile in tiles:
            w = round(tile.width * SIZE / tile.height)
            sheet.paste(tile.resize((w, SIZE), Image.Resampling.LANCZOS), (x, r * (SIZE + 10)))
            x += w + 10
    OUT.parent.mkdir(exist_ok=True)
    sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)  # < 300 KB
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
