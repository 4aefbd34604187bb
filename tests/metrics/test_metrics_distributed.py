"""MeanIoU under torch.distributed: 2 CPU processes on gloo give the one-process result.

Multiclass and multilabel, dataset-level and per image; a rank without data still takes
part in the sum, and when no rank has data every rank raises the same DataError.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from catseg.errors import DataError
from catseg.metrics import MeanIoU

NUM_CLASSES = 4
NUM_LABELS = 3


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    logits = torch.randn(6, NUM_CLASSES, 8, 8, generator=gen)
    target = torch.randint(0, NUM_CLASSES - 1, (6, 8, 8), generator=gen)  # class 3 absent
    target[:, 0] = 255
    return logits, target


def _multilabel_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(321)
    logits = torch.randn(6, NUM_LABELS, 8, 8, generator=gen)
    target = torch.randint(0, 2, (6, NUM_LABELS, 8, 8), generator=gen)
    target[:, 1, 0] = 255  # label 1 ignored on the first row
    target[:, 2] = 0  # label 2 never in the target (its false positives still count)
    return logits, target


def _cases() -> dict[str, tuple[MeanIoU, tuple[torch.Tensor, torch.Tensor]]]:
    """Fresh metrics, each with its full data set."""
    return {
        f"{mode}-{per_image}": (
            MeanIoU(
                NUM_LABELS if mode == "multilabel" else NUM_CLASSES,
                per_image=per_image,
                mode=mode,  # type: ignore[arg-type]
            ),
            _multilabel_data() if mode == "multilabel" else _data(),
        )
        for mode in ("multiclass", "multilabel")
        for per_image in (False, True)
    }


def _summary(metric: MeanIoU) -> dict[str, object]:
    result = metric.compute()
    return {
        "miou": result.miou,
        "iou": result.iou.tolist(),
        "dice": result.dice.tolist(),
        "confusion": result.confusion.tolist(),
        "precision": result.precision.tolist(),
        "recall": result.recall.tolist(),
    }


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        # Uneven shards: rank 0 gets images 0-3, rank 1 gets 4-5.
        shard = slice(0, 4) if rank == 0 else slice(4, 6)
        summaries: dict[str, object] = {}
        for name, (metric, (preds, target)) in _cases().items():
            metric.update(preds[shard], target[shard])
            summaries[name] = _summary(metric)
        # A rank that saw no data still takes part in the sum.
        logits, target = _data()
        idle = MeanIoU(NUM_CLASSES)
        if rank == 0:
            idle.update(logits, target)
        summaries["idle"] = _summary(idle)
        # No rank saw data: every rank raises the same error (none hangs in all_reduce).
        try:
            MeanIoU(NUM_CLASSES, mode="multiclass").compute()
        except DataError as err:
            summaries["empty"] = str(err)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(summaries), encoding="utf-8")
    finally:
        dist.barrier()  # every process here first: gloo aborts a peer still connected
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    args = (2, str(tmp_path / "init"), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=2, join=True)  # type: ignore[attr-defined,no-untyped-call]
    expected = {}
    for name, (metric, (preds, target)) in _cases().items():
        metric.update(preds, target)
        expected[name] = _summary(metric)
    expected["idle"] = expected["multiclass-False"]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text(encoding="utf-8"))
        for key, want in expected.items():
            assert got[key]["confusion"] == want["confusion"], key
            assert got[key]["miou"] == pytest.approx(want["miou"], abs=1e-12)
            for name in ("iou", "dice", "precision", "recall"):
                assert got[key][name] == pytest.approx(want[name], abs=1e-12, nan_ok=True)
        assert "no data: update() received no target pixel on any process" in got["empty"]
    logits, target = _data()
    # Sanity: one rank alone would have given a different matrix.
    alone = MeanIoU(NUM_CLASSES)
    alone.update(logits[:4], target[:4])
    assert alone.compute().confusion.tolist() != expected["multiclass-False"]["confusion"]
