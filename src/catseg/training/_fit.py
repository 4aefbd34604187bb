"""``fit``: epochs of training and validation with checkpoints, resume and torchrun support."""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from catseg._modules import unwrap_model
from catseg._runtime import PRECISIONS, Precision, resolve_precision
from catseg._validation import check_bool, check_choice, check_finite_float, check_int
from catseg.checkpoint import save_checkpoint
from catseg.errors import ConfigError
from catseg.metrics import MeanIoU
from catseg.training import _distributed as ddp
from catseg.training import _loop, _resume
from catseg.training._data import record_data_facts
from catseg.training._history import Callback, EpochRecord, History
from catseg.training._loop import LossFn, ValidationMetric
from catseg.training._resume import Scheduler

logger = logging.getLogger("catseg.training")
_PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class RunOptions:
    """How :func:`fit` runs each step: device, precision, clipping, seed, scheduler interval.

    Attributes:
        device: ``"auto"`` (this process's GPU under torchrun, else CUDA if available,
            else CPU), ``"cpu"``, ``"cuda:N"`` or a :class:`torch.device`.
        precision: ``"auto"`` (bf16 autocast where the hardware has native bf16, fp32
            elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        channels_last: Use the channels-last memory format (``False`` keeps NCHW).
        grad_clip: Clip the gradient norm to this finite value > 0; ``None`` disables it.
        seed: Seeds Python, NumPy and torch (plus ``rank`` under torch.distributed) and
            the loader's own generator, for a repeatable run; ``None`` leaves them alone.
        scheduler_interval: ``"epoch"`` steps the scheduler after each epoch, ``"step"``
            after each optimizer step (OneCycleLR and other per-batch schedules).

    Raises:
        ConfigError: If an attribute is invalid (the device's availability is checked
            when ``fit`` starts).

    Examples:
        >>> RunOptions(grad_clip=0.0)
        Traceback (most recent call last):
        ...
        catseg.errors.ConfigError: grad_clip must be a finite number in (0.0, inf], got 0.0
    """

    device: str | torch.device = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    grad_clip: float | None = None
    seed: int | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"

    def __post_init__(self) -> None:
        if not isinstance(self.device, torch.device) and self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError):
                raise ConfigError(
                    "device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device, "
                    f"got {self.device!r}"
                ) from None
        check_choice("precision", self.precision, PRECISIONS)
        check_bool("channels_last", self.channels_last)
        if self.grad_clip is not None:
            clip = check_finite_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
            object.__setattr__(self, "grad_clip", clip)
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int("seed", self.seed))
        check_choice("scheduler_interval", self.scheduler_interval, ("epoch", "step"))


