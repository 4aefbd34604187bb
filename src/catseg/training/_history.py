"""What :func:`~catseg.training.fit` hands back: one record per epoch and the run's history."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EpochRecord:
    """The numbers of one finished epoch.

    Attributes:
        epoch: Epoch number, counted from 1.
        train_loss: Mean training loss over every image of the epoch (all processes).
        val_miou: Validation score after the epoch (the mIoU of the default
            :class:`~catseg.metrics.MeanIoU`, or what another metric's ``compute`` gives),
            or ``None`` without a validation loader (``nan`` when no foreground class
            occurs in predictions or ground truth).
        seconds: Wall-clock time of the whole epoch (training and validation).
        images_per_second: Training images per second (all processes together).
        lr: Learning rate of the first parameter group at the end of the epoch.
        val_loss: Mean of ``loss_fn`` over every validation image (all processes), or
            ``None`` without a validation loader.

    Examples:
        >>> record = EpochRecord(epoch=1, train_loss=0.5, val_miou=0.8, seconds=2.0,
        ...                      images_per_second=32.0, lr=1e-3, val_loss=0.3)
        >>> record.to_dict()["val_miou"], record.to_dict()["val_loss"]
        (0.8, 0.3)
    """

    epoch: int
    train_loss: float
    val_miou: float | None
    seconds: float
    images_per_second: float
    lr: float
    val_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-serialisable dict (one key per attribute)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpochRecord:
        """Rebuild a record from :meth:`to_dict` output (``val_loss`` may be missing).

        Raises:
            KeyError: If another key is missing.
        """
        miou, val_loss = data["val_miou"], data.get("val_loss")
        return cls(
            epoch=int(data["epoch"]),
            train_loss=float(data["train_loss"]),
            val_miou=None if miou is None else float(miou),
            seconds=float(data["seconds"]),
            images_per_second=float(data["images_per_second"]),
            lr=float(data["lr"]),
            val_loss=None if val_loss is None else float(val_loss),
        )

    def summary(self) -> dict[str, str]:
        """The numbers shown per epoch by ``fit``'s progress bar or log line."""
        shown = {"loss": self.train_loss, "val_loss": self.val_loss, "val_mIoU": self.val_miou}
        out = {name: f"{value:.4f}" for name, value in shown.items() if value is not None}
        return {**out, "img/s": f"{self.images_per_second:.1f}"}


Callback = Callable[[EpochRecord], "bool | None"]
"""A callback of :func:`~catseg.training.fit`: called with each finished epoch's record.

It runs after that epoch's checkpoints are written, on every process. Returning ``True``
stops training after this epoch (early stopping); raising stops it with that exception,
and ``resume=True`` later continues from the epoch just finished.
"""


@dataclass(frozen=True)
class History:
    """Per-epoch numbers of a :func:`~catseg.training.fit` run, resumed epochs included.

    Attributes:
        records: One :class:`EpochRecord` per finished epoch, in order.
        precision: The precision training ran in after resolving ``"auto"``:
            ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: The device training ran on, e.g. ``"cpu"`` or ``"cuda:0"``.
        channels_last: Whether the channels-last memory format was used.
        world_size: Number of processes that trained together (1 without torch.distributed).

    Examples:
        >>> history = History(records=(
        ...     EpochRecord(1, 0.9, 0.50, 1.0, 10.0, 1e-3),
        ...     EpochRecord(2, 0.4, 0.75, 1.0, 12.0, 1e-3),
        ... ))
        >>> history.train_loss, history.best_epoch, history.best_val_miou
        ([0.9, 0.4], 2, 0.75)
        >>> History.from_dict(history.to_dict()) == history
        True
    """

    records: tuple[EpochRecord, ...] = ()
    precision: str = "fp32"
    device: str = "cpu"
    channels_last: bool = True
    world_size: int = 1

    def __len__(self) -> int:
        return len(self.records)

    @property
    def epochs(self) -> list[int]:
        """Epoch numbers of the records."""
        return [r.epoch for r in self.records]

    @property
    def train_loss(self) -> list[float]:
        """Mean training loss of each epoch."""
        return [r.train_loss for r in self.records]

    @property
    def val_miou(self) -> list[float | None]:
        """Validation mIoU of each epoch (``None`` without validation)."""
        return [r.val_miou for r in self.records]

    @property
    def val_loss(self) -> list[float | None]:
        """Validation loss of each epoch (``None`` without validation)."""
        return [r.val_loss for r in self.records]

    @property
    def seconds(self) -> list[float]:
        """Wall-clock seconds of each epoch."""
        return [r.seconds for r in self.records]

    @property
    def images_per_second(self) -> list[float]:
        """Training throughput of each epoch."""
        return [r.images_per_second for r in self.records]

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the highest validation mIoU (the one in ``best.pt``), or ``None``."""
        best = self._best()
        return None if best is None else best.epoch

    @property
    def best_val_miou(self) -> float | None:
        """The highest validation mIoU, or ``None`` without validation."""
        best = self._best()
        return None if best is None else best.val_miou

    def _best(self) -> EpochRecord | None:
        scored = [r for r in self.records if r.val_miou is not None and not math.isnan(r.val_miou)]
        return max(scored, key=lambda r: r.val_miou or 0.0) if scored else None

    def to_dict(self) -> dict[str, Any]:
        """Return the history as a JSON-serialisable dict (``records`` as a list of dicts)."""
        return {**asdict(self), "records": [r.to_dict() for r in self.records]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a history from :meth:`to_dict` output.

        Raises:
            KeyError: If a key is missing.
        """
        return cls(
            records=tuple(EpochRecord.from_dict(r) for r in data["records"]),
            precision=str(data["precision"]),
            device=str(data["device"]),
            channels_last=bool(data["channels_last"]),
            world_size=int(data["world_size"]),
        )

    def to_markdown(self) -> str:
        """Format the history as a markdown table, one row per epoch.

        Examples:
            >>> print(History(records=(EpochRecord(1, 0.25, None, 2.0, 16.0, 1e-3),)).to_markdown())
            | epoch | train loss | val mIoU | val loss | seconds | images/s | lr |
            |---:|---:|---:|---:|---:|---:|---:|
            | 1 | 0.2500 | - | - | 2.0 | 16.0 | 0.001 |
        """
        lines = [
            "| epoch | train loss | val mIoU | val loss | seconds | images/s | lr |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.records:
            miou = "-" if r.val_miou is None else f"{r.val_miou:.4f}"
            val_loss = "-" if r.val_loss is None else f"{r.val_loss:.4f}"
            lines.append(
                f"| {r.epoch} | {r.train_loss:.4f} | {miou} | {val_loss} | {r.seconds:.1f} "
                f"| {r.images_per_second:.1f} | {r.lr:.3g} |"
            )
        return "\n".join(lines)
