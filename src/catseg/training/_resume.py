"""Resuming ``fit``: the training state in ``last.pt``, checked against the new call, restored.

``last.pt`` records what the run was started with. Loading a scheduler's state replaces
the arguments the new scheduler was built with (a ``OneCycleLR``'s ``total_steps``, a
``CosineAnnealingLR``'s ``T_max`` ...), so a resumed run with other arguments would
silently follow the old schedule or crash part-way. Such a resume stops before anything is
loaded, naming what changed. Only ``epochs`` may grow when nothing depends on it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader

from catseg.checkpoint import load_checkpoint
from catseg.errors import CatsegError, CheckpointError
from catseg.training import _distributed as ddp

Scheduler = LRScheduler | ReduceLROnPlateau
FRESH = "start fresh with resume=False (overwrites last.pt and best.pt) or another directory"
# scheduler state that advances while training; everything else is how it was built
_PROGRESS_KEYS = frozenset(("last_epoch", "_step_count", "_last_lr", "_is_initial", "best",
    "_get_lr_called_within_step", "num_bad_epochs", "cooldown_counter", "T_cur", "T_i",
    "verbose"))  # fmt: skip


def seed_everything(seed: int, loader: DataLoader[Any]) -> None:
    """Seed python's ``random``, NumPy's global stream, torch and the loader's generators."""
    random.seed(seed + ddp.rank())
    np.random.seed((seed + ddp.rank()) % 2**32)  # noqa: NPY002 - seeding the global stream
    torch.manual_seed(seed + ddp.rank())
    for gen in _generators(loader):
        gen.manual_seed(seed)


def _generators(loader: DataLoader[Any]) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for gen in (loader.generator, getattr(loader.sampler, "generator", None)):
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def rng_state(loader: DataLoader[Any]) -> dict[str, Any]:
    """This process's random streams as tensors and plain containers."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
        "loader": [g.get_state() for g in _generators(loader)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, Any], loader: DataLoader[Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    for gen, saved in zip(_generators(loader), state.get("loader", []), strict=False):
        gen.set_state(saved.cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def run_record(
    epochs: int, loader: DataLoader[Any], scheduler: Scheduler | None, interval: str
) -> dict[str, Any]:
    """What a run is started with (``loader`` is this process's shard), compared on resume."""
    try:
        steps: int | None = len(loader)
    except TypeError:  # an iterable dataset without __len__
        steps = None
    return {
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": loader.batch_size,
        "world_size": ddp.world_size(),
        "scheduler": None if scheduler is None else type(scheduler).__name__,
        "scheduler_interval": interval,
    }


def _settings(state: object) -> object:
    """The arguments a scheduler was built with, as plain values, from its ``state_dict``."""
    if isinstance(state, Mapping):
        return {str(k): _settings(v) for k, v in sorted(state.items(), key=lambda kv: str(kv[0]))
                if str(k) not in _PROGRESS_KEYS}  # fmt: skip
    if isinstance(state, (list, tuple)):
        return [_settings(v) for v in state]
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    return "<not compared>"  # tensors, callables: not arguments a user passes


def _scheduler_changes(saved: Mapping[str, Any], scheduler: Scheduler | None) -> list[str]:
    saved_state, saved_kind = saved.get("scheduler"), (saved.get("run") or {}).get("scheduler")
    now = "no scheduler" if scheduler is None else type(scheduler).__name__
    if scheduler is None or saved_state is None:
        if (scheduler is None) == (saved_state is None):
            return []
        before = "no scheduler" if saved_state is None else (saved_kind or "a scheduler")
        return [f"scheduler: {before} (now {now})"]
    if saved_kind is not None and saved_kind != now:
        return [f"scheduler: {saved_kind} (now {now})"]
    old, new = _settings(saved_state), _settings(scheduler.state_dict())
    if not isinstance(old, dict) or not isinstance(new, dict):  # pragma: no cover - dicts
        return []
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    public = [key for key in changed if not key.startswith("_")]  # the constructor's names
    return [
        f"{now} {key}={old.get(key, '<unset>')!r} (now {new.get(key, '<unset>')!r})"
        for key in (public or changed)
    ]


def load_resume(
    path: Path, record: Mapping[str, Any], scheduler: Scheduler | None
) -> dict[str, Any] | None:
    """Rank 0 reads ``last.pt`` (if any), every process gets it, checked against ``record``.

    Raises:
        CheckpointError: If ``last.pt`` is unreadable, has no training state, or the run
            was started with other arguments (each change named, old and new value).
    """
    payload: dict[str, Any] | None = None
    error: str | None = None
    if ddp.is_main() and path.is_file():
        try:
            ckpt = load_checkpoint(path, map_location="cpu")
            payload = {"state_dict": ckpt.state_dict, "training": ckpt.training_state}
        except CatsegError as err:
            error = f"cannot resume from {path}: {err}"
        if payload is not None and payload["training"] is None:
            error = f"cannot resume from {path}: it has no training state (not written by fit)"
    payload, error = ddp.broadcast_object((payload, error))
    if error is not None:
        raise CheckpointError(f"{error}; {FRESH}")
    if payload is None:
        return None
    saved = payload["training"]
    changes = []
    if int(saved["epoch"]) > record["epochs"]:
        changes.append(f"epochs: {saved['epoch']} already finished (now epochs={record['epochs']})")
    run = saved.get("run") or {}
    for key in ("steps_per_epoch", "batch_size", "world_size", "scheduler_interval"):
        if key in run and run[key] != record[key]:
            changes.append(f"{key}={run[key]!r} (now {record[key]!r})")
    changes.extend(_scheduler_changes(saved, scheduler))
    if changes:
        started = f" (epochs={run['epochs']})" if "epochs" in run else ""
        raise CheckpointError(
            f"cannot resume from {path}: the run was started with other arguments{started}: "
            f"{'; '.join(changes)}. Pass the same arguments to continue it, or {FRESH}, or "
            f"after deleting {path.parent}"
        )
    return payload


def restore(
    payload: Mapping[str, Any], path: Path, parts: Mapping[str, Any], loader: DataLoader[Any]
) -> None:
    """Load each part's state (``model``, ``optimizer``, ...; ``None`` skipped) and RNGs.

    Raises:
        CheckpointError: If a state does not fit its part.
    """
    training = payload["training"]
    try:
        for name, part in parts.items():
            state = payload["state_dict"] if name == "model" else training.get(name)
            if part is not None and state is not None:
                part.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        more = f"; ... ({len(lines) - 3} more)" if len(lines) > 3 else ""
        raise CheckpointError(
            f"cannot resume from {path}: it does not fit this model/optimizer/scheduler "
            f"({'; '.join(lines[:3])}{more}); {FRESH}"
        ) from err
    rngs = training.get("rng", [])
    if ddp.rank() < len(rngs):
        _set_rng_state(rngs[ddp.rank()], loader)
