"""Make docs/images/multilabel-overlay.png from a real multilabel run (about a minute on a CPU).

Run from the repository root: ``python docs/make_multilabel_figure.py``. It trains a small
UNet with ``fit`` on :func:`catseg.data.multilabel.make_synthetic_multilabel`, reloads
``best.pt`` into a Segmenter and draws, for three validation images: the photo, the
ground-truth layers and the predicted layers (overlaps in a mixed colour).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from catseg.data.multilabel import VOCMultilabelDataset, make_synthetic_multilabel
from catseg.losses import DiceCELoss
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit
from catseg.visualize import colorize_layers

OUT = Path(__file__).parent / "images" / "multilabel-overlay.png"


def main() -> None:
    work = Path(tempfile.mkdtemp())
    root = make_synthetic_multilabel(work / "data", n=48, size=64, seed=0)
    train = DataLoader(
        VOCMultilabelDataset(root, "train"),
        batch_size=8,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val_set = VOCMultilabelDataset(root, "val")
    model = UNet(3, 2, init_features=8, depth=2)
    history = fit(
        model,
        train,
        loss_fn=DiceCELoss(mode="multilabel"),
        epochs=15,
        val_loader=DataLoader(val_set, batch_size=8),
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        checkpoint_dir=work / "run",
        run=RunOptions(device="cpu", seed=0, precision="fp32"),
        progress=False,
    )
    print("val mIoU per epoch:", [round(v, 3) for v in history.val_miou])
    seg = Segmenter.from_checkpoint(work / "run" / "best.pt", precision="fp32")
    rows = []
    for index in range(3):
        image, target = val_set[index]
        pred = seg.predict(image)
        photo = Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())
        truth = colorize_layers(target == 1)
        tiles = [photo, pred.overlay(alpha=0.6), truth, pred.colorize()]
        rows.append(tiles)
    size = 128
    sheet = Image.new("RGB", (4 * size + 30, 3 * size + 20), (255, 255, 255))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            sheet.paste(
                tile.resize((size, size), Image.Resampling.NEAREST),
                (c * (size + 10), r * (size + 10)),
            )
    OUT.parent.mkdir(exist_ok=True)
    sheet.save(OUT, optimize=True)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
