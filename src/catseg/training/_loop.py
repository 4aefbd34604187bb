"""The inner loops: one training epoch and one evaluation pass."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from catseg._modules import to_channels_last, unwrap_model
from catseg._runtime import Precision, autocast, resolve_device, resolve_precision
from catseg._validation import check_bool, check_callable, check_finite_float, check_positive_int
from catseg.errors import ConfigError, DataError, DTypeError, NonFiniteError, ShapeError
from catseg.training import _distributed as ddp

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(logits, masks) -> scalar``: logits are fp32 ``(N, C, H, W)``, masks as loaded."""

ResultT = TypeVar("ResultT", covariant=True)


@runtime_checkable
class ValidationMetric(Protocol[ResultT]):
    """What :func:`evaluate` and :func:`fit` need of a metric: ``reset``, ``update``, ``compute``.

    :class:`~catseg.metrics.MeanIoU` is one (its ``compute`` returns an
    :class:`~catseg.metrics.IoUResult`); a torchmetrics metric or your own class with the
    same three methods is another. ``update`` receives fp32 logits ``(N, C, H, W)`` and the
    masks as the loader gives them. Under torch.distributed each process sees its shard of
    the data, so ``compute`` must combine the processes itself (MeanIoU and torchmetrics
    do). :func:`fit` keeps the checkpoint with the highest score: the ``miou`` attribute of
    the result if it has one, else the result itself (a number or a one-element tensor).

    Examples:
        >>> from catseg.metrics import MeanIoU
        >>> isinstance(MeanIoU(2), ValidationMetric)
        True
    """

    def reset(self) -> None:
        """Forget everything seen so far."""

    def update(self, preds: Tensor, target: Tensor, /) -> None:
        """Add one batch of predictions (fp32 logits) and targets."""

    def compute(self) -> ResultT:
        """The result over everything since the last ``reset``."""


def _split_batch(batch: object, step: int) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        size = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
        raise DataError(
            f"batch {step} is a {type(batch).__name__}{size}; the loader must yield pairs "
            "(images, masks)"
        )
    if not all(isinstance(t, Tensor) for t in batch):
        kinds = ", ".join(type(t).__name__ for t in batch)
        raise DataError(f"batch {step} holds ({kinds}); expected (Tensor, Tensor)")
    return batch[0], batch[1]


