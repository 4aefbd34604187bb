"""Two-process ``fit`` under torchrun on CUDA (``benchmarks/gpu_checks.py`` runs it).

    torchrun --standalone --nproc_per_node=2 benchmarks/gpu_ddp_fit.py --backend nccl

Each process uses GPU ``LOCAL_RANK % device_count()`` (so two processes can share one GPU
where NCCL allows it). Rank 0 prints the history and checks that every process ended
with the same weights.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from catseg import DiceLoss, MeanIoU, UNet, VOCSegmentationDataset, fit
from catseg.data import make_synthetic_voc
from catseg.training import RunOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="nccl")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    local = int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local % torch.cuda.device_count())
    torch.cuda.set_device(device)
    dist.init_process_group(args.backend)
    rank = dist.get_rank()
    root = Path(tempfile.gettempdir()) / "catseg-ddp-voc"
    if rank == 0 and not (root / "class_names.txt").is_file():
        make_synthetic_voc(root, n=128, size=64)
    dist.barrier()
    train = VOCSegmentationDataset(root, "train", image_dtype="uint8", cache=True)
    val = VOCSegmentationDataset(root, "val", image_dtype="uint8", cache=True)
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=8, depth=3)
    history = fit(
        model,
        DataLoader(train, batch_size=8, shuffle=True),
        val_loader=DataLoader(val, batch_size=8),
        metric=MeanIoU(2),
        loss_fn=DiceLoss(),
        epochs=args.epochs,
        run=RunOptions(device=device),
        progress=False,
    )
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).to(device)
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if rank == 0:
        same = all(torch.equal(gathered[0], g) for g in gathered[1:])
        print(f"backend {args.backend}, world size {history.world_size}, device {history.device}")
        for r in history.records:
            print(
                f"epoch {r.epoch}: loss {r.train_loss:.4f} val mIoU {r.val_miou:.4f} "
                f"{r.images_per_second:.0f} img/s"
            )
        print(f"weights identical on every rank: {same}")
    dist.barrier()  # every process here first: gloo aborts a peer still connected
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
