"""One ``fit`` call as an object: set-up, resume, one epoch, save."""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from catseg._modules import unwrap_model
from catseg._runtime import resolve_device, resolve_precision
from catseg._validation import check_bool, check_int
from catseg.checkpoint import save_checkpoint
from catseg.errors import ConfigError
from catseg.metrics import MeanIoU
from catseg.models.preprocessing import record_preprocessing
from catseg.training import _distributed as ddp
from catseg.training._history import Callback, EpochRecord, History
from catseg.training._loop import (
    LossFn,
    ValidationMetric,
    check_metric,
    prepare_model,
    run_evaluation,
    run_train_epoch,
)
from catseg.training._options import CheckpointOptions, RunOptions
from catseg.training._resume import (
    RunRecord,
    Scheduler,
    check_same_run,
    load_resume,
    restore,
)
from catseg.training._state import CheckpointMeta, loader_generators, rng_state, seed_everything

logger = logging.getLogger("catseg.training")

LAST = "last.pt"
BEST = "best.pt"
_PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class FitSpec:
    """Everything a ``fit`` call asked for besides the model and the training data, checked."""

    loss_fn: LossFn
    epochs: int
    optimizer: Optimizer | None
    val_loader: DataLoader[Any] | None
    metric: ValidationMetric[Any] | None
    scheduler: Scheduler | None
    checkpoint: CheckpointOptions | None
    run: RunOptions
    callbacks: tuple[Callback, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, minimum=1))
        if not callable(self.loss_fn):
            raise ConfigError(f"loss_fn must be callable(logits, masks), got {self.loss_fn!r}")
        if self.optimizer is not None and not isinstance(self.optimizer, Optimizer):
            raise ConfigError(f"optimizer must be a torch Optimizer, got {self.optimizer!r}")
        if self.metric is not None:
            check_metric(self.metric)
        if self.scheduler is not None and not all(
            callable(getattr(self.scheduler, m, None))
            for m in ("step", "state_dict", "load_state_dict")
        ):
            raise ConfigError(
                f"scheduler must be a torch learning-rate scheduler, got {self.scheduler!r}"
            )
        if isinstance(self.scheduler, ReduceLROnPlateau) and self.run.scheduler_interval == "step":
            raise ConfigError("ReduceLROnPlateau needs RunOptions(scheduler_interval='epoch')")
        for index, callback in enumerate(self.callbacks):
            if not callable(callback):
                raise ConfigError(f"callbacks[{index}] must be callable, got {callback!r}")


def _default_metric(model: nn.Module, mode: str | None = None) -> MeanIoU:
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, int):
        raise ConfigError(
            f"cannot choose a validation metric for {type(model).__name__} (it has no "
            "num_classes attribute); pass metric=MeanIoU(num_classes)"
        )
    if mode == "multilabel":
        return MeanIoU(num_classes, mode="multilabel")
    return MeanIoU(max(2, num_classes))


def score_of(result: object) -> float:
    """The number ``fit`` ranks epochs by: ``result.miou``, or the result itself.

    Raises:
        ConfigError: If neither is a number or a one-element tensor.
    """
    value = getattr(result, "miou", result)
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real):
        return float(value)
    raise ConfigError(
        f"metric.compute() returned {type(result).__name__}; fit needs a number, a "
        "one-element tensor or a result with a miou attribute to pick best.pt"
    )


