"""Resuming ``fit``: read ``last.pt``, refuse a run started with other arguments, restore.

``last.pt`` records what the run was started with (:class:`RunRecord`). Loading a
scheduler's state replaces the arguments the new scheduler was built with (a
``OneCycleLR``'s ``total_steps``, a ``CosineAnnealingLR``'s ``T_max``, a ``StepLR``'s
``step_size`` ...), so a resumed run with other arguments would silently follow the old
schedule or crash part-way (OneCycleLR: "Tried to step 63 times"). Such a resume stops
before anything is loaded, naming what changed and how to start fresh. Only ``epochs``
may grow when nothing depends on it: the run then simply trains more epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader

from catseg.checkpoint import load_checkpoint
from catseg.errors import CatsegError, CheckpointError
from catseg.training import _distributed as ddp
from catseg.training._history import EpochRecord
from catseg.training._state import set_rng_state

Scheduler = LRScheduler | ReduceLROnPlateau

# scheduler state that advances while training; everything else is how it was built
_PROGRESS_KEYS = frozenset(
    {
        "last_epoch",
        "_step_count",
        "_last_lr",
        "_is_initial",
        "_get_lr_called_within_step",
        "best",
        "num_bad_epochs",
        "cooldown_counter",
        "T_cur",
        "T_i",
        "verbose",
    }
)


def scheduler_settings(state: object) -> object:
    """The arguments a scheduler was built with, as plain values, from its ``state_dict``."""
    if isinstance(state, Mapping):
        items = ((str(k), v) for k, v in state.items() if str(k) not in _PROGRESS_KEYS)
        return {k: scheduler_settings(v) for k, v in sorted(items)}
    if isinstance(state, (list, tuple)):
        return [scheduler_settings(v) for v in state]
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    return "<not compared>"  # tensors, callables: not arguments a user passes


@dataclass(frozen=True)
class RunRecord:
    """What a ``fit`` run was started with; stored in ``last.pt`` and compared on resume."""

    epochs: int
    steps_per_epoch: int | None
    batch_size: int | None
    world_size: int
    scheduler: str | None
    scheduler_interval: str

    @classmethod
    def of(
        cls,
        *,
        epochs: int,
        loader: DataLoader[Any],
        scheduler: Scheduler | None,
        scheduler_interval: str,
    ) -> RunRecord:
        """Describe the run about to start (``loader`` is this process's shard)."""
        try:
            steps: int | None = len(loader)
        except TypeError:  # an iterable dataset without __len__
            steps = None
        return cls(
            epochs=epochs,
            steps_per_epoch=steps,
            batch_size=loader.batch_size,
            world_size=ddp.world_size(),
            scheduler=None if scheduler is None else type(scheduler).__name__,
            scheduler_interval=scheduler_interval,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as plain values for the checkpoint."""
        return asdict(self)


def load_resume(path: Path) -> dict[str, Any] | None:
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
                    "written by fit); pass CheckpointOptions(..., resume=False) or another "
                    "directory"
                )
            else:
                payload = {"state_dict": ckpt.state_dict, "training": ckpt.training_state}
    payload, error = ddp.broadcast_object((payload, error))
    if error is not None:
        raise CheckpointError(error)
    return payload


def _scheduler_changes(saved: Mapping[str, Any], scheduler: Scheduler | None) -> list[str]:
    saved_state = saved.get("scheduler")
    saved_kind = (saved.get("run") or {}).get("scheduler")
    if scheduler is None or saved_state is None:
        if (scheduler is None) == (saved_state is None):
            return []
        before = "no scheduler" if saved_state is None else (saved_kind or "a scheduler")
        now = "no scheduler" if scheduler is None else type(scheduler).__name__
        return [f"scheduler: {before} (now {now})"]
    if saved_kind is not None and saved_kind != type(scheduler).__name__:
        return [f"scheduler: {saved_kind} (now {type(scheduler).__name__})"]
    old = scheduler_settings(saved_state)
    new = scheduler_settings(scheduler.state_dict())
    if not isinstance(old, dict) or not isinstance(new, dict):  # pragma: no cover - dicts
        return []
    kind = type(scheduler).__name__
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    public = [key for key in changed if not key.startswith("_")]  # the constructor's names
    return [
        f"{kind} {key}={old.get(key, '<unset>')!r} (now {new.get(key, '<unset>')!r})"
        for key in (public or changed)
    ]


def check_same_run(
    path: Path, saved: Mapping[str, Any], now: RunRecord, scheduler: Scheduler | None
) -> None:
    """Refuse to resume when the arguments no longer describe the run in ``last.pt``.

    Raises:
        CheckpointError: Naming each changed argument (old and new value) and how to start
            fresh.
    """
    changes: list[str] = []
    finished = int(saved["epoch"])
    if finished > now.epochs:
        changes.append(f"epochs: {finished} already finished (now epochs={now.epochs})")
    run = saved.get("run")
    if isinstance(run, Mapping):
        for key in ("steps_per_epoch", "batch_size", "world_size", "scheduler_interval"):
            if key in run and run[key] != getattr(now, key):
                changes.append(f"{key}={run[key]!r} (now {getattr(now, key)!r})")
    changes.extend(_scheduler_changes(saved, scheduler))
    if changes:
        started = run.get("epochs") if isinstance(run, Mapping) else None
        header = "the run was started with other arguments" + (
            f" (epochs={started})" if started is not None else ""
        )
        raise CheckpointError(
            f"cannot resume from {path}: {header}: {'; '.join(changes)}. Pass the same "
            "arguments to continue it, or start fresh with "
            "checkpoint=CheckpointOptions(..., resume=False) (overwrites last.pt and "
            f"best.pt), another directory, or after deleting {path.parent}"
        )


@dataclass
class Restored:
    """What a resumed run continues from."""

    epoch: int
    records: list[EpochRecord]
    best_score: float


def restore(
    payload: Mapping[str, Any],
    path: Path,
    *,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: Scheduler | None,
    scaler: torch.amp.GradScaler | None,
    train_loader: DataLoader[Any],
) -> Restored:
    """Load weights, optimizer, scheduler, scaler and RNG streams from ``payload``.

    Raises:
        CheckpointError: If the states do not fit this model/optimizer/scheduler.
    """
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
            f"({detail}); pass CheckpointOptions(..., resume=False) or another directory"
        ) from err
    rngs = training.get("rng", [])
    if ddp.rank() < len(rngs):
        set_rng_state(rngs[ddp.rank()], train_loader)
    records = [EpochRecord.from_dict(r) for r in training.get("history", [])]
    best = training.get("best_miou")
    return Restored(int(training["epoch"]), records, -math.inf if best is None else float(best))
