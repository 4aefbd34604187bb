"""Small shared helpers for the benchmark scripts (import as ``from _common import ...``).

Scripts in ``benchmarks/`` run as ``python benchmarks/bench_x.py``, so this folder is on
``sys.path`` and ``import _common`` works. The API is deliberately small:

* :func:`measure` — run a callable with warm-up and repeats; returns a :class:`Timing`
  (``best``, ``median`` seconds per call, and ``per_second(items)``). CUDA is
  synchronised around each repeat when ``device`` is a CUDA device.
* :func:`matmul_peak_gflops` — achieved GFLOP/s of a square matmul in a dtype
  (``torch.float32`` or ``torch.bfloat16``), the "peak" to compare a model against,
  measured in the same run as the model.
* :func:`machine_description` — one line: CPU model, cores, torch threads, native bf16,
  GPU, torch version. Print it above each table.
* :func:`markdown_table` — headers + rows → a GitHub markdown table string.

Every figure a script reports should be a ratio to a baseline measured in the same run
(absolute numbers on a shared machine are noisy).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Timing", "machine_description", "markdown_table", "matmul_peak_gflops", "measure"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of a measured callable.

    Attributes:
        best: Fastest repeat (least disturbed by other processes).
        median: Median repeat.
        repeats: Number of timed repeats.
    """

    best: float
    median: float
    repeats: int

    def per_second(self, items: float = 1.0, *, use: str = "best") -> float:
        """Throughput: ``items`` processed per call divided by the time per call."""
        seconds = self.best if use == "best" else self.median
        return items / seconds


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def measure(
    fn: Callable[[], object],
    *,
    warmup: int = 2,
    repeats: int = 5,
    min_seconds: float = 0.0,
    device: torch.device | str | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed calls.

    Args:
        fn: The work to time (called with no arguments).
        warmup: Untimed calls first (JIT, allocator and cache warm-up).
        repeats: Timed calls (at least 1).
        min_seconds: Keep repeating past ``repeats`` until this much time was spent.
        device: Synchronise this CUDA device around each call (None/CPU: nothing).

    Returns:
        Best and median seconds per call.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    spent = 0.0
    while len(times) < max(repeats, 1) or spent < min_seconds:
        start = time.perf_counter()
        fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
    return Timing(best=min(times), median=statistics.median(times), repeats=len(times))


def best_of_interleaved(
    *fns: Callable[[], object],
    repeats: int = 5,
    device: torch.device | str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Best seconds of each of ``fns``, called in turn each round (after one warm-up each).

    Alternating the calls makes the machine's load, which comes and goes on shared
    hosts, hit every measurement alike, so their ratios hold where their times do not.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(repeats, 1)):
        for fn, bucket in zip(fns, times, strict=True):
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            bucket.append(clock() - start)
    return [min(bucket) for bucket in times]


def matmul_peak_gflops(
    dtype: torch.dtype = torch.float32,
    *,
    n: int = 2048,
    repeats: int = 5,
    device: torch.device | str = "cpu",
) -> float:
    """Achieved GFLOP/s of an ``n × n`` by ``n × n`` matmul (``2·n³`` FLOPs), best of repeats.

    Args:
        dtype: ``torch.float32`` or ``torch.bfloat16`` (or another matmul dtype).
        n: Matrix size (2048 is large enough to reach the plateau on CPUs).
        repeats: Timed repeats after one warm-up.
        device: Where to run.

    Returns:
        GFLOP/s of the fastest repeat.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    timing = measure(lambda: torch.mm(a, b, out=out), warmup=1, repeats=repeats, device=device)
    return 2.0 * n**3 / timing.best / 1e9


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line describing the CPU, threads, native bf16, GPU and torch version."""
    from catseg._runtime import cpu_has_native_bf16

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{_cpu_model()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch "
        f"threads, native bf16: {cpu_has_native_bf16()}; {gpu}; torch {torch.__version__}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format ``rows`` under ``headers`` as a markdown table (floats with 2 decimals).

    Args:
        headers: Column titles.
        rows: One sequence of cells per row (same length as ``headers``).

    Returns:
        The table, one line per row, no trailing newline.
    """

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}"
        return str(value)

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
