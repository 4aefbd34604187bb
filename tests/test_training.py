"""catseg.training: fit on the synthetic data, resume, fault tolerance, NaN stop, fast path."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryJaccardIndex

import catseg._runtime
from catseg.checkpoint import load_checkpoint
from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DTypeError,
    NonFiniteError,
    ShapeError,
)
from catseg.losses import DiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.training import (
    CheckpointMeta,
    EpochRecord,
    History,
    evaluate,
    fit,
    train_one_epoch,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny models train fastest on one thread, and a busy 2-core machine makes a second
    # spinning OpenMP thread very costly
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_voc(tmp_path_factory.mktemp("synthetic"), n=64, size=32, seed=0)


@pytest.fixture(scope="module")
def train_set(synthetic_root: Path) -> VOCSegmentationDataset:
    return VOCSegmentationDataset(synthetic_root, "train", image_dtype="uint8", cache=True)


@pytest.fixture(scope="module")
def val_set(synthetic_root: Path) -> VOCSegmentationDataset:
    return VOCSegmentationDataset(synthetic_root, "val", image_dtype="uint8", cache=True)


def small_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(num_classes=1, init_features=8, depth=2)


def loaders(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset
) -> tuple[DataLoader[tuple[Tensor, Tensor]], DataLoader[tuple[Tensor, Tensor]]]:
    return DataLoader(train_set, batch_size=8, shuffle=True), DataLoader(val_set, batch_size=16)


def reference_iou(model: nn.Module, dataset: VOCSegmentationDataset) -> float:
    """Foreground IoU of ``model`` on ``dataset`` by torchmetrics, in fp32 NCHW."""
    jaccard = BinaryJaccardIndex(ignore_index=255)
    model = model.eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    with torch.no_grad():
        for index in range(len(dataset)):
            image, mask = dataset[index]
            logits = model(image[None].float() / 255)
            jaccard.update((logits[:, 0] > 0).long(), mask[None])
    return float(jaccard.compute())


# --- fit ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_reaches_high_miou_and_writes_checkpoints(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    model = small_unet()
    train, val = loaders(train_set, val_set)
    history = fit(
        model, train, loss_fn=DiceLoss(), epochs=12, val_loader=val,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        checkpoint_dir=tmp_path, precision="fp32", seed=0, progress=False,
    )  # fmt: skip
    assert history.epochs == list(range(1, 13))
    assert history.best_val_miou is not None
    assert history.best_val_miou >= 0.9
    assert history.train_loss[-1] < history.train_loss[0]
    assert all(r.images_per_second > 0 and r.seconds > 0 for r in history.records)
    assert (history.precision, history.device, history.world_size) == ("fp32", "cpu", 1)

    # the reported mIoU is the foreground IoU as torchmetrics computes it (255 ignored)
    last = load_checkpoint(tmp_path / "last.pt")
    assert history.val_miou[-1] == pytest.approx(reference_iou(last.build_model(), val_set))

    # best.pt holds the best epoch, with the dataset's metadata for Segmenter
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.extra["epoch"] == history.best_epoch
    assert best.extra["val_miou"] == pytest.approx(history.best_val_miou)
    assert best.training_state is None
    assert best.classes == ["_background_", "blob"]
    assert best.image_size is None
    assert (tuple(best.mean), tuple(best.std)) == ((0.0,) * 3, (1.0,) * 3)
    assert last.training_state is not None
    assert last.training_state["epoch"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_history_round_trip_and_markdown() -> None:
    history = History(
        records=(
            EpochRecord(1, 0.5, None, 1.0, 8.0, 0.1),
            EpochRecord(2, 0.25, 0.5, 1.0, 8.0, 0.1),
        ),
        precision="bf16",
    )
    assert History.from_dict(history.to_dict()) == history
    assert history.val_miou == [None, 0.5]
    assert history.best_epoch == 2
    assert "| 2 | 0.2500 | 0.5000 |" in history.to_markdown()
    assert History().best_epoch is None


def _train_curve(
    train_set: VOCSegmentationDataset,
    val_set: VOCSegmentationDataset,
    ckpt: Path,
    *,
    epochs: int,
    callbacks: tuple[object, ...] = (),
) -> History:
    """A fresh 'process': new model, optimizer, scheduler and loaders, then fit."""
    model = small_unet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train, val = loaders(train_set, val_set)
    return fit(
        model, train, loss_fn=DiceLoss(), epochs=epochs, optimizer=optimizer,
        scheduler=scheduler, val_loader=val, checkpoint_dir=ckpt, precision="fp32",
        seed=0, progress=False, callbacks=callbacks,  # type: ignore[arg-type]
    )  # fmt: skip


class InterruptError(Exception):
    pass


@pytest.mark.slow
def test_resume_continues_epoch_count_and_loss_curve(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    straight = _train_curve(train_set, val_set, tmp_path / "a", epochs=4)

    def stop_after_two(record: EpochRecord) -> None:
        if record.epoch == 2:
            raise InterruptError

    with pytest.raises(InterruptError):
        _train_curve(train_set, val_set, tmp_path / "b", epochs=4, callbacks=(stop_after_two,))
    assert load_checkpoint(tmp_path / "b" / "last.pt").extra["epoch"] == 2
    resumed = _train_curve(train_set, val_set, tmp_path / "b", epochs=4)

    assert resumed.epochs == [1, 2, 3, 4]
    # same data order, weights, optimizer and scheduler state: the same curve
    assert resumed.train_loss == pytest.approx(straight.train_loss, rel=1e-5)
    assert resumed.val_miou == pytest.approx(straight.val_miou, rel=1e-5)
    assert [r.lr for r in resumed.records] == pytest.approx([2.5e-3, 1.25e-3, 6.25e-4, 3.125e-4])

    # resuming a finished run trains nothing and returns the stored history
    again = _train_curve(train_set, val_set, tmp_path / "b", epochs=4)
    assert again.records == resumed.records


def test_resume_false_starts_over(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    model = small_unet()
    train, _ = loaders(train_set, val_set)
    fit(model, train, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    history = fit(
        small_unet(), train, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path,
        resume=False, progress=False,
    )  # fmt: skip
    assert history.epochs == [1]


def test_resume_with_another_model_is_refused(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    train, _ = loaders(train_set, val_set)
    fit(small_unet(), train, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    wider = UNet(num_classes=1, init_features=6, depth=2)
    with pytest.raises(CheckpointError, match=r"(?s)last\.pt.*size mismatch.*resume=False"):
        fit(wider, train, loss_fn=DiceLoss(), epochs=2, checkpoint_dir=tmp_path, progress=False)


_KILL_WORKER = textwrap.dedent(
    """
    import sys, time, torch
    from pathlib import Path
    from torch.utils.data import DataLoader, TensorDataset
    from catseg.data import VOCSegmentationDataset
    from catseg.losses import DiceLoss
    from catseg.models import UNet
    from catseg.training import fit

    root, ckpt, marker = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    data = VOCSegmentationDataset(root, "train", image_dtype="uint8")
    loader = DataLoader(data, batch_size=8, shuffle=True)
    dice = DiceLoss()
    calls = 0

    def loss_fn(logits, target):
        global calls
        calls += 1
        if calls == 2 * len(loader) + 3:  # epoch 3, step 3: signal the parent, then hang
            marker.write_text("in epoch 3")
            time.sleep(120)
        return dice(logits, target)

    torch.manual_seed(0)
    model = UNet(num_classes=1, init_features=8, depth=2)
    fit(model, loader, loss_fn=loss_fn, epochs=4, checkpoint_dir=ckpt, seed=0, progress=False)
    """
)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(
    synthetic_root: Path, train_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_KILL_WORKER, encoding="utf-8")
    marker, ckpt = tmp_path / "marker", tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), str(synthetic_root), str(ckpt), str(marker)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"worker exited early: {proc.stderr.read() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail("worker did not reach epoch 3 in time")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # the killed run lost only the epoch in progress; its last.pt is complete
    assert load_checkpoint(ckpt / "last.pt").extra["epoch"] == 2
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt"]
    torch.manual_seed(0)
    model = UNet(num_classes=1, init_features=8, depth=2)
    loader = DataLoader(train_set, batch_size=8, shuffle=True)
    history = fit(model, loader, loss_fn=DiceLoss(), epochs=4, checkpoint_dir=ckpt, progress=False)
    assert history.epochs == [1, 2, 3, 4]
    assert load_checkpoint(ckpt / "last.pt").extra["epoch"] == 4


def test_nan_loss_stops_with_epoch_and_step(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    train, val = loaders(train_set, val_set)
    dice = DiceLoss()
    calls = 0

    def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        loss: Tensor = dice(logits, target)
        return loss * math.nan if calls == len(train) + 2 else loss  # epoch 2, step 2

    model = small_unet()
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 2, step 2"):
        fit(model, train, loss_fn=loss_fn, epochs=3, val_loader=val, checkpoint_dir=tmp_path,
            progress=False)  # fmt: skip
    kept = load_checkpoint(tmp_path / "last.pt")
    assert kept.extra["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in kept.state_dict.values() if t.is_floating_point())
    # the weights were not touched by the NaN step either
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_inf_loss_in_train_one_epoch() -> None:
    model = nn.Conv2d(3, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = (torch.rand(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))

    def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
        return logits.sum() * math.inf

    with pytest.raises(NonFiniteError, match="epoch 7, step 1"):
        train_one_epoch(model, [batch], loss_fn, opt, device="cpu", epoch=7)


# --- fast path: precision, channels_last, uint8 -------------------------------------------


class Probe(nn.Module):
    """Records the dtype and memory format the wrapped model sees and returns."""

    def __init__(self, inner: UNet) -> None:
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes
        self.seen: list[tuple[torch.dtype, bool, torch.dtype]] = []

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x)
        cl = x.is_contiguous(memory_format=torch.channels_last)
        self.seen.append((x.dtype, cl, out.dtype))
        return out


@pytest.mark.parametrize(
    ("native", "precision", "expected", "logits_dtype"),
    [
        (True, "auto", "bf16", torch.bfloat16),
        (False, "auto", "fp32", torch.float32),
        (True, "fp32", "fp32", torch.float32),
    ],
)
def test_precision_path_follows_cpu_capability(
    monkeypatch: pytest.MonkeyPatch,
    train_set: VOCSegmentationDataset,
    val_set: VOCSegmentationDataset,
    native: bool,
    precision: str,
    expected: str,
    logits_dtype: torch.dtype,
) -> None:
    monkeypatch.setattr(catseg._runtime, "cpu_has_native_bf16", lambda: native)
    probe = Probe(UNet(num_classes=1, init_features=4, depth=2))
    loss_dtypes: list[torch.dtype] = []
    dice = DiceLoss()

    def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
        loss_dtypes.append(logits.dtype)
        loss: Tensor = dice(logits, target)
        return loss

    subset = torch.utils.data.Subset(train_set, range(8))
    history = fit(
        probe, DataLoader(subset, batch_size=8), loss_fn=loss_fn, epochs=1,
        val_loader=DataLoader(torch.utils.data.Subset(val_set, range(4)), batch_size=4),
        precision=precision, device="cpu", progress=False,  # type: ignore[arg-type]
    )  # fmt: skip
    assert history.precision == expected
    # inputs: float32 channels-last; logits in the autocast dtype; loss always sees fp32
    assert {s[:2] for s in probe.seen} == {(torch.float32, True)}
    assert {s[2] for s in probe.seen} == {logits_dtype}
    assert set(loss_dtypes) == {torch.float32}
    assert probe.inner.training  # evaluate restored train mode


def test_channels_last_can_be_turned_off(train_set: VOCSegmentationDataset) -> None:
    probe = Probe(UNet(num_classes=1, init_features=4, depth=2))
    subset = torch.utils.data.Subset(train_set, range(8))
    history = fit(
        probe, DataLoader(subset, batch_size=4), loss_fn=DiceLoss(), epochs=1,
        channels_last=False, precision="fp32", progress=False,
    )  # fmt: skip
    assert not history.channels_last
    assert {s[1] for s in probe.seen} == {False}
    conv = next(m for m in probe.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous()


def test_uint8_batches_equal_float_batches_over_255() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    masks = torch.randint(0, 2, (4, 8, 8))
    before = images.clone()
    losses = []
    pairs = [(images, masks), (images.float() / 255, masks), (images, masks.to(torch.uint8))]
    for batch, target in pairs:
        torch.manual_seed(0)
        model = nn.Conv2d(3, 1, 3, padding=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses.append(
            train_one_epoch(
                model, [(batch, target)], DiceLoss(), opt, device="cpu", precision="fp32"
            )
        )
    assert losses[0] == losses[1] == losses[2]  # uint8 masks are widened on the device
    assert torch.equal(images, before)  # the caller's batch is not modified


def test_evaluate_matches_torchmetrics(val_set: VOCSegmentationDataset) -> None:
    model = small_unet()
    model.train()
    result = evaluate(model, DataLoader(val_set, batch_size=5), MeanIoU(2), device="cpu",
                      precision="fp32")  # fmt: skip
    assert model.training
    assert result.miou == pytest.approx(reference_iou(model, val_set))


# --- schedules, callbacks, progress, metadata, errors ---------------------------------------


def test_one_cycle_steps_per_batch(train_set: VOCSegmentationDataset) -> None:
    def one_cycle(params: list[Tensor]) -> tuple[torch.optim.Optimizer, object]:
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-2, total_steps=8)

    model = UNet(num_classes=1, init_features=4, depth=2)
    loader = DataLoader(torch.utils.data.Subset(train_set, range(16)), batch_size=4)
    optimizer, schedule = one_cycle(list(model.parameters()))
    history = fit(
        model, loader, loss_fn=DiceLoss(), epochs=2, optimizer=optimizer,
        scheduler=schedule, scheduler_interval="step", progress=False,  # type: ignore[arg-type]
    )  # fmt: skip
    # a twin schedule stepped 4 and 8 times (2 epochs x 4 batches) gives the recorded lrs
    twin_opt, twin = one_cycle([torch.zeros(1, requires_grad=True)])
    expected = []
    for _ in range(2):
        for _ in range(4):
            twin_opt.step()
            twin.step()  # type: ignore[attr-defined]
        expected.append(twin_opt.param_groups[0]["lr"])
    assert [r.lr for r in history.records] == pytest.approx(expected)
    assert expected[0] > 1e-3  # the cycle's high phase, not the initial lr


def test_callback_true_stops_early(train_set: VOCSegmentationDataset) -> None:
    seen: list[int] = []

    def stop_at_two(record: EpochRecord) -> bool:
        seen.append(record.epoch)
        return record.epoch == 2

    loader = DataLoader(torch.utils.data.Subset(train_set, range(8)), batch_size=4)
    history = fit(
        UNet(num_classes=1, init_features=4, depth=2), loader, loss_fn=DiceLoss(), epochs=5,
        callbacks=[stop_at_two], progress=False,
    )  # fmt: skip
    assert seen == [1, 2]
    assert history.epochs == [1, 2]


def test_log_line_per_epoch_without_tqdm(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    train_set: VOCSegmentationDataset,
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes "import tqdm.auto" fail
    loader = DataLoader(torch.utils.data.Subset(train_set, range(8)), batch_size=8)
    with caplog.at_level(logging.INFO, logger="catseg.training"):
        fit(UNet(num_classes=1, init_features=4, depth=2), loader, loss_fn=DiceLoss(), epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "catseg.training"]
    assert [line.split(" loss ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


def test_tqdm_bar_replaces_log_lines(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    train_set: VOCSegmentationDataset,
) -> None:  # fmt: skip
    pytest.importorskip("tqdm")  # the "progress" extra; installed by catseg[dev]
    loader = DataLoader(torch.utils.data.Subset(train_set, range(8)), batch_size=8)
    with caplog.at_level(logging.INFO, logger="catseg.training"):
        fit(UNet(num_classes=1, init_features=4, depth=2), loader, loss_fn=DiceLoss(), epochs=1)
    assert not [r for r in caplog.records if r.name == "catseg.training"]
    assert "1/1" in capsys.readouterr().err


def test_checkpoint_meta_explicit_and_checked(
    train_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    loader = DataLoader(torch.utils.data.Subset(train_set, range(4)), batch_size=4)
    meta = CheckpointMeta(("bg", "thing"), image_size=(32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
    fit(UNet(num_classes=1, init_features=4, depth=2), loader, loss_fn=DiceLoss(), epochs=1,
        checkpoint_dir=tmp_path, checkpoint_meta=meta, progress=False)  # fmt: skip
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert (ckpt.classes, ckpt.image_size) == (["bg", "thing"], (32, 32))
    assert (tuple(ckpt.mean), tuple(ckpt.std)) == ((0.5,) * 3, (0.25,) * 3)

    wrong = CheckpointMeta(("bg", "a", "b"))
    with pytest.raises(ConfigError, match=r"3 names but a binary \(1-logit\) model needs 2"):
        fit(UNet(num_classes=1, init_features=4, depth=2), loader, loss_fn=DiceLoss(),
            epochs=1, checkpoint_dir=tmp_path / "x", checkpoint_meta=wrong)  # fmt: skip


def test_checkpoint_meta_from_dataset_reads_wrappers(train_set: VOCSegmentationDataset) -> None:
    sized = VOCSegmentationDataset(train_set.root, "train", image_size=24)
    meta = CheckpointMeta.from_dataset(torch.utils.data.Subset(sized, [0]), num_classes=1)
    assert meta == CheckpointMeta(("_background_", "blob"), (24, 24))
    assert CheckpointMeta.from_dataset(object(), num_classes=1).classes == (
        "_background_",
        "foreground",
    )


def one_item_loader() -> DataLoader[tuple[Tensor, Tensor]]:
    item = (torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long))
    return DataLoader(TensorDataset(item[0][None], item[1][None]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
        ({"epochs": 1, "grad_clip": -1.0}, "grad_clip must be > 0"),
        ({"epochs": 1, "scheduler_interval": "batch"}, "scheduler_interval must be"),
        ({"epochs": 1, "precision": "fp8"}, "precision must be one of"),
        ({"epochs": 1, "device": "gpu0"}, "'gpu0'"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    loader = one_item_loader()
    with pytest.raises(ConfigError, match=match):
        fit(nn.Conv2d(3, 1, 1), loader, loss_fn=DiceLoss(), progress=False, **kwargs)  # type: ignore[arg-type]


def test_default_metric_needs_num_classes() -> None:
    loader = one_item_loader()
    with pytest.raises(ConfigError, match=r"Conv2d.*pass metric=MeanIoU"):
        fit(nn.Conv2d(3, 1, 1), loader, loss_fn=DiceLoss(), epochs=1, val_loader=loader)


def test_bad_batches_are_named() -> None:
    model = nn.Conv2d(3, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    cases: list[tuple[object, type[Exception], str]] = [
        ((torch.zeros(1, 3, 4, 4),), DataError, "batch 1 is a tuple of length 1"),
        ((torch.zeros(3, 4, 4), mask), ShapeError, r"\(N, C, H, W\), got \(3, 4, 4\)"),
        ((torch.zeros(2, 3, 4, 4), mask), ShapeError, "N = 2 like the images"),
        ((torch.zeros(1, 3, 4, 4, dtype=torch.int32), mask), DTypeError, "uint8 or floating"),
    ]
    for batch, error, match in cases:
        with pytest.raises(error, match=match):
            train_one_epoch(model, [batch], DiceLoss(), opt, device="cpu")
    with pytest.raises(DataError, match="no images in epoch 1"):
        train_one_epoch(model, [], DiceLoss(), opt, device="cpu")

    def not_scalar(logits: Tensor, target: Tensor) -> Tensor:
        return logits.mean(dim=(1, 2, 3))

    with pytest.raises(ShapeError, match=r"scalar tensor, got \(1,\)"):
        train_one_epoch(model, [(torch.zeros(1, 3, 4, 4), mask)], not_scalar, opt, device="cpu")
