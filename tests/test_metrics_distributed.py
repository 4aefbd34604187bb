"""MeanIoU under torch.distributed: 2 CPU processes on gloo give the one-process result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from catseg.metrics import MeanIoU

NUM_CLASSES = 4


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    logits = torch.randn(6, NUM_CLASSES, 8, 8, generator=gen)
    target = torch.randint(0, NUM_CLASSES - 1, (6, 8, 8), generator=gen)  # class 3 absent
    target[:, 0] = 255
    return logits, target


def _summary(metric: MeanIoU) -> dict[str, object]:
    result = metric.compute()
    return {
        "miou": result.miou,
        "iou": result.iou.tolist(),
        "dice": result.dice.tolist(),
        "confusion": result.confusion.tolist(),
    }


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        logits, target = _data()
        # Uneven shards: rank 0 gets images 0-3, rank 1 gets 4-5.
        shard = slice(0, 4) if rank == 0 else slice(4, 6)
        summaries = {}
        for per_image in (False, True):
            metric = MeanIoU(NUM_CLASSES, per_image=per_image)
            metric.update(logits[shard], target[shard])
            summaries[str(per_image)] = _summary(metric)
        # A rank that saw no data still takes part in the sum.
        idle = MeanIoU(NUM_CLASSES)
        if rank == 0:
            idle.update(logits, target)
        summaries["idle"] = _summary(idle)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(summaries), encoding="utf-8")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    args = (2, str(tmp_path / "init"), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=2, join=True)  # type: ignore[attr-defined,no-untyped-call]
    logits, target = _data()
    expected = {}
    for per_image in (False, True):
        metric = MeanIoU(NUM_CLASSES, per_image=per_image)
        metric.update(logits, target)
        expected[str(per_image)] = _summary(metric)
    expected["idle"] = expected["False"]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text(encoding="utf-8"))
        for key, want in expected.items():
            assert got[key]["confusion"] == want["confusion"]
            assert got[key]["miou"] == pytest.approx(want["miou"], abs=1e-12)
            assert got[key]["iou"] == pytest.approx(want["iou"], abs=1e-12, nan_ok=True)
            assert got[key]["dice"] == pytest.approx(want["dice"], abs=1e-12, nan_ok=True)
    # Sanity: one rank alone would have given a different matrix.
    alone = MeanIoU(NUM_CLASSES)
    alone.update(logits[:4], target[:4])
    assert alone.compute().confusion.tolist() != expected["False"]["confusion"]