class TrainingRun:
    """The state of one ``fit`` call: model, optimizer, loaders, records, best score.

    Built in three steps: the constructor sets up device, precision, seeds, defaults and
    the distributed shards; :meth:`start` resumes from ``last.pt``; then
    :meth:`run_epoch`, :meth:`save` and :meth:`should_stop` run each epoch.
    """

    def __init__(self, model: nn.Module, train_loader: DataLoader[Any], spec: FitSpec) -> None:
        self.spec = spec
        run = spec.run
        self.device = resolve_device(ddp.default_device(run.device))
        ddp.bind_device(self.device)
        self.dtype = resolve_precision(run.precision, self.device)
        self.net = unwrap_model(model)
        if run.seed is not None:
            seed_everything(run.seed + ddp.rank())
            for gen in loader_generators(train_loader):
                gen.manual_seed(run.seed)
        prepare_model(self.net, self.device, channels_last=run.channels_last)
        self.optimizer = spec.optimizer or torch.optim.AdamW(
            self.net.parameters(), lr=1e-3, weight_decay=1e-4
        )
        self.ckpt_dir = None if spec.checkpoint is None else Path(spec.checkpoint.directory)
        self.meta = self._meta(spec.checkpoint, train_loader)
        self.metric: ValidationMetric[Any] | None = spec.metric
        if spec.val_loader is not None and self.metric is None:
            self.metric = _default_metric(self.net, self.meta.mode)
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        )
        self.train_model = model
        self.train_loader = ddp.shard_train_loader(train_loader, seed=run.seed or 0)
        self.val_loader = (
            None if spec.val_loader is None else ddp.shard_eval_loader(spec.val_loader)
        )
        self.record = RunRecord.of(
            epochs=spec.epochs,
            loader=self.train_loader,
            scheduler=spec.scheduler,
            scheduler_interval=run.scheduler_interval,
        )
        self.start_epoch = 0
        self.records: list[EpochRecord] = []
        self.best = -math.inf

    def _meta(self, options: CheckpointOptions | None, loader: DataLoader[Any]) -> CheckpointMeta:
        meta = (options.meta if options is not None else None) or CheckpointMeta.from_dataset(
            loader.dataset, num_classes=getattr(self.net, "num_classes", None)
        )
        record_preprocessing(
            self.net, meta.mean, meta.std, what="the training data's normalisation"
        )
        if options is not None:
            meta.check(self.net)
        return meta

    def start(self) -> None:
        """Resume from ``last.pt`` (when asked and present), then wrap the model for DDP.

        Raises:
            CheckpointError: If ``last.pt`` is unreadable, was written by another run
                (other model, optimizer, scheduler or arguments) or has no training state.
        """
        options = self.spec.checkpoint
        if self.ckpt_dir is not None and options is not None and options.resume:
            path = self.ckpt_dir / LAST
            payload = load_resume(path)
            if payload is not None:
                check_same_run(path, payload["training"], self.record, self.spec.scheduler)
                restored = restore(
                    payload,
                    path,
                    model=self.net,
                    optimizer=self.optimizer,
                    scheduler=self.spec.scheduler,
                    scaler=self.scaler,
                    train_loader=self.train_loader,
                )
                self.start_epoch, self.records = restored.epoch, restored.records
                self.best = restored.best_score
                if ddp.is_main():
                    logger.info("resuming from %s after epoch %d", path, self.start_epoch)
        if ddp.is_distributed():
            self.train_model = ddp.wrap(self.net, self.device)

    def epochs_left(self) -> range:
        """The epoch numbers still to train (counted from 1)."""
        return range(self.start_epoch + 1, self.spec.epochs + 1)

    def run_epoch(self, epoch: int) -> EpochRecord:
        """Train one epoch, validate, step an epoch scheduler; return the epoch's record."""
        started = time.perf_counter()
        run, scheduler = self.spec.run, self.spec.scheduler
        ddp.set_epoch(self.train_loader, epoch - 1)
        step_scheduler = None
        if run.scheduler_interval == "step" and not isinstance(scheduler, ReduceLROnPlateau):
            step_scheduler = scheduler  # FitSpec refused ReduceLROnPlateau per step
        stats = run_train_epoch(
            self.train_model,
            self.train_loader,
            self.spec.loss_fn,
            self.optimizer,
            device=self.device,
            dtype=self.dtype,
            scaler=self.scaler,
            grad_clip=run.grad_clip,
            channels_last=run.channels_last,
            scheduler=step_scheduler,
            epoch=epoch,
        )
        ddp.broadcast_buffers(self.net)
        score, val_loss = self._validate()
        if scheduler is not None and run.scheduler_interval == "epoch":
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(stats.loss if score is None or math.isnan(score) else score)
            else:
                scheduler.step()
        return EpochRecord(
            epoch=epoch,
            train_loss=stats.loss,
            val_miou=score,
            seconds=ddp.max_over_processes(time.perf_counter() - started, self.device),
            images_per_second=stats.images / max(stats.seconds, 1e-9),
            lr=float(self.optimizer.param_groups[0]["lr"]),
            val_loss=val_loss,
        )

    def _validate(self) -> tuple[float | None, float | None]:
        if self.val_loader is None or self.metric is None:
            return None, None
        result, val_loss = run_evaluation(
            self.net,
            self.val_loader,
            self.metric,
            device=self.device,
            dtype=self.dtype,
            channels_last=self.spec.run.channels_last,
            loss_fn=self.spec.loss_fn,
        )
        return score_of(result), val_loss

    def save(self, record: EpochRecord) -> None:
        """Remember the record; rank 0 writes ``last.pt`` (and ``best.pt`` on a new best)."""
        self.records.append(record)
        score = record.val_miou
        improved = score is not None and not math.isnan(score) and score > self.best
        if improved:
            self.best = float(score)  # type: ignore[arg-type]
        if self.ckpt_dir is None:
            return
        rngs = ddp.gather_objects(rng_state(self.train_loader))
        if ddp.is_main():
            self._write(self.ckpt_dir, record, improved, rngs)
        ddp.barrier()

    def _write(
        self, folder: Path, record: EpochRecord, improved: bool, rngs: list[dict[str, Any]]
    ) -> None:
        scheduler = self.spec.scheduler
        training_state = {
            "epoch": record.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": rngs,
            "history": [r.to_dict() for r in self.records],
            "best_miou": None if self.best == -math.inf else self.best,
            "run": self.record.to_dict(),
        }
        meta = self.meta
        for name, state in ((LAST, training_state), (BEST, None)):
            if name == BEST and not improved:
                continue
            save_checkpoint(
                folder / name,
                self.net,
                classes=list(meta.classes),
                image_size=meta.image_size,
                mean=meta.mean,
                std=meta.std,
                extra={
                    **record.to_dict(),
                    "mode": meta.resolved_mode(getattr(self.net, "num_classes", None)),
                },
                training_state=state,
            )

    def should_stop(self, record: EpochRecord) -> bool:
        """Run the callbacks; ``True`` on every process when one of them asked to stop."""
        stop = False
        for callback in self.spec.callbacks:
            stop = bool(callback(record)) or stop
        if ddp.any_process(stop, self.device):
            if ddp.is_main():
                logger.info("stopped by a callback after epoch %d", record.epoch)
            return True
        return False

    def history(self) -> History:
        """The :class:`History` of every finished epoch, resumed ones included."""
        return History(
            records=tuple(self.records),
            precision=_PRECISION_NAMES.get(self.dtype, str(self.dtype)),
            device=str(self.device),
            channels_last=self.spec.run.channels_last,
            world_size=ddp.world_size(),
        )


def check_progress(progress: object) -> bool:
    """``progress`` as a bool (one wording with the other flags)."""
    return check_bool("progress", progress)


def as_callbacks(callbacks: Sequence[Callback]) -> tuple[Callback, ...]:
    """``callbacks`` as a tuple.

    Raises:
        ConfigError: If it is not a sequence (a single callable is a common slip).
    """
    if callable(callbacks) or not isinstance(callbacks, Sequence):
        raise ConfigError(
            f"callbacks must be a list or tuple of callables, got {callbacks!r}; "
            "write callbacks=[my_callback]"
        )
    return tuple(callbacks)
