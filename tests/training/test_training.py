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
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryJaccardIndex

import catseg._runtime
from catseg.checkpoint import load_checkpoint
from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.data.transforms import Compose, Normalize, RandomHorizontalFlip
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
    EpochRecord,
    History,
    RunOptions,
    evaluate,
    fit,
    train_one_epoch,
)

FP32 = RunOptions(precision="fp32", seed=0)

REPO_ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


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
        checkpoint_dir=tmp_path, run=FP32, progress=False,
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
    assert best.config.classes == ("_background_", "blob")
    assert best.config.image_size is None
    assert best.config.preprocessing is None  # the identity: [0, 1] pixels
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
        scheduler=scheduler, val_loader=val, checkpoint_dir=ckpt, run=FP32,
        progress=False, callbacks=callbacks,  # type: ignore[arg-type]
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
    fit(model, train, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path,
        progress=False)  # fmt: skip
    history = fit(
        small_unet(), train, loss_fn=DiceLoss(), epochs=1,
        checkpoint_dir=tmp_path, resume=False, progress=False,
    )  # fmt: skip
    assert history.epochs == [1]


def test_resume_with_another_model_is_refused(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    train, _ = loaders(train_set, val_set)
    fit(small_unet(), train, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path,
        progress=False)  # fmt: skip
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
    from catseg.training import RunOptions, fit

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
    fit(model, loader, loss_fn=loss_fn, epochs=4, checkpoint_dir=ckpt,
        run=RunOptions(seed=0), progress=False)
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
    history = fit(
        model, loader, loss_fn=DiceLoss(), epochs=4, checkpoint_dir=ckpt,
        progress=False,
    )  # fmt: skip
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
        calls += logits.requires_grad  # training steps only: fit also gives the val loss
        loss: Tensor = dice(logits, target)
        return loss * math.nan if calls == len(train) + 2 else loss  # epoch 2, step 2

    model = small_unet()
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 2, step 2"):
        fit(model, train, loss_fn=loss_fn, epochs=3, val_loader=val,
            checkpoint_dir=tmp_path, progress=False)  # fmt: skip
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
        run=RunOptions(precision=precision, device="cpu"), progress=False,  # type: ignore[arg-type]
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
        run=RunOptions(channels_last=False, precision="fp32"), progress=False,
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
        scheduler=schedule, run=RunOptions(scheduler_interval="step"),  # type: ignore[arg-type]
        progress=False,
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


def test_fit_records_the_datas_facts_and_refuses_a_disagreeing_model(
    train_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    sized = VOCSegmentationDataset(train_set.root, "train", image_size=24,
                                   transforms=Normalize((0.5,) * 3, (0.25,) * 3))  # fmt: skip
    loader = DataLoader(torch.utils.data.Subset(sized, range(4)), batch_size=4)
    model = UNet(num_classes=1, init_features=4, depth=2)
    fit(model, loader, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    config = load_checkpoint(tmp_path / "last.pt").config
    assert (config.classes, config.image_size) == (("_background_", "blob"), (24, 24))
    assert (config.preprocessing.mean, config.preprocessing.std) == ((0.5,) * 3, (0.25,) * 3)  # type: ignore[union-attr]
    assert model.config == config  # the model itself carries the record
    # a second fit on the same data agrees with what the model now records
    fit(model, loader, loss_fn=DiceLoss(), epochs=1, progress=False)

    named = UNet(num_classes=1, init_features=4, depth=2).describe(classes=["bg", "thing"])
    with pytest.raises(ConfigError, match=r"data states classes=\('_background_', 'blob'\) but "
                       r"the model records classes=\('bg', 'thing'\)"):  # fmt: skip
        fit(named, loader, loss_fn=DiceLoss(), epochs=1, progress=False)
    imagenet = UNet(num_classes=1, init_features=4, depth=2).describe(
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    with pytest.raises(ConfigError, match=r"normalisation \(mean=\[0.5, 0.5, 0.5\].*differs.*"
                       r"\(mean=\[0.485"):  # fmt: skip
        fit(imagenet, loader, loss_fn=DiceLoss(), epochs=1, progress=False)
    with pytest.raises(ConfigError, match=r"classes has 2 names but a 3-class model needs 3"):
        fit(UNet(num_classes=3, init_features=4, depth=2), loader, loss_fn=DiceLoss(),
            epochs=1, progress=False)  # fmt: skip


def _crop(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    return image[:, :16, :16], mask[:16, :16]


def test_a_fact_the_data_cannot_state_is_asked_once_and_the_suggested_call_works(
    train_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    """Issue 26: a plain-function transform gave three errors for one fact."""
    transforms = Compose([RandomHorizontalFlip(), _crop])
    cropped = VOCSegmentationDataset(train_set.root, "train", transforms=transforms)
    loader = DataLoader(torch.utils.data.Subset(cropped, range(4)), batch_size=4)
    model = UNet(num_classes=1, init_features=4, depth=2)
    # without checkpoints nothing needs the size: fit runs and records what it can read
    fit(model, loader, loss_fn=DiceLoss(), epochs=1, progress=False)
    assert (model.config.classes, model.config.image_size) == (("_background_", "blob"), None)
    message = (
        r"^cannot tell the image_size the model is trained with: the transforms of "
        r"the dataset.dataset hold a function, whose effect on the size is unknown; state it "
        r"once with model.describe\(image_size=\(H, W\)\) before fit$"
    )
    with pytest.raises(ConfigError, match=message):
        fit(model, loader, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    model.describe(image_size=(16, 16))
    fit(model, loader, loss_fn=DiceLoss(), epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt").config.image_size == (16, 16)


def one_item_loader() -> DataLoader[tuple[Tensor, Tensor]]:
    item = (torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long))
    return DataLoader(TensorDataset(item[0][None], item[1][None]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RunOptions(grad_clip=-1.0), r"grad_clip must be a finite number in \(0.0, inf\]"),
        (lambda: RunOptions(grad_clip=math.nan), "grad_clip must be a finite number"),
        (lambda: RunOptions(seed=1.5), "seed must be an int, got 1.5"),
        (lambda: RunOptions(scheduler_interval="batch"), "scheduler_interval must be one of"),
        (lambda: RunOptions(precision="fp8"), "precision must be one of"),
        (lambda: RunOptions(device="gpu0"), "'gpu0'"),
        (lambda: RunOptions(channels_last=1), "channels_last must be True or False"),
    ],
)
def test_options_reject_bad_values(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
        ({"epochs": 2.0}, "epochs must be an int, got 2.0"),
        ({"epochs": 1, "progress": "yes"}, "progress must be True or False"),
        ({"epochs": 1, "callbacks": print}, "callbacks must be a list or tuple"),
        ({"epochs": 1, "callbacks": [1]}, r"callbacks\[0\] must be callable"),
        ({"epochs": 1, "metric": object()}, "metric must have reset"),
        ({"epochs": 1, "optimizer": "adam"}, "optimizer must be a torch Optimizer"),
        ({"epochs": 1, "scheduler": 3}, "scheduler must be a torch learning-rate scheduler"),
        ({"epochs": 1, "checkpoint_dir": 3}, "checkpoint_dir must be a folder path or None"),
        ({"epochs": 1, "resume": None}, "resume must be True or False"),
        ({"epochs": 1, "run": {"seed": 0}}, "run must be a RunOptions"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    loader = one_item_loader()
    kwargs.setdefault("progress", False)
    with pytest.raises(ConfigError, match=match):
        fit(nn.Conv2d(3, 1, 1), loader, loss_fn=DiceLoss(), **kwargs)  # type: ignore[arg-type]


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


# --- resuming with changed arguments (issue 21: examples/cats.py --epochs crashed) ----------


def _tiny_fit(
    train_set: VOCSegmentationDataset,
    ckpt: Path,
    *,
    epochs: int,
    schedule: object = None,
    interval: str = "epoch",
    batch_size: int = 4,
    resume: bool = True,
) -> History:
    """A fresh 'process' (model, optimizer, scheduler built from the arguments), then fit."""
    loader = DataLoader(
        torch.utils.data.Subset(train_set, range(8)), batch_size=batch_size, shuffle=True
    )
    model = small_unet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = None if schedule is None else schedule(optimizer, epochs, len(loader))  # type: ignore[operator]
    return fit(
        model, loader, loss_fn=DiceLoss(), epochs=epochs, optimizer=optimizer,
        scheduler=scheduler, checkpoint_dir=ckpt, resume=resume,
        run=RunOptions(precision="fp32", seed=0, scheduler_interval=interval),  # type: ignore[arg-type]
        progress=False,
    )  # fmt: skip


def _one_cycle(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
    return torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=epochs * steps)


def _cosine(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)


def _linear(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
    return torch.optim.lr_scheduler.LinearLR(opt, total_iters=epochs * steps)


def _plateau(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=epochs)


def _step_lr(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=epochs // 2, gamma=0.5)


@pytest.mark.parametrize(
    ("schedule", "interval", "changed"),
    [
        (_one_cycle, "step", r"OneCycleLR total_steps=4 \(now 6\)"),  # the cats.py crash
        (_one_cycle, "epoch", r"OneCycleLR total_steps=4 \(now 6\)"),
        (_linear, "step", r"LinearLR total_iters=4 \(now 6\)"),
        (_cosine, "epoch", r"CosineAnnealingLR T_max=2 \(now 3\)"),
        (_plateau, "epoch", r"ReduceLROnPlateau patience=2 \(now 3\)"),
    ],
)
def test_resume_with_a_schedule_built_for_other_epochs_is_refused(
    train_set: VOCSegmentationDataset, tmp_path: Path, schedule: object, interval: str,
    changed: str,
) -> None:  # fmt: skip
    _tiny_fit(train_set, tmp_path, epochs=2, schedule=schedule, interval=interval)
    message = (
        rf"(?s)cannot resume from .*last\.pt: the run was started with other arguments "
        rf"\(epochs=2\): .*{changed}.*resume=False.*deleting"
    )
    with pytest.raises(CheckpointError, match=message):
        _tiny_fit(train_set, tmp_path, epochs=3, schedule=schedule, interval=interval)
    # nothing was loaded or written by the refused call; starting fresh works
    assert load_checkpoint(tmp_path / "last.pt").extra["epoch"] == 2
    fresh = _tiny_fit(
        train_set, tmp_path, epochs=3, schedule=schedule, interval=interval, resume=False
    )
    assert fresh.epochs == [1, 2, 3]


def test_resume_with_more_epochs_continues_like_a_straight_run(
    train_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    def halve_every_epoch(opt: torch.optim.Optimizer, epochs: int, steps: int) -> object:
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # no epochs in it

    straight = _tiny_fit(train_set, tmp_path / "a", epochs=4, schedule=halve_every_epoch)
    _tiny_fit(train_set, tmp_path / "b", epochs=2, schedule=halve_every_epoch)
    longer = _tiny_fit(train_set, tmp_path / "b", epochs=4, schedule=halve_every_epoch)
    assert longer.epochs == [1, 2, 3, 4]
    assert longer.train_loss == pytest.approx(straight.train_loss, rel=1e-5)
    assert [r.lr for r in longer.records] == pytest.approx([5e-3, 2.5e-3, 1.25e-3, 6.25e-4])
    run = load_checkpoint(tmp_path / "b" / "last.pt").training_state["run"]  # type: ignore[index]
    assert run == {
        "epochs": 4, "steps_per_epoch": 2, "batch_size": 4, "world_size": 1,
        "scheduler": "StepLR", "scheduler_interval": "epoch",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "changed"),
    [
        ({"epochs": 3}, {"epochs": 2}, r"epochs: 3 already finished \(now epochs=2\)"),
        (
            {"batch_size": 4},
            {"batch_size": 2},
            r"steps_per_epoch=2 \(now 4\); batch_size=4 \(now 2\)",
        ),
        ({}, {"schedule": _step_lr}, r"scheduler: no scheduler \(now StepLR\)"),
        ({"schedule": _step_lr}, {}, r"scheduler: StepLR \(now no scheduler\)"),
        (
            {"schedule": _step_lr},
            {"schedule": _cosine},
            r"scheduler: StepLR \(now CosineAnnealingLR\)",
        ),
        (
            {"schedule": _linear},
            {"schedule": _linear, "interval": "step"},
            r"scheduler_interval='epoch' \(now 'step'\)\. Pass",
        ),
    ],
)
def test_resume_with_changed_arguments_names_them(
    train_set: VOCSegmentationDataset, tmp_path: Path, first: dict[str, object],
    second: dict[str, object], changed: str,
) -> None:  # fmt: skip
    _tiny_fit(train_set, tmp_path, **{"epochs": 2, **first})  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match=rf"(?s)other arguments.*{changed}.*resume=False"):
        _tiny_fit(train_set, tmp_path, **{"epochs": 2, **second})  # type: ignore[arg-type]


# --- metrics of any kind, validation loss, empty loaders ----------------------------------------


class PixelAccuracy:
    """A metric that is not MeanIoU: fraction of pixels whose one-logit prediction is right."""

    def __init__(self) -> None:
        self.right = 0
        self.total = 0

    def reset(self) -> None:
        self.right = self.total = 0

    def update(self, preds: Tensor, target: Tensor) -> None:
        keep = target != 255
        self.right += int(((preds[:, 0] > 0).long() == target)[keep].sum())
        self.total += int(keep.sum())

    def compute(self) -> Tensor:
        return torch.tensor(self.right / self.total)


def test_fit_takes_any_metric_and_records_the_validation_loss(
    train_set: VOCSegmentationDataset, val_set: VOCSegmentationDataset, tmp_path: Path
) -> None:
    val = DataLoader(val_set, batch_size=len(val_set))
    model = small_unet()
    history = fit(
        model, DataLoader(torch.utils.data.Subset(train_set, range(16)), batch_size=8),
        loss_fn=DiceLoss(), epochs=2, val_loader=val, metric=PixelAccuracy(),
        checkpoint_dir=tmp_path, run=FP32, progress=False,
    )  # fmt: skip
    # by hand, with the final weights (the last epoch's numbers)
    images = torch.stack([val_set[i][0] for i in range(len(val_set))]).float() / 255
    masks = torch.stack([val_set[i][1] for i in range(len(val_set))])
    model.eval()
    with torch.no_grad():
        logits = model(images)
    keep = masks != 255
    accuracy = float(((logits[:, 0] > 0).long() == masks)[keep].float().mean())
    assert history.val_miou[-1] == pytest.approx(accuracy, abs=1e-6)
    assert history.val_loss[-1] == pytest.approx(float(DiceLoss()(logits, masks)), rel=1e-4)
    assert all(v is not None and 0 < v < 1 for v in history.val_loss)
    assert load_checkpoint(tmp_path / "best.pt").extra["val_loss"] == pytest.approx(
        history.records[history.epochs.index(history.best_epoch)].val_loss  # type: ignore[arg-type]
    )
    assert "| val loss |" in history.to_markdown()


def test_a_metric_without_a_number_is_refused(train_set: VOCSegmentationDataset) -> None:
    class Named(PixelAccuracy):
        def compute(self) -> dict[str, float]:  # type: ignore[override]
            return {"acc": 1.0}

    loader = DataLoader(torch.utils.data.Subset(train_set, range(4)), batch_size=4)
    with pytest.raises(ConfigError, match="compute\\(\\) returned dict; fit needs a number"):
        fit(small_unet(), loader, loss_fn=DiceLoss(), epochs=1, val_loader=loader,
            metric=Named(), progress=False)  # fmt: skip


def test_empty_evaluation_loader_is_an_error(train_set: VOCSegmentationDataset) -> None:
    empty = DataLoader(torch.utils.data.Subset(train_set, []), batch_size=4)
    with pytest.raises(DataError, match="evaluation loader yielded no images"):
        evaluate(small_unet(), empty, MeanIoU(2), device="cpu")
    loader = DataLoader(torch.utils.data.Subset(train_set, range(4)), batch_size=4)
    with pytest.raises(DataError, match="evaluation loader yielded no images"):
        fit(small_unet(), loader, loss_fn=DiceLoss(), epochs=1, val_loader=empty, progress=False)
