"""Acceptance: a multilabel model trains with ``fit`` and reloads into a Segmenter."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.data.multilabel import VOCMultilabelDataset, make_synthetic_multilabel
from catseg.losses import DiceCELoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit
from catseg.training._data import read_data_facts
from catseg.training._fit import _default_metric

# Measured on the CPU (seed 0, fp32, this exact set-up): best val mIoU 0.98 in 10 epochs
# (0.0 after the first). The guide documents it; asserted with a margin.
MIN_MIOU = 0.75


def test_fit_multilabel_reaches_documented_miou_and_reloads(tmp_path: Path) -> None:
    root = make_synthetic_multilabel(tmp_path / "data", n=32, size=32, seed=0)
    train_set = VOCMultilabelDataset(root, "train")
    train = DataLoader(
        train_set, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = DataLoader(VOCMultilabelDataset(root, "val"), batch_size=8)
    model = UNet(3, 2, init_features=8, depth=2)
    history = fit(
        model,
        train,
        loss_fn=DiceCELoss(mode="multilabel"),
        epochs=10,
        val_loader=val,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        checkpoint_dir=tmp_path / "run",
        run=RunOptions(device="cpu", seed=0, precision="fp32"),
        progress=False,
    )
    assert max(history.val_miou) >= MIN_MIOU, history.val_miou

    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt.config.mode == "multilabel"
    assert ckpt.config.classes == ("disc", "bar")
    assert model.config == ckpt.config
    seg = Segmenter.from_checkpoint(tmp_path / "run" / "best.pt", precision="fp32")
    assert seg.mode == "multilabel"
    image, target = VOCMultilabelDataset(root, "val")[0]
    pred = seg.predict(image)
    assert pred.layers.shape == (2, 32, 32)
    assert pred.layers.dtype == torch.bool
    assert pred.mask is pred.layers
    known = target != 255
    agree = (pred.layers == (target == 1))[known].float().mean().item()
    assert agree > 0.9


def test_default_metric_follows_the_mode() -> None:
    multilabel = _default_metric(UNet(3, 3, init_features=4, depth=2).describe(mode="multilabel"))
    assert (type(multilabel), multilabel.mode, multilabel.num_classes) == (MeanIoU, "multilabel", 3)
    assert _default_metric(UNet(3, 3, init_features=4, depth=2)).mode == "multiclass"
    assert _default_metric(UNet(3, 1, init_features=4, depth=2)).num_classes == 2


def test_the_mode_is_read_from_the_dataset(tmp_path: Path) -> None:
    root = make_synthetic_multilabel(tmp_path / "data", n=4, size=32)
    facts = read_data_facts(VOCMultilabelDataset(root))
    assert (facts.mode, facts.classes) == ("multilabel", ("disc", "bar"))
    subset = torch.utils.data.Subset(VOCMultilabelDataset(root), [0, 1])
    assert read_data_facts(subset).mode == "multilabel"
    assert read_data_facts(object()).mode is None


def test_single_label_multilabel_checkpoint_round_trip(tmp_path: Path) -> None:
    """K = 1 multilabel saves one label name (binary needs two) and reloads as multilabel."""
    model = UNet(3, 1, init_features=4, depth=2)
    model.describe(classes=["cloud"], mode="multilabel")
    path = save_checkpoint(tmp_path / "one.pt", model)
    seg = Segmenter.from_checkpoint(path, precision="fp32")
    assert seg.mode == "multilabel"
    assert seg.predict(torch.rand(3, 20, 24)).layers.shape == (1, 20, 24)


def test_binary_checkpoint_mode_is_inferred(tmp_path: Path) -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    path = save_checkpoint(tmp_path / "b.pt", model.describe(classes=["bg", "cat"]))
    assert load_checkpoint(path).config.mode == "binary"
    assert Segmenter.from_checkpoint(path).predict(torch.rand(3, 8, 8)).mask.shape == (8, 8)
