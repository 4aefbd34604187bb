"""fit under torch.distributed: a real 2-process gloo torchrun, and the helpers in-process.

Run as a script
(``python -m torch.distributed.run ... tests/training/test_distributed_training.py``),
this file is the worker of :func:`test_torchrun_two_processes`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from catseg.checkpoint import load_checkpoint
from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.errors import ConfigError
from catseg.losses import DiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.training import RunOptions, evaluate, fit
from catseg.training._distributed import shard


def shard_train_loader(loader: DataLoader[Any], *, seed: int) -> DataLoader[Any]:
    return shard(loader, train=True, seed=seed)


def shard_eval_loader(loader: DataLoader[Any]) -> DataLoader[Any]:
    return shard(loader, train=False)


REPO_ROOT = Path(__file__).resolve().parents[2]
N_IMAGES, VAL_FRACTION = 41, 0.22  # 32 train (even: no DistributedSampler padding), 9 val (odd)


pytestmark = pytest.mark.usefixtures("one_thread")


class RecordingDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Wraps a dataset and remembers which indices this process read."""

    def __init__(self, inner: VOCSegmentationDataset) -> None:
        self.inner = inner
        self.class_names = inner.class_names
        self.image_size = inner.image_size
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(int(index))
        return self.inner[index]


def _worker(root: Path, out: Path) -> None:
    """One torchrun process: fit 2 epochs, then resume to 3 in the same processes."""
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    train = RecordingDataset(VOCSegmentationDataset(root, "train", image_dtype="uint8"))
    val = VOCSegmentationDataset(root, "val", image_dtype="uint8")
    histories = []
    for epochs in (2, 3):
        torch.manual_seed(0)
        model = UNet(num_classes=1, init_features=4, depth=2)
        histories.append(
            fit(
                model,
                DataLoader(train, batch_size=4, shuffle=True),  # plain loader: fit shards it
                loss_fn=DiceLoss(),
                optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
                epochs=epochs,
                val_loader=DataLoader(val, batch_size=4),
                checkpoint_dir=out / "ckpt",
                run=RunOptions(precision="fp32", seed=0),
                progress=False,
            ).to_dict()
        )
    result = {"rank": rank, "seen": train.seen, "histories": histories}
    (out / f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_voc(root, n=N_IMAGES, size=32, seed=1, val_fraction=VAL_FRACTION)


@pytest.mark.slow
def test_torchrun_two_processes(synthetic_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        str(Path(__file__).resolve()), str(synthetic_root), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    # exactly one checkpoint set, written by rank 0 only (no leftovers of atomic writes)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.pt", "last.pt"]

    # the second fit resumed on both ranks: epochs 1, 2 loaded, only epoch 3 trained
    for info in ranks:
        first, second = info["histories"]
        assert [r["epoch"] for r in second["records"]] == [1, 2, 3]
        assert second["records"][:2] == first["records"]
        assert second["world_size"] == 2
    assert ranks[0]["histories"] == ranks[1]["histories"]  # all-reduced loss and metric

    # every epoch, the two ranks read disjoint halves of the 32 training images
    n_train = 32
    per_epoch = n_train // 2
    seen0, seen1 = ranks[0]["seen"], ranks[1]["seen"]
    assert len(seen0) == len(seen1) == 3 * per_epoch  # epochs 1, 2, then 3 after resuming
    for epoch in range(3):
        a = set(seen0[epoch * per_epoch : (epoch + 1) * per_epoch])
        b = set(seen1[epoch * per_epoch : (epoch + 1) * per_epoch])
        assert not a & b
        assert a | b == set(range(n_train))
    # DistributedSampler reshuffles per epoch (set_epoch was called)
    assert seen0[:per_epoch] != seen0[per_epoch : 2 * per_epoch]

    # the all-reduced val mIoU equals evaluating the saved model in this one process
    ckpt = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert ckpt.extra["epoch"] == 3
    assert ckpt.training_state is not None
    assert len(ckpt.training_state["rng"]) == 2  # one RNG record per rank
    val = VOCSegmentationDataset(synthetic_root, "val", image_dtype="uint8")
    single = evaluate(
        ckpt.build_model(), DataLoader(val, batch_size=3), MeanIoU(2),
        device="cpu", precision="fp32",
    )  # fmt: skip
    final = ranks[0]["histories"][1]["records"][-1]["val_miou"]
    assert single.miou == pytest.approx(final, abs=1e-6)


# --- helpers, in one process with a one-member gloo group -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def one_process_group() -> Iterator[None]:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.barrier()  # every process here first: gloo aborts a peer still connected
        dist.destroy_process_group()


class _Tiny(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((3, 4, 4), float(index)), torch.zeros(4, 4, dtype=torch.long)


class _Stream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long)


def _collate(batch: list[Any]) -> Any:
    return torch.utils.data.default_collate(batch)


def test_loaders_unchanged_without_distributed() -> None:
    loader = DataLoader(_Tiny(), batch_size=2, shuffle=True)
    assert shard_train_loader(loader, seed=0) is loader
    assert shard_eval_loader(loader) is loader


@pytest.mark.usefixtures("one_process_group")
def test_train_loader_rebuilt_with_distributed_sampler() -> None:
    loader = DataLoader(_Tiny(), batch_size=3, shuffle=True, collate_fn=_collate, drop_last=True)
    sharded = shard_train_loader(loader, seed=7)
    assert isinstance(sharded.sampler, DistributedSampler)
    assert sharded.sampler.shuffle
    assert sharded.sampler.seed == 7
    assert (sharded.batch_size, sharded.collate_fn, sharded.drop_last) == (3, _collate, True)
    # a loader that already has a DistributedSampler is kept as it is
    assert shard_train_loader(sharded, seed=0) is sharded
    ordered = shard_train_loader(DataLoader(_Tiny(), batch_size=2), seed=0)
    assert isinstance(ordered.sampler, DistributedSampler)
    assert not ordered.sampler.shuffle
    evaluation = shard_eval_loader(DataLoader(_Tiny(), batch_size=4))
    assert evaluation.sampler == range(0, 10, 1)  # every world_size-th index from the rank
    assert [int(x[0, 0, 0, 0]) for x, _ in evaluation] == [0, 4, 8]


def _init_worker(worker_id: int) -> None:
    del worker_id


@pytest.mark.usefixtures("one_process_group")
def test_rebuilt_loader_keeps_every_option_of_the_original() -> None:
    generator = torch.Generator().manual_seed(3)
    options: dict[str, Any] = {
        "batch_size": 3,
        "collate_fn": _collate,
        "pin_memory": True,
        "drop_last": True,
        "timeout": 5.0,
        "worker_init_fn": _init_worker,
        "generator": generator,
    }
    workers: dict[str, Any] = {
        "num_workers": 2,
        "multiprocessing_context": "spawn",
        "prefetch_factor": 3,
        "persistent_workers": True,
    }
    names = [*options, *workers]
    with_workers = DataLoader(_Tiny(), shuffle=True, **options, **workers)
    for sharded in (shard_train_loader(with_workers, seed=0), shard_eval_loader(with_workers)):
        assert sharded is not with_workers
        for name in names:
            assert getattr(sharded, name) == getattr(with_workers, name), name
    # without workers, the worker-only options keep DataLoader's defaults
    plain = shard_eval_loader(DataLoader(_Tiny(), **options))
    assert plain.num_workers == 0
    assert (plain.multiprocessing_context, plain.prefetch_factor) == (None, None)
    assert plain.persistent_workers is False
    assert (plain.timeout, plain.generator, plain.worker_init_fn) == (5.0, generator, _init_worker)


@pytest.mark.usefixtures("one_process_group")
def test_unshardable_loaders_are_refused() -> None:
    with pytest.raises(ConfigError, match="IterableDataset"):
        shard_train_loader(DataLoader(_Stream(), batch_size=1), seed=0)
    batches = DataLoader(_Tiny(), batch_sampler=[[0, 1], [2, 3]])
    with pytest.raises(ConfigError, match="custom batch_sampler"):
        shard_eval_loader(batches)
    weighted = DataLoader(
        _Tiny(), batch_size=2, sampler=torch.utils.data.WeightedRandomSampler([1.0] * 10, 10)
    )
    with pytest.raises(ConfigError, match="WeightedRandomSampler"):
        shard_train_loader(weighted, seed=0)


@pytest.mark.usefixtures("one_process_group")
def test_fit_in_a_one_process_group_wraps_in_ddp(synthetic_root: Path, tmp_path: Path) -> None:
    train = VOCSegmentationDataset(synthetic_root, "train", image_dtype="uint8")
    model = UNet(num_classes=1, init_features=4, depth=2)
    history = fit(
        model, DataLoader(train, batch_size=8, shuffle=True), loss_fn=DiceLoss(), epochs=1,
        checkpoint_dir=tmp_path, run=RunOptions(precision="fp32"), progress=False,
    )  # fmt: skip
    assert history.world_size == 1
    # the checkpoint holds the plain model's keys, not DDP's "module." ones
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert set(ckpt.state_dict) == set(model.state_dict())


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
