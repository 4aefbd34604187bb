"""``fit``: epochs of training and validation with checkpoints, resume and torchrun support."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader
from typing_extensions import Unpack

from catseg.training import _distributed as ddp
from catseg.training._history import Callback, History
from catseg.training._loop import LossFn, ValidationMetric
from catseg.training._options import (
    CheckpointOptions,
    DeprecatedFitKeywords,
    RunOptions,
    merge_deprecated,
)
from catseg.training._progress import Progress
from catseg.training._resume import Scheduler
from catseg.training._run import FitSpec, TrainingRun, as_callbacks, check_progress

__all__ = ["fit"]


def fit(
    model: nn.Module,
    train_loader: DataLoader[Any],
    *,
    loss_fn: LossFn,
    epochs: int,
    optimizer: Optimizer | None = None,
    val_loader: DataLoader[Any] | None = None,
    metric: ValidationMetric[Any] | None = None,
    scheduler: Scheduler | None = None,
    checkpoint: CheckpointOptions | None = None,
    run: RunOptions | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    **deprecated: Unpack[DeprecatedFitKeywords],
) -> History:
    """Train ``model`` for ``epochs`` epochs, validating and checkpointing after each.

    The model is trained in place (it ends with the weights of the last epoch; the best
    ones by validation score are in ``best.pt``). The fast path is the default
    (:class:`RunOptions`): bf16 autocast where the hardware has native bf16 (fp32
    elsewhere), channels-last model and inputs, loss and metric in fp32, a gradient
    scaler only for fp16. uint8 image batches are converted to float on the device.

    With ``checkpoint=CheckpointOptions(directory)``, rank 0 writes ``last.pt`` after
    every epoch (weights, optimizer, scheduler, scaler, epoch, every process's RNG
    streams, the history so far and what the run was started with) and ``best.pt``
    whenever the validation score improves, both atomically with
    :func:`~catseg.checkpoint.save_checkpoint`. A later call with the same arguments
    continues after the last finished epoch, so a killed run loses at most the epoch in
    progress; ``epochs`` may grow (train longer) when the scheduler does not depend on it.
    A call whose arguments no longer describe the run in ``last.pt`` (other batch size or
    steps per epoch, another scheduler, other scheduler settings such as OneCycleLR's
    ``total_steps`` or CosineAnnealingLR's ``T_max``, fewer epochs than already
    finished) stops with a :class:`~catseg.errors.CheckpointError` naming each change;
    ``CheckpointOptions(directory, resume=False)`` starts over and overwrites the files.

    Under torch.distributed (e.g. started by ``torchrun``) the model is wrapped in
    DistributedDataParallel; a train loader without a DistributedSampler is rebuilt with
    one (shuffling if it shuffled, seeded with ``run.seed`` or 0; batch size, workers,
    collate function, pinned memory and drop_last kept) and ``set_epoch`` is called each
    epoch; the validation loader is split into disjoint unpadded shards and the metric
    sums its counts over processes, so every process sees the score of the whole set.
    BatchNorm statistics are copied from rank 0 after each epoch. Only rank 0 writes
    checkpoints and logs; all processes wait for the write.

    The flat keywords of earlier versions (``checkpoint_dir``, ``resume``,
    ``checkpoint_meta``, ``device``, ``precision``, ``channels_last``, ``grad_clip``,
    ``seed``, ``scheduler_interval``; see :class:`DeprecatedFitKeywords`) still work
    and warn ``FutureWarning`` with the new spelling; they go away in catseg 0.3.

    Args:
        model: Module mapping images ``(N, C, H, W)`` to logits; checkpoints need a
            :class:`~catseg.models.UNet` (its config is saved).
        train_loader: DataLoader of ``(images, masks)`` batches.
        loss_fn: ``loss_fn(logits, masks) -> scalar``, e.g.
            :class:`~catseg.losses.DiceLoss`; logits arrive as fp32. Also gives the
            validation loss.
        epochs: Total number of epochs (resumed epochs count).
        optimizer: Optimizer over ``model``'s parameters; default
            ``AdamW(lr=1e-3, weight_decay=1e-4)``.
        val_loader: DataLoader of validation batches; ``None`` skips validation and
            ``best.pt``.
        metric: Validation metric, any :class:`ValidationMetric` (``reset``, ``update``,
            ``compute``); default ``MeanIoU(max(2, model.num_classes))``, or
            ``MeanIoU(K, mode="multilabel")`` for a multilabel run (a training dataset
            with ``mode = "multilabel"`` such as
            :class:`~catseg.data.multilabel.VOCMultilabelDataset`, or
            ``CheckpointMeta(mode="multilabel")``). Higher is
            better: ``best.pt`` keeps the epoch with the highest ``compute().miou`` (or
            ``compute()`` itself when it is a number).
        scheduler: Learning-rate scheduler, stepped as ``run.scheduler_interval`` says.
            ``ReduceLROnPlateau`` is stepped with the validation score (use
            ``mode="max"``), or the training loss without validation.
        checkpoint: Where to write ``last.pt``/``best.pt`` and whether to resume;
            ``None`` writes nothing.
        run: Device, precision, channels-last, gradient clipping, seed and scheduler
            interval; ``None`` means ``RunOptions()``.
        callbacks: Callables ``callback(record) -> bool | None`` run after each epoch's
            checkpoints are written; ``True`` stops training (early stopping), an
            exception stops it and propagates.
        progress: Show a tqdm bar (``progress`` extra) on rank 0; without tqdm, or with
            ``False``, a line per epoch goes to the ``"catseg.training"`` logger.
        **deprecated: The flat keywords of earlier versions (see above).

    Returns:
        The :class:`History` of all finished epochs, resumed ones included.

    Raises:
        NonFiniteError: If a loss is NaN/inf; names epoch and step, ``last.pt`` keeps the
            previous epoch.
        ConfigError: If an argument is invalid, the class names do not fit the model,
            a default metric cannot be chosen, or a loader cannot be sharded.
        CheckpointError: If ``last.pt`` cannot be resumed from: another model, optimizer
            or scheduler, or changed arguments (the message names them).
        DataError: If a batch is not an ``(images, masks)`` pair or a loader is empty.

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
        ...               run=RunOptions(device="cpu", seed=0), progress=False)
        >>> history.epochs, 0.0 <= history.val_miou[-1] <= 1.0, history.val_loss[-1] > 0
        ([1, 2], True, True)
    """
    checkpoint, run = merge_deprecated(checkpoint, run, deprecated)
    spec = FitSpec(
        loss_fn=loss_fn,
        epochs=epochs,
        optimizer=optimizer,
        val_loader=val_loader,
        metric=metric,
        scheduler=scheduler,
        checkpoint=checkpoint,
        run=run,
        callbacks=as_callbacks(callbacks),
    )
    show = check_progress(progress)
    training = TrainingRun(model, train_loader, spec)
    training.start()
    bar = Progress(spec.epochs, training.start_epoch, bar=show, active=ddp.is_main())
    try:
        for epoch in training.epochs_left():
            record = training.run_epoch(epoch)
            training.save(record)
            bar.update(record)
            if training.should_stop(record):
                break
    finally:
        bar.close()
    return training.history()
