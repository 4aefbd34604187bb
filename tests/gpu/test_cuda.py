"""CUDA behaviour: the same answers on the GPU as on the CPU, in every precision.

These run only where a CUDA GPU is visible (``@pytest.mark.gpu``, skipped elsewhere by
``tests/conftest.py``); ``benchmarks/gpu_checks.py`` runs them on a lent GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from catseg import DiceLoss, MeanIoU, Segmenter, UNet, VOCSegmentationDataset, fit
from catseg.checkpoint import load_checkpoint
from catseg.data import make_synthetic_voc
from catseg.training import RunOptions

pytestmark = pytest.mark.gpu


def _model(num_classes: int = 2) -> UNet:
    torch.manual_seed(0)
    return UNet(3, num_classes, init_features=8, depth=3).eval()


def _images(n: int = 4, size: int = 96) -> list[np.ndarray]:
    gen = np.random.default_rng(0)
    return [gen.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_segmenter_fp32_on_cuda_matches_cpu() -> None:
    model = _model()
    kwargs = {"classes": ["bg", "fg"], "precision": "fp32", "image_size": (96, 96)}
    cpu = Segmenter(model, device="cpu", **kwargs)  # type: ignore[arg-type]
    gpu = Segmenter(_model(), device="cuda", **kwargs)  # type: ignore[arg-type]
    for a, b in zip(
        cpu.predict_batch(_images(), return_probabilities=True),
        gpu.predict_batch(_images(), return_probabilities=True),
        strict=True,
    ):
        assert a.probabilities is not None
        assert b.probabilities is not None
        assert b.probabilities.device.type == "cpu"  # results come back to the host
        torch.testing.assert_close(b.probabilities, a.probabilities, atol=1e-4, rtol=0)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "auto"])
def test_segmenter_reduced_precision_agrees_with_fp32(precision: str) -> None:
    ref = Segmenter(_model(), classes=["bg", "fg"], device="cuda", precision="fp32")
    low = Segmenter(
        _model(),
        classes=["bg", "fg"],
        device="cuda",
        precision=precision,  # type: ignore[arg-type]
    )
    if precision == "auto":
        assert low.autocast_dtype == torch.bfloat16  # every CUDA GPU we support has bf16
    masks_ref = [p.mask for p in ref.predict_batch(_images())]
    masks_low = [p.mask for p in low.predict_batch(_images())]
    agree = np.mean(
        [float((a == b).float().mean()) for a, b in zip(masks_ref, masks_low, strict=False)]
    )
    assert agree >= 0.99


def test_dice_and_miou_on_cuda_equal_cpu() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 32, 32, generator=gen)
    target = torch.randint(0, 3, (2, 32, 32), generator=gen)
    target[:, :2] = 255
    loss = DiceLoss(mode="multiclass")
    torch.testing.assert_close(loss(logits.cuda(), target.cuda()).cpu(), loss(logits, target))
    a, b = MeanIoU(3), MeanIoU(3)
    a.update(logits, target)
    b.update(logits.cuda(), target.cuda())
    ra, rb = a.compute(), b.compute()
    assert torch.equal(ra.confusion.cpu(), rb.confusion.cpu())
    assert abs(ra.miou - rb.miou) < 1e-7


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_fit_on_cuda_trains_and_saves_a_cpu_loadable_checkpoint(
    tmp_path: Path, precision: str
) -> None:
    root = make_synthetic_voc(tmp_path / "voc", n=32, size=48)
    train = VOCSegmentationDataset(root, "train", image_dtype="uint8", cache=True)
    val = VOCSegmentationDataset(root, "val", image_dtype="uint8", cache=True)
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=8, depth=3)
    history = fit(
        model,
        DataLoader(train, batch_size=8, shuffle=True),
        val_loader=DataLoader(val, batch_size=8),
        loss_fn=DiceLoss(),
        epochs=3,
        run=RunOptions(device="cuda", precision=precision),  # type: ignore[arg-type]
        checkpoint_dir=tmp_path / "ckpt",
        progress=False,
    )
    assert history.device.startswith("cuda")
    assert history.precision == precision
    losses = [r.train_loss for r in history.records]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    state = load_checkpoint(tmp_path / "ckpt" / "last.pt", map_location="cpu")
    assert state is not None
