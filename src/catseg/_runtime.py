"""Device, precision and memory-format choices shared by prediction and training.

The rules are decided here once so that :class:`~catseg.Segmenter`, ``fit`` and
``evaluate`` take the same words and mean the same thing:

* ``device="auto"`` picks CUDA when available, otherwise the CPU.
* ``precision="auto"`` picks bf16 autocast on CUDA GPUs that support bf16 and on
  CPUs with native bf16 instructions (AVX512-BF16 or AMX on x86, the BF16
  extension on Arm), and plain fp32 everywhere else, so an older CPU is never
  slowed down by emulated bf16. ``"fp32"`` always exists; ``"bf16"`` and
  ``"fp16"`` force autocast in that type.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import platform
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args

import torch

from catseg.errors import ConfigError, OptionalDependencyError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""Numeric precision of a forward pass: ``auto`` picks bf16 only where it is native."""

PRECISIONS: tuple[str, ...] = get_args(Precision)


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"``, a device string or a :class:`torch.device` into a device.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), or anything
            :class:`torch.device` accepts.

    Returns:
        The device to run on.

    Raises:
        ConfigError: If the string is not a device name torch understands, or CUDA
            is asked for on a machine without it.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(resolved)!r} was asked for but CUDA is not available")
    return resolved


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bf16 matrix maths natively.

    True for x86 CPUs with AVX512-BF16 or AMX-BF16 and Arm CPUs with the BF16
    extension; False elsewhere (where bf16 would be emulated and slower than fp32).

    Returns:
        True if bf16 autocast is a speed-up on this CPU.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for key, _, value in (line.partition(":") for line in text.splitlines()):
        if key.strip() in {"flags", "Features"}:
            flags.update(value.split())
    machine = platform.machine().lower()
    if machine in {"x86_64", "amd64", "i686", "x86"}:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    return machine in {"aarch64", "arm64"} and "bf16" in flags


def resolve_precision(
    precision: str,
    device: torch.device,
    *,
    native_bf16: bool | None = None,
) -> torch.dtype | None:
    """Decide the autocast dtype for ``precision`` on ``device``.

    Args:
        precision: One of ``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``.
        device: The device the computation runs on.
        native_bf16: Override of the CPU capability check (``None`` asks the CPU);
            tests use it to force the fallback path.

    Returns:
        ``torch.bfloat16`` or ``torch.float16`` for autocast, or ``None`` for plain fp32.

    Raises:
        ConfigError: If ``precision`` is not one of the accepted words, or fp16 is
            asked for on the CPU.

    Examples:
        >>> import torch
        >>> resolve_precision("fp32", torch.device("cpu")) is None
        True
        >>> resolve_precision("auto", torch.device("cpu"), native_bf16=False) is None
        True
        >>> resolve_precision("auto", torch.device("cpu"), native_bf16=True)
        torch.bfloat16
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ConfigError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        return torch.float16
    if device.type == "cuda":  # auto
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    return torch.bfloat16 if device.type == "cpu" and native else None


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; a no-op when ``dtype`` is ``None``.

    Args:
        device: Device whose autocast context to enter.
        dtype: Autocast dtype from :func:`resolve_precision`, or ``None`` for fp32.
    """
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or explain which extra installs it.

    Args:
        module: Module name to import, e.g. ``"onnxruntime"``.
        extra: The catseg extra that provides it, e.g. ``"onnx"``.

    Returns:
        The imported module.

    Raises:
        OptionalDependencyError: If the module cannot be imported.

    Examples:
        >>> require("json", "none").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionalDependencyError(
            f"{module!r} is needed for this feature but is not installed; "
            f'install it with: pip install "catseg[{extra}]"'
        ) from err


_WARNING_FILTERS = threading.RLock()


@contextlib.contextmanager
def quiet_warnings(message: str = "", category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore the warnings that match ``message`` and ``category`` inside the block.

    :class:`warnings.catch_warnings` saves and restores the process-wide filter list, so two
    threads inside it at once can restore each other's state. catseg's blocks take one lock,
    so its own calls (checkpoint loads, ONNX exports in several threads) never interleave;
    other code changing filters from another thread at that moment is not covered.

    Args:
        message: Regular expression the start of the warning message must match
            (``""``: every message).
        category: Warning class to ignore (with its subclasses).

    Examples:
        >>> import warnings
        >>> before = list(warnings.filters)
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     with quiet_warnings("old API", DeprecationWarning):
        ...         warnings.warn("old API, use the new one", DeprecationWarning)
        ...         warnings.warn("something else", DeprecationWarning)
        >>> [str(w.message) for w in seen], warnings.filters == before
        (['something else'], True)
    """
    with _WARNING_FILTERS, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=message, category=category)
        yield