def _check_scalar(loss: object) -> Tensor:
    if not isinstance(loss, Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ShapeError(f"loss_fn must return a scalar tensor, got {shape}")
    return loss


def prepare_batch(
    images: Tensor, masks: Tensor, device: torch.device, *, channels_last: bool
) -> tuple[Tensor, Tensor]:
    """Move a batch to ``device``: uint8 images become float in [0, 1] there.

    The caller's tensors are never modified.

    Raises:
        ShapeError: If images are not ``(N, C, H, W)`` or masks do not match their batch size.
        DTypeError: If images are neither uint8 nor floating point, or masks are not numbers.
    """
    if images.ndim != 4:
        raise ShapeError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if masks.ndim not in (3, 4) or masks.shape[0] != images.shape[0]:
        raise ShapeError(
            f"masks must have shape (N, H, W) with N = {images.shape[0]} like the images, "
            f"got {tuple(masks.shape)}"
        )
    if images.dtype == torch.uint8:
        # .float() makes a new tensor, so the in-place division never touches the input
        out = images.to(device, non_blocking=True).float().div_(255.0)
    elif images.is_floating_point():
        out = images.to(device, dtype=torch.float32, non_blocking=True)
    else:
        raise DTypeError(f"images must be uint8 or floating point, got {images.dtype}")
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    # bool, uint8 and the other integer types are widened to int64 on the device
    dtype = None if masks.is_floating_point() else torch.int64
    return out, masks.to(device, dtype=dtype, non_blocking=True)


def prepare_model(model: nn.Module, device: torch.device, *, channels_last: bool) -> None:
    """Move ``model`` (in place, as ``Module.to`` does) to ``device`` and memory format."""
    model.to(device)
    if channels_last:
        to_channels_last(model)


def run_train_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float | None,
    channels_last: bool,
    scheduler: LRScheduler | None,
    epoch: int,
) -> tuple[float, int, float]:
    """One pass over ``loader``: mean loss, images and seconds (over all processes)."""
    model.train()
    start = time.perf_counter()
    loss_sum, count = 0.0, 0
    for step, batch in enumerate(loader, start=1):
        x, y = prepare_batch(*_split_batch(batch, step), device, channels_last=channels_last)
        buffers = [(b, b.clone()) for b in model.buffers()]  # BatchNorm updates them in forward
        with autocast(device, dtype):
            logits = model(x)
        loss = _check_scalar(loss_fn(logits.float(), y))
        n = x.shape[0]
        totals = torch.stack([loss.detach().float() * n, torch.tensor(float(n), device=device)])
        batch_loss, batch_count = ddp.all_reduce_sum(totals).tolist()
        mean = batch_loss / batch_count
        bad = "" if math.isfinite(mean) else f"loss is {mean}"
        optimizer.zero_grad(set_to_none=True)
        if not bad:
            (loss if scaler is None else scaler.scale(loss)).backward()  # type: ignore[no-untyped-call]
            if scaler is not None:  # fp16: the scaler skips a step with non-finite gradients
                scaler.unscale_(optimizer)
            # the same on every process (DDP has averaged the gradients)
            norm = float(nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf))
            if scaler is None and not math.isfinite(norm):
                bad = f"gradient norm is {norm}"
        if bad:
            for buffer, kept in buffers:
                buffer.copy_(kept)
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(
                f"training {bad} at epoch {epoch}, step {step}; stopped before the optimizer "
                "step (weights, buffers and optimizer state of the previous step are kept)"
            )
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        loss_sum, count = loss_sum + batch_loss, count + int(batch_count)
    if count == 0:
        raise DataError(f"the training loader yielded no images in epoch {epoch}")
    return loss_sum / count, count, ddp.max_over_processes(time.perf_counter() - start, device)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    device: str | torch.device = "auto",
    precision: Precision = "auto",
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    channels_last: bool = True,
    scheduler: LRScheduler | None = None,
    epoch: int = 1,
) -> float:
    """Train ``model`` for one pass over ``loader`` and return the mean loss.

    The fast path is the default: bf16 autocast where the hardware has native bf16,
    channels-last model and inputs, the loss in fp32 on ``logits.float()``; uint8 images
    become float in [0, 1] on the device, to which the model is moved (in place). Under
    torch.distributed the loss is averaged over all processes; wrapping the model in DDP
    and sharding the loader is the caller's job here (:func:`fit` does both).

    Args:
        model: Module mapping images ``(N, C, H, W)`` to logits ``(N, K, H, W)``.
        loader: Iterable of ``(images, masks)`` batches, e.g. a DataLoader.
        loss_fn: ``loss_fn(logits, masks) -> scalar tensor``; logits arrive as fp32.
        optimizer: Optimizer over ``model``'s parameters.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        scaler: Gradient scaler for fp16; created for this epoch when ``None`` and fp16 is
            used. Ignored for the other precisions.
        grad_clip: Clip the gradient norm to this value; ``None`` disables clipping.
        channels_last: Use the channels-last memory format for model and inputs.
        scheduler: Learning-rate scheduler stepped after every optimizer step (per-batch
            schedules such as OneCycleLR); ``None`` leaves the learning rate alone.
        epoch: Epoch number used in error messages.

    Returns:
        Mean loss over all images of the epoch.

    Raises:
        NonFiniteError: If the loss or the gradient norm is NaN or infinite (without a
            scaler); the message names epoch and step, and the model's weights and buffers
            and the optimizer's state are those of the previous step.
        DataError: If a batch is not an ``(images, masks)`` pair, or the loader is empty.
        ShapeError: If images are not 4-D, masks do not match, or the loss is not a scalar.
        DTypeError: If images are neither uint8 nor floating point.
        ConfigError: If an argument is of the wrong type, or ``device``, ``precision``,
            ``grad_clip`` or ``epoch`` (>= 1) is invalid.

    Shape:
        images ``(N, C, H, W)`` uint8 or float; masks ``(N, H, W)`` integer class indices
        (or whatever ``loss_fn`` accepts, e.g. ``(N, 1, H, W)`` float for binary Dice).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Conv2d(3, 1, 3, padding=1)
        >>> images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
        >>> masks = (images[:, 0] > 127).long()
        >>> def loss_fn(logits, target):
        ...     return nn.functional.binary_cross_entropy_with_logits(
        ...         logits[:, 0], target.float())
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> loss = train_one_epoch(model, [(images, masks)], loss_fn, opt,
        ...                        device="cpu", precision="fp32")
        >>> loss > 0
        True
    """
    check_loop("loader", loader, loss_fn, scheduler)
    check_optimizer(optimizer)
    channels_last = check_bool("channels_last", channels_last)
    epoch = check_positive_int("epoch", epoch)
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise ConfigError(
            f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}"
        )
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if grad_clip is not None:
        grad_clip = check_finite_float("grad_clip", grad_clip, low=0.0, low_open=True)
    scaler = None if dtype != torch.float16 else scaler or torch.amp.GradScaler(dev.type)
    prepare_model(unwrap_model(model), dev, channels_last=channels_last)
    return run_train_epoch(
        model, loader, loss_fn, optimizer, device=dev, dtype=dtype, scaler=scaler,
        grad_clip=grad_clip, channels_last=channels_last, scheduler=scheduler, epoch=epoch,
    )[0]  # fmt: skip


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    metric: ValidationMetric[ResultT],
    *,
    device: str | torch.device = "auto",
    precision: Precision = "auto",
    channels_last: bool = True,
) -> ResultT:
    """Run ``model`` over ``loader`` and return the metric over the whole set.

    The model runs in eval mode under :func:`torch.inference_mode` (its mode is restored
    afterwards) with the same fast path as training; the metric, reset first, gets fp32
    logits. Under torch.distributed a plain DataLoader is split into disjoint shards and
    :class:`~catseg.metrics.MeanIoU` combines all processes in ``compute()``, so every
    process gets the result for the whole set.

    Args:
        model: Module mapping images to logits (DDP, DataParallel and ``torch.compile``
            wrappers are looked through).
        loader: Iterable of ``(images, masks)`` batches.
        metric: The metric to fill, e.g. ``MeanIoU(2)`` for a one-logit binary model, or
            any :class:`ValidationMetric`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        channels_last: Use the channels-last memory format for model and inputs.

    Returns:
        ``metric.compute()``: for :class:`~catseg.metrics.MeanIoU` an
        :class:`~catseg.metrics.IoUResult` with ``miou``, per-class ``iou`` and ``dice``
        and the confusion matrix.

    Raises:
        DataError: If a batch is not an ``(images, masks)`` pair, a mask holds a label
            outside the metric's classes that is not its ``ignore_index``, or the loader
            yields no images at all (on every process together).
        ShapeError: If images are not 4-D or masks do not match them.
        ConfigError: If ``loader`` is not iterable, ``metric`` lacks
            ``reset``/``update``/``compute``, ``device``, ``precision`` or
            ``channels_last`` is invalid, or the loader cannot be sharded under
            torch.distributed.

    Shape:
        images ``(N, C, H, W)`` uint8 or float; masks ``(N, H, W)`` integer class indices.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from catseg.metrics import MeanIoU
        >>> model = nn.Conv2d(3, 1, 1)
        >>> images = torch.rand(2, 3, 8, 8)
        >>> masks = torch.zeros(2, 8, 8, dtype=torch.long)
        >>> result = evaluate(model, [(images, masks)], MeanIoU(2),
        ...                   device="cpu", precision="fp32")
        >>> 0.0 <= result.miou <= 1.0 or result.miou != result.miou
        True
    """
    check_loader("loader", loader)
    check_metric(metric)
    channels_last = check_bool("channels_last", channels_last)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if isinstance(loader, torch.utils.data.DataLoader):
        loader = ddp.shard(loader, train=False)
    return run_evaluation(
        model, loader, metric, device=dev, dtype=dtype, channels_last=channels_last
    )[0]


