"""Training helpers: one epoch, one evaluation pass, and ``fit`` with checkpoints and resume.

A small, honest helper rather than a framework: :func:`train_one_epoch` and
:func:`evaluate` are the loops you would write by hand (with the fast path on by
default), and :func:`fit` adds validation, ``last.pt``/``best.pt`` checkpoints,
resuming, NaN stops, progress and torchrun/DDP support around them.

Examples:
    >>> from catseg.training import History
    >>> len(History())
    0
"""

from __future__ import annotations

from catseg.training._fit import RunOptions, fit
from catseg.training._history import Callback, EpochRecord, History
from catseg.training._loop import LossFn, ValidationMetric, evaluate, train_one_epoch

__all__ = [
    "fit",
    "train_one_epoch",
    "evaluate",
    "RunOptions",
    "History",
    "EpochRecord",
    "Callback",
    "LossFn",
    "ValidationMetric",
]