def fit(  # noqa: PLR0913 - public keyword-only signature (at most 16, issue 26)
    model: nn.Module,
    train_loader: DataLoader[Any],
    *,
    loss_fn: LossFn,
    epochs: int,
    optimizer: Optimizer | None = None,
    val_loader: DataLoader[Any] | None = None,
    metric: ValidationMetric[Any] | None = None,
    scheduler: Scheduler | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    run: RunOptions | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs, validating and checkpointing after each.

    The model is trained in place (it ends with the last epoch's weights; the best ones
    by validation score are in ``best.pt``), on the fast path of :class:`RunOptions` by
    default. A :class:`~catseg.models.UNet` gets the facts its training data states
    (class names, multilabel mode, image size after the transforms, normalisation)
    recorded on its config (:meth:`~catseg.models.UNet.describe`); a fact that disagrees
    with the model's record, or is needed but cannot be read, is a ``ConfigError`` naming
    the ``model.describe(...)`` call that states it.

    With ``checkpoint_dir``, rank 0 writes ``last.pt`` after every epoch (weights, training
    state and RNG streams, history, the run's arguments) and ``best.pt`` on each new best
    score, atomically. A later call with the same arguments continues after the last
    finished epoch (``epochs`` may grow when the scheduler does not depend on it); one whose
    arguments no longer describe the run stops with a
    :class:`~catseg.errors.CheckpointError` naming each change.

    Under torch.distributed (e.g. ``torchrun``) the model is wrapped in
    DistributedDataParallel, the loaders are sharded (see the training guide), BatchNorm
    statistics are copied from rank 0 after each epoch and only rank 0 writes checkpoints
    and logs.

    Args:
        model: Module mapping images ``(N, C, H, W)`` to logits; checkpoints need a
            :class:`~catseg.models.UNet`.
        train_loader: DataLoader of ``(images, masks)`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar`` (logits in fp32), e.g.
            :class:`~catseg.losses.DiceLoss`; also gives the validation loss.
        epochs: Total number of epochs (resumed epochs count).
        optimizer: Default ``AdamW(lr=1e-3, weight_decay=1e-4)``.
        val_loader: Validation batches; ``None`` skips validation and ``best.pt``.
        metric: A :class:`ValidationMetric`; default ``MeanIoU(max(2, num_classes))``, or
            ``MeanIoU(K, mode="multilabel")`` for a multilabel model. ``best.pt`` keeps the
            highest ``compute().miou`` (or ``compute()`` itself when it is a number).
        scheduler: Learning-rate scheduler, stepped as ``run.scheduler_interval`` says;
            ``ReduceLROnPlateau`` gets the validation score (use ``mode="max"``), or the
            training loss without validation.
        checkpoint_dir: Folder for ``last.pt`` and ``best.pt`` (created if missing);
            ``None`` writes nothing.
        resume: Continue from ``checkpoint_dir/last.pt`` when it exists; ``False`` starts
            over and overwrites both files.
        run: Device, precision, channels-last, gradient clipping, seed and scheduler
            interval; ``None`` means ``RunOptions()``.
        callbacks: ``callback(record) -> bool | None``, run after each epoch's checkpoints
            are written; ``True`` stops training, an exception propagates.
        progress: A tqdm bar (``progress`` extra) on rank 0; without tqdm, or with
            ``False``, a line per epoch goes to the ``"catseg.training"`` logger.

    Returns:
        The :class:`History` of all finished epochs, resumed ones included.

    Raises:
        NonFiniteError: If a loss or gradient is NaN/inf; names epoch and step, the model
            and optimizer keep the previous step, ``last.pt`` the previous epoch.
        ConfigError: If an argument is invalid, the data's facts disagree with the model's
            record or a needed one is unknown, or a loader cannot be sharded.
        CheckpointError: If ``last.pt`` cannot be resumed from (the message says why).
        DataError: If a batch is not an ``(images, masks)`` pair or a loader is empty.

    Examples:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from catseg.losses import DiceLoss
        >>> from catseg.models import UNet
        >>> images = torch.rand(8, 3, 16, 16)
        >>> loader = DataLoader(TensorDataset(images, (images[:, 0] > 0.5).long()), batch_size=4)
        >>> model = UNet(num_classes=1, init_features=4, depth=2)
        >>> history = fit(model, loader, loss_fn=DiceLoss(), epochs=2, val_loader=loader,
        ...               run=RunOptions(device="cpu", seed=0), progress=False)
        >>> history.epochs, 0.0 <= history.val_miou[-1] <= 1.0
        ([1, 2], True)
    """
    given = _check_arguments(locals())
    training = _Run(model, train_loader, given)
    bar = _progress_bar(check_bool("progress", progress), epochs, training.epoch)
    try:
        for epoch in range(training.epoch + 1, epochs + 1):
            record = training.run_epoch(epoch)
            training.save(record)
            numbers = record.summary()
            if bar is not None:
                bar.set_postfix(numbers, refresh=False)
                bar.update(1)
            elif ddp.is_main():
                line = " ".join(f"{k} {v}" for k, v in numbers.items())
                logger.info("epoch %d/%d %s (%.1fs)", epoch, epochs, line, record.seconds)
            stop = any([bool(callback(record)) for callback in callbacks])
            if ddp.max_over_processes(float(stop), training.device) > 0:
                if ddp.is_main():
                    logger.info("stopped by a callback after epoch %d", epoch)
                break
    finally:
        if bar is not None:
            bar.close()
    return training.history()


def _check_arguments(given: dict[str, Any]) -> dict[str, Any]:
    """Validate fit's arguments where they enter; ``run`` becomes a RunOptions."""
    check_int("epochs", given["epochs"], minimum=1)
    check_bool("resume", given["resume"])
    scheduler, run = given["scheduler"], given["run"] or RunOptions()
    _loop.check_loop("train_loader", given["train_loader"], given["loss_fn"], scheduler)
    if given["optimizer"] is not None:
        _loop.check_optimizer(given["optimizer"])
    if not isinstance(given["train_loader"], DataLoader):
        raise ConfigError(
            f"train_loader must be a torch DataLoader, got {type(given['train_loader']).__name__}"
        )
    if given["val_loader"] is not None:
        _loop.check_loader("val_loader", given["val_loader"])
    if given["metric"] is not None:
        _loop.check_metric(given["metric"])
    if not isinstance(run, RunOptions):
        raise ConfigError(f"run must be a RunOptions or None, got {run!r}")
    if isinstance(scheduler, ReduceLROnPlateau) and run.scheduler_interval == "step":
        raise ConfigError("ReduceLROnPlateau needs RunOptions(scheduler_interval='epoch')")
    folder, callbacks = given["checkpoint_dir"], given["callbacks"]
    if folder is not None and (not isinstance(folder, str | os.PathLike) or str(folder) == ""):
        raise ConfigError(f"checkpoint_dir must be a folder path or None, got {folder!r}")
    if callable(callbacks) or not isinstance(callbacks, Sequence):
        raise ConfigError(
            f"callbacks must be a list or tuple of callables, got {callbacks!r}; "
            "write callbacks=[my_callback]"
        )
    for index, callback in enumerate(callbacks):
        if not callable(callback):
            raise ConfigError(f"callbacks[{index}] must be callable, got {callback!r}")
    return {**given, "run": run}


def _progress_bar(show: bool, total: int, initial: int) -> Any:
    """A tqdm bar on rank 0 when asked for and installed (the ``progress`` extra), else None."""
    if not (show and ddp.is_main()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="fit", unit="epoch")


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


def _default_metric(model: nn.Module) -> MeanIoU:
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, int):
        raise ConfigError(
            f"cannot choose a validation metric for {type(model).__name__} (it has no "
            "num_classes attribute); pass metric=MeanIoU(num_classes)"
        )
    if getattr(getattr(model, "config", None), "mode", None) == "multilabel":
        return MeanIoU(num_classes, mode="multilabel")
    return MeanIoU(max(2, num_classes))


class _Run:
    """The state of one ``fit`` call: device, model, optimizer, loaders, records, best score."""

    def __init__(self, model: nn.Module, train_loader: DataLoader[Any], given: dict[str, Any]):
        self.run: RunOptions = given["run"]
        self.loss_fn, self.scheduler = given["loss_fn"], given["scheduler"]
        self.folder = None if given["checkpoint_dir"] is None else Path(given["checkpoint_dir"])
        self.device = ddp.device_for(self.run.device)
        self.dtype = resolve_precision(self.run.precision, self.device)
        self.net = unwrap_model(model)
        record_data_facts(self.net, train_loader.dataset, need_size=self.folder is not None)
        if self.run.seed is not None:
            _resume.seed_everything(self.run.seed, train_loader)
        _loop.prepare_model(self.net, self.device, channels_last=self.run.channels_last)
        self.optimizer: Optimizer = given["optimizer"] or torch.optim.AdamW(
            self.net.parameters(), lr=1e-3, weight_decay=1e-4
        )
        fp16 = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        val_loader, self.metric = given["val_loader"], given["metric"]
        if val_loader is not None and self.metric is None:
            self.metric = _default_metric(self.net)
        self.train_loader = ddp.shard(train_loader, train=True, seed=self.run.seed or 0)
        self.val_loader = None if val_loader is None else ddp.shard(val_loader, train=False)
        self.started = _resume.run_record(
            given["epochs"], self.train_loader, self.scheduler, self.run.scheduler_interval
        )
        self.epoch, self.records, self.best = 0, list[EpochRecord](), -math.inf
        if self.folder is not None and given["resume"]:
            self._resume(self.folder / "last.pt")
        self.train_model = ddp.wrap(self.net, self.device)

    def _resume(self, path: Path) -> None:
        payload = _resume.load_resume(path, self.started, self.scheduler)
        if payload is None:
            return
        parts = {"model": self.net, "optimizer": self.optimizer, "scheduler": self.scheduler}
        _resume.restore(payload, path, {**parts, "scaler": self.scaler}, self.train_loader)
        training = payload["training"]
        self.epoch = int(training["epoch"])
        self.records = [EpochRecord.from_dict(r) for r in training.get("history", [])]
        self.best = -math.inf if training.get("best_miou") is None else training["best_miou"]
        if ddp.is_main():
            logger.info("resuming from %s after epoch %d", path, self.epoch)

    def run_epoch(self, epoch: int) -> EpochRecord:
        """Train one epoch, validate, step an epoch scheduler; return the epoch's record."""
        started = time.perf_counter()
        run, scheduler = self.run, self.scheduler
        ddp.set_epoch(self.train_loader, epoch - 1)
        per_step = run.scheduler_interval == "step"  # never ReduceLROnPlateau (refused)
        loss, images, seconds = _loop.run_train_epoch(
            self.train_model, self.train_loader, self.loss_fn, self.optimizer,
            device=self.device, dtype=self.dtype, scaler=self.scaler, grad_clip=run.grad_clip,
            channels_last=run.channels_last, scheduler=scheduler if per_step else None,
            epoch=epoch,
        )  # fmt: skip
        ddp.broadcast_buffers(self.net)
        score = val_loss = None
        if self.val_loader is not None and self.metric is not None:
            result, val_loss = _loop.run_evaluation(
                self.net, self.val_loader, self.metric, device=self.device, dtype=self.dtype,
                channels_last=run.channels_last, loss_fn=self.loss_fn,
            )  # fmt: skip
            score = score_of(result)
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(loss if score is None or math.isnan(score) else score)
        elif scheduler is not None and not per_step:
            scheduler.step()
        seconds_all = ddp.max_over_processes(time.perf_counter() - started, self.device)
        lr = float(self.optimizer.param_groups[0]["lr"])
        return EpochRecord(
            epoch, loss, score, seconds_all, images / max(seconds, 1e-9), lr, val_loss
        )

    def save(self, record: EpochRecord) -> None:
        """Remember the record; rank 0 writes ``last.pt`` (and ``best.pt`` on a new best)."""
        self.records.append(record)
        score = record.val_miou
        improved = score is not None and not math.isnan(score) and score > self.best
        self.best = score if improved and score is not None else self.best
        if self.folder is None:
            return
        rngs = ddp.gather_objects(_resume.rng_state(self.train_loader))
        if ddp.is_main():
            states = {
                name: None if part is None else part.state_dict()
                for name, part in (("optimizer", self.optimizer), ("scheduler", self.scheduler),
                                   ("scaler", self.scaler))
            }  # fmt: skip
            best = None if self.best == -math.inf else self.best
            history = [r.to_dict() for r in self.records]
            state = {**states, "epoch": record.epoch, "rng": rngs, "history": history,
                     "best_miou": best, "run": self.started}  # fmt: skip
            save_checkpoint(self.folder / "last.pt", self.net, extra=record.to_dict(),
                            training_state=state)  # fmt: skip
            if improved:
                save_checkpoint(self.folder / "best.pt", self.net, extra=record.to_dict())
        ddp.barrier()

    def history(self) -> History:
        """The :class:`History` of every finished epoch, resumed ones included."""
        precision = _PRECISION_NAMES.get(self.dtype, str(self.dtype))
        return History(tuple(self.records), precision, str(self.device),
                       self.run.channels_last, ddp.world_size())  # fmt: skip