def check_loop(loader_name: str, loader: object, loss_fn: object, scheduler: object) -> None:
    """Refuse a non-iterable loader, a non-callable loss or a scheduler without ``step``."""
    check_loader(loader_name, loader)
    check_callable("loss_fn", loss_fn)
    methods = ("step", "state_dict", "load_state_dict")  # what fit and resuming use
    if scheduler is not None and not all(callable(getattr(scheduler, m, None)) for m in methods):
        raise ConfigError(
            f"scheduler must be a torch learning-rate scheduler, got {type(scheduler).__name__}"
        )


def check_optimizer(optimizer: object) -> None:
    """Refuse an optimizer that is not a torch ``Optimizer``."""
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(f"optimizer must be a torch Optimizer, got {type(optimizer).__name__}")


def check_loader(name: str, loader: object) -> None:
    """Refuse a loader that is not an iterable of batches."""
    if not isinstance(loader, Iterable) or isinstance(loader, (str, bytes)):
        raise ConfigError(
            f"{name} must be an iterable of (images, masks) batches such as a DataLoader, "
            f"got {type(loader).__name__}"
        )


def check_metric(metric: object) -> None:
    """Refuse an object that is not a :class:`ValidationMetric`.

    Raises:
        ConfigError: Naming the missing methods.
    """
    missing = [m for m in ("reset", "update", "compute") if not callable(getattr(metric, m, None))]
    if missing:
        raise ConfigError(
            f"metric must have reset(), update(preds, target) and compute() (e.g. "
            f"catseg.metrics.MeanIoU), got {type(metric).__name__} without {', '.join(missing)}"
        )


def run_evaluation(
    model: nn.Module,
    loader: Iterable[Any],
    metric: ValidationMetric[ResultT],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
    loss_fn: LossFn | None = None,
) -> tuple[ResultT, float | None]:
    """One pass in eval mode: the metric's result and the mean loss (with ``loss_fn``).

    The image count and the loss are summed over processes (every process gets the
    numbers of the whole set); the engine of :func:`evaluate` and ``fit``.
    """
    net = unwrap_model(model)
    was_training = net.training
    prepare_model(net, device, channels_last=channels_last)
    net.eval()
    metric.reset()
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss x images, images
    try:
        for step, batch in enumerate(loader, start=1):
            x, y = prepare_batch(*_split_batch(batch, step), device, channels_last=channels_last)
            with torch.inference_mode(), autocast(device, dtype):
                logits = net(x)
            # the metric's state lives outside inference mode (it may be all-reduced later)
            scores = logits.float()
            if loss_fn is not None:
                with torch.inference_mode():
                    loss = _check_scalar(loss_fn(scores, y))
                totals[0] += loss.double() * x.shape[0]
            metric.update(scores, y)
            totals[1] += x.shape[0]
    finally:
        net.train(was_training)
    loss_sum, count = ddp.all_reduce_sum(totals).tolist()
    if count == 0:
        raise DataError(
            "the evaluation loader yielded no images: check the validation split "
            "(and, under torch.distributed, that it has at least one image)"
        )
    return metric.compute(), None if loss_fn is None else loss_sum / count
