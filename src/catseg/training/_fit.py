"""``fit``: epochs of training and validation with checkpoints, resume and torchrun support."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader

from catseg._runtime import Precision, resolve_device, resolve_precision
from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.errors import CatsegError, CheckpointError, ConfigError
from catseg.metrics import MeanIoU
from catseg.models.preprocessing import record_preprocessing
from catseg.training import _distributed as ddp
from catseg.training._history import Callback, EpochRecord, History
from catseg.training._loop import LossFn, evaluate, prepare_model, run_train_epoch
from catseg.training._progress import Progress
from catseg.training._state import (
    CheckpointMeta,
    loader_generators,
    rng_state,
    seed_everything,
    set_rng_state,
)

logger = logging.getLogger("catseg.training")

LAST = "last.pt"
BEST = "best.pt"
_PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _check_args(epochs: int, grad_clip: float | None, scheduler_interval: str) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be an int >= 1, got {epochs!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ConfigError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ConfigError(
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
        )


def _load_resume(path: Path, device: torch.device) -> dict[str, Any] | None:
    """Rank 0 reads ``last.pt`` (if any) and every process gets its contents."""
    payload: dict[str, Any] | None = None
    error: str | None = None
    if ddp.is_main() and path.is_file():
        try:
            ckpt = load_checkpoint(path, map_location="cpu")
        except CatsegError as err:
            error = f"cannot resume from {path}: {err}"
        else:
            if ckpt.training_state is None:
                error = (
                    f"cannot resume from {path}: it has no training state (it was not "
                    "written by fit); pass resume=False or another checkpoint_dir"
                )
            else:
                payload = {"state_dict": ckpt.state_dict, "training": ckpt.training_state}
    payload, error = ddp.broadcast_object((payload, error))
    if error is not None:
        raise CheckpointError(error)
    return payload


def _restore(
    payload: dict[str, Any],
    path: Path,
    *,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | ReduceLROnPlateau | None,
    scaler: torch.amp.GradScaler | None,
    train_loader: DataLoader[Any],
) -> tuple[int, list[EpochRecord], float]:
    training = payload["training"]
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
        optimizer.load_state_dict(training["optimizer"])
        if scheduler is not None and training.get("scheduler") is not None:
            scheduler.load_state_dict(training["scheduler"])
        if scaler is not None and training.get("scaler") is not None:
            scaler.load_state_dict(training["scaler"])
    except (RuntimeError, ValueError, KeyError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = "; ".join(lines[:3]) + (f"; ... ({len(lines) - 3} more)" if len(lines) > 3 else "")
        raise CheckpointError(
            f"cannot resume from {path}: it does not fit this model/optimizer/scheduler "
            f"({detail}); pass resume=False or another checkpoint_dir"
        ) from err
    rngs = training.get("rng", [])
    if ddp.rank() < len(rngs):
        set_rng_state(rngs[ddp.rank()], train_loader)
    records = [EpochRecord.from_dict(r) for r in training.get("history", [])]
    best = training.get("best_miou")
    return int(training["epoch"]), records, -math.inf if best is None else float(best)


def fit(
    model: nn.Module,
    train_loader: DataLoader[Any],
    *,
    loss_fn: LossFn,
    epochs: int,
    optimizer: Optimizer | None = None,
    val_loader: DataLoader[Any] | None = None,
    metric: MeanIoU | None = None,
    scheduler: LRScheduler | ReduceLROnPlateau | None = None,
    scheduler_interval: Literal["epoch", "step"] = "epoch",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    checkpoint_meta: CheckpointMeta | None = None,
    precision: Precision = "auto",
    channels_last: bool = True,
    grad_clip: float | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs, validating and checkpointing after each.

    The model is trained in place (it ends with the weights of the last epoch; the best
    ones by validation mIoU are in ``best.pt``). The fast path is the default:
    ``precision="auto"`` (bf16 autocast where the hardware has native bf16, fp32
    elsewhere), channels-last model and inputs, loss and metric in fp32, a gradient
    scaler only for fp16. uint8 image batches are converted to float on the device.

    With ``checkpoint_dir``, rank 0 writes ``last.pt`` after every epoch (weights,
    optimizer, scheduler, scaler, epoch, every process's RNG streams and the history so
    far) and ``best.pt`` whenever validation mIoU improves, both atomically with
    :func:`~catseg.checkpoint.save_checkpoint`. With ``resume=True`` a later call with
    the same arguments continues after the last finished epoch, so a killed run loses at
    most the epoch in progress. ``resume=False`` starts over and overwrites the files.

    Under torch.distributed (e.g. started by ``torchrun``) the model is wrapped in
    DistributedDataParallel; a train loader without a DistributedSampler is rebuilt with
    one (shuffling if it shuffled, seeded with ``seed`` or 0; batch size, workers,
    collate function, pinned memory and drop_last kept) and ``set_epoch`` is called each
    epoch; the validation loader is split into disjoint unpadded shards and the metric
    sums its counts over processes, so every process sees the mIoU of the whole set.
    BatchNorm statistics are copied from rank 0 after each epoch. Only rank 0 writes
    checkpoints and logs; all processes wait for the write.

    Args:
        model: Module mapping images ``(N, C, H, W)`` to logits; checkpoints need a
            :class:`~catseg.models.UNet` (its config is saved).
        train_loader: DataLoader of ``(images, masks)`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar``, e.g.
            :class:`~catseg.losses.DiceLoss`; logits arrive as fp32.
        epochs: Total number of epochs (resumed epochs count).
        optimizer: Optimizer over ``model``'s parameters; default
            ``AdamW(lr=1e-3, weight_decay=1e-4)``.
        val_loader: DataLoader of validation batches; ``None`` skips validation and
            ``best.pt``.
        metric: Validation metric; default ``MeanIoU(max(2, model.num_classes))``.
        scheduler: Learning-rate scheduler. ``ReduceLROnPlateau`` is stepped with the
            validation mIoU (use ``mode="max"``), or the training loss without validation.
        scheduler_interval: ``"epoch"`` steps the scheduler after each epoch, ``"step"``
            after each optimizer step (for OneCycleLR and other per-batch schedules).
        checkpoint_dir: Folder for ``last.pt``/``best.pt``; ``None`` writes nothing.
        resume: Continue from ``checkpoint_dir/last.pt`` when it exists.
        checkpoint_meta: Class names, image size and normalisation saved in the
            checkpoints; default :meth:`CheckpointMeta.from_dataset` of the train dataset.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        channels_last: Use the channels-last memory format (``False`` keeps NCHW).
        grad_clip: Clip the gradient norm to this value; ``None`` disables clipping.
        callbacks: Callables ``callback(record) -> bool | None`` run after each epoch's
            checkpoints are written; ``True`` stops training (early stopping), an
            exception stops it and propagates.
        seed: Seeds python, NumPy and torch (plus ``rank`` under torch.distributed) and
            the loader's own generator, for a repeatable run; ``None`` leaves them alone.
        device: ``"auto"`` (this process's GPU under torchrun, else CUDA if available,
            else CPU), ``"cpu"``, ``"cuda:N"`` or a torch.device.
        progress: Show a tqdm bar (``progress`` extra) on rank 0; without tqdm, or with
            ``False``, a line per epoch goes to the ``"catseg.training"`` logger.

    Returns:
        The :class:`History` of all finished epochs, resumed ones included.

    Raises:
        NonFiniteError: If a loss is NaN/inf; names epoch and step, ``last.pt`` keeps the
            previous epoch.
        ConfigError: If an argument is invalid, the class names do not fit the model,
            a default metric cannot be chosen, or a loader cannot be sharded.
        CheckpointError: If ``last.pt`` cannot be resumed from (other model/optimizer).
        DataError: If a batch is not an ``(images, masks)`` pair or the loader is empty.

    Shape:
        images ``(N, C, H, W)`` uint8 or float; masks ``(N, H, W)`` integer class indices.

    Examples:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from catseg.losses import DiceLoss
        >>> from catseg.models import UNet
        >>> images = torch.rand(8, 3, 16, 16)
        >>> masks = (images[:, 0] > 0.5).long()
        >>> loader = DataLoader(TensorDataset(images, masks), batch_size=4)
        >>> model = UNet(num_classes=1, init_features=4, depth=2)
        >>> history = fit(model, loader, loss_fn=DiceLoss(), epochs=2, val_loader=loader,
        ...               device="cpu", progress=False, seed=0)
        >>> history.epochs, 0.0 <= history.val_miou[-1] <= 1.0
        ([1, 2], True)
    """
    _check_args(epochs, grad_clip, scheduler_interval)
    dev = resolve_device(ddp.default_device(device))
    ddp.bind_device(dev)
    dtype = resolve_precision(precision, dev)
    net = ddp.unwrap(model)
    if seed is not None:
        seed_everything(seed + ddp.rank())
        for gen in loader_generators(train_loader):
            gen.manual_seed(seed)
    prepare_model(net, dev, channels_last=channels_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    if val_loader is not None and metric is None:
        metric = _default_metric(net)
    meta = checkpoint_meta or CheckpointMeta.from_dataset(
        train_loader.dataset, num_classes=getattr(net, "num_classes", None)
    )
    record_preprocessing(net, meta.mean, meta.std, what="the training data's normalisation")
    ckpt_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if ckpt_dir is not None:
        meta.check(net)
    scaler = torch.amp.GradScaler(dev.type) if dtype == torch.float16 else None

    start_epoch, best_miou = 0, -math.inf
    records: list[EpochRecord] = []
    if ckpt_dir is not None and resume:
        payload = _load_resume(ckpt_dir / LAST, dev)
        if payload is not None:
            start_epoch, records, best_miou = _restore(
                payload,
                ckpt_dir / LAST,
                model=net,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                train_loader=train_loader,
            )
            if ddp.is_main():
                logger.info("resuming from %s after epoch %d", ckpt_dir / LAST, start_epoch)

    train_model = ddp.wrap(net, dev) if ddp.is_distributed() else model
    train_loader = ddp.shard_train_loader(train_loader, seed=0 if seed is None else seed)
    if val_loader is not None:
        val_loader = ddp.shard_eval_loader(val_loader)
    history_meta = {
        "precision": _PRECISION_NAMES.get(dtype, str(dtype)),
        "device": str(dev),
        "channels_last": channels_last,
        "world_size": ddp.world_size(),
    }
    step_scheduler = scheduler if scheduler_interval == "step" else None
    if isinstance(step_scheduler, ReduceLROnPlateau):
        raise ConfigError("ReduceLROnPlateau needs scheduler_interval='epoch'")

    bar = Progress(epochs, start_epoch, bar=progress, active=ddp.is_main())
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            started = time.perf_counter()
            ddp.set_epoch(train_loader, epoch - 1)
            stats = run_train_epoch(
                train_model,
                train_loader,
                loss_fn,
                optimizer,
                device=dev,
                dtype=dtype,
                scaler=scaler,
                grad_clip=grad_clip,
                channels_last=channels_last,
                scheduler=step_scheduler,
                epoch=epoch,
            )
            ddp.broadcast_buffers(net)
            miou: float | None = None
            if val_loader is not None and metric is not None:
                result = evaluate(
                    net, val_loader, metric, device=dev, precision=precision,
                    channels_last=channels_last,
                )  # fmt: skip
                miou = float(result.miou)
            _step_epoch_scheduler(scheduler, scheduler_interval, miou, stats.loss)
            record = EpochRecord(
                epoch=epoch,
                train_loss=stats.loss,
                val_miou=miou,
                seconds=ddp.max_over_processes(time.perf_counter() - started, dev),
                images_per_second=stats.images / max(stats.seconds, 1e-9),
                lr=float(optimizer.param_groups[0]["lr"]),
            )
            records.append(record)
            improved = miou is not None and not math.isnan(miou) and miou > best_miou
            if improved:
                best_miou = float(miou)  # type: ignore[arg-type]
            if ckpt_dir is not None:
                rngs = ddp.gather_objects(rng_state(train_loader))
                if ddp.is_main():
                    _save(
                        ckpt_dir, net, meta, record, improved,
                        {
                            "epoch": epoch,
                            "optimizer": optimizer.state_dict(),
                            "scheduler": None if scheduler is None else scheduler.state_dict(),
                            "scaler": None if scaler is None else scaler.state_dict(),
                            "rng": rngs,
                            "history": [r.to_dict() for r in records],
                            "best_miou": None if best_miou == -math.inf else best_miou,
                        },
                    )  # fmt: skip
                ddp.barrier()
            bar.update(record)
            stop = False
            for callback in callbacks:
                stop = bool(callback(record)) or stop
            if ddp.any_process(stop, dev):
                if ddp.is_main():
                    logger.info("stopped by a callback after epoch %d", epoch)
                break
    finally:
        bar.close()
    return History(records=tuple(records), **history_meta)  # type: ignore[arg-type]


def _default_metric(model: nn.Module) -> MeanIoU:
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, int):
        raise ConfigError(
            f"cannot choose a validation metric for {type(model).__name__} (it has no "
            "num_classes attribute); pass metric=MeanIoU(num_classes)"
        )
    return MeanIoU(max(2, num_classes))


def _step_epoch_scheduler(
    scheduler: LRScheduler | ReduceLROnPlateau | None,
    interval: str,
    miou: float | None,
    loss: float,
) -> None:
    if scheduler is None or interval != "epoch":
        return
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(loss if miou is None or math.isnan(miou) else miou)
    else:
        scheduler.step()


def _save(
    ckpt_dir: Path,
    model: nn.Module,
    meta: CheckpointMeta,
    record: EpochRecord,
    improved: bool,
    training_state: dict[str, Any],
) -> None:
    common: dict[str, Any] = {
        "classes": list(meta.classes),
        "image_size": meta.image_size,
        "mean": meta.mean,
        "std": meta.std,
        "extra": record.to_dict(),
    }
    save_checkpoint(ckpt_dir / LAST, model, training_state=training_state, **common)
    if improved:
        save_checkpoint(ckpt_dir / BEST, model, **common)
