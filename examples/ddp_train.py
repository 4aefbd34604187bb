"""Train with several processes under torchrun (DDP): the same ``fit`` call as in one process.

    # 2 CPU processes on this machine (gloo backend)
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py
    # 4 GPUs on this machine (nccl backend), on your own VOC folder
    torchrun --standalone --nproc_per_node=4 examples/ddp_train.py --data DIR
    # 2 machines with 8 GPUs each: run on both, --node_rank=0 on the first, 1 on the second
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 examples/ddp_train.py --data DIR

Without torchrun (``python examples/ddp_train.py``) it trains in one process, on one
thread as ``quickstart.py`` does (torchrun gives each process one thread already).

Every process runs this script. ``fit`` sees the initialised process group and wraps the
model in DistributedDataParallel, gives each process its own shard of the data through a
DistributedSampler, sums the validation counts over processes, and lets only rank 0 write
checkpoints and print. Outputs go to ``outputs/ddp_train/`` in the repository (ignored by
git) unless ``--out`` names a folder, which all processes must reach (checkpoints are
written by rank 0 and read back by rank 0 on resume).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.distributed as dist
from _data import output_dir, parser
from torch.utils.data import DataLoader

from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.losses import DiceLoss
from catseg.models import UNet
from catseg.training import RunOptions, fit


def main() -> None:
    options = parser(__doc__)
    options.add_argument(
        "--data", type=Path, default=None, help="a Pascal-VOC folder (default: synthetic data)"
    )
    options.add_argument(
        "--out", type=Path, default=output_dir("ddp_train"), help="checkpoints, synthetic data"
    )
    options.add_argument("--epochs", type=int, default=10, help="passes over the data")
    options.add_argument("--batch-size", type=int, default=8, help="images per process and step")
    options.add_argument("--size", type=int, default=64, help="image side in pixels")
    args = options.parse_args()

    launched = "RANK" in os.environ  # torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, ...
    if launched:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend)
    else:  # a model this small trains fastest on one thread (see quickstart.py)
        torch.set_num_threads(1)
    rank = dist.get_rank() if launched else 0
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")

    root = args.data
    if root is None:  # rank 0 writes the synthetic dataset once; the others wait for it
        root = args.out / "synthetic"
        if rank == 0 and not (root / "class_names.txt").is_file():
            make_synthetic_voc(root, n=128, size=args.size)
        if launched:
            dist.barrier()

    train = VOCSegmentationDataset(
        root, "train", image_size=args.size, cache=True, image_dtype="uint8"
    )
    val = VOCSegmentationDataset(root, "val", image_size=args.size, cache=True, image_dtype="uint8")
    binary = len(train.class_names) == 2
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = UNet(num_classes=1 if binary else len(train.class_names), init_features=8, depth=3)

    history = fit(
        model,
        # a plain loader: fit rebuilds it with a DistributedSampler (or pass your own)
        DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True),
        loss_fn=DiceLoss(mode="binary" if binary else "multiclass"),
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        epochs=args.epochs,
        val_loader=DataLoader(val, batch_size=16),
        checkpoint_dir=args.out / "checkpoints",
        run=RunOptions(seed=0),
    )
    if rank == 0:  # fit already showed every epoch (bar or log line): only the summary here
        print(
            f"{history.world_size} processes, best val mIoU {history.best_val_miou:.4f} "
            f"(epoch {history.best_epoch})"
        )
    if launched:
        dist.barrier()  # every process here first: gloo aborts a peer still connected
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
