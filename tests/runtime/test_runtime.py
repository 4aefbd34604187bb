from __future__ import annotations

import pytest
import torch

from catseg import ConfigError, OptionalDependencyError
from catseg._runtime import autocast, require, resolve_device, resolve_precision


def test_resolve_device_auto_and_explicit() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")).type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_resolve_device_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.parametrize(
    ("precision", "native", "expected"),
    [
        ("fp32", True, None),
        ("auto", False, None),
        ("auto", True, torch.bfloat16),
        ("bf16", False, torch.bfloat16),
    ],
)
def test_resolve_precision_cpu(precision: str, native: bool, expected: torch.dtype | None) -> None:
    assert resolve_precision(precision, torch.device("cpu"), native_bf16=native) == expected


def test_resolve_precision_errors() -> None:
    with pytest.raises(ConfigError, match="'float32'"):
        resolve_precision("float32", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_autocast_changes_matmul_dtype_only_when_asked() -> None:
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), None):
        assert (a @ a).dtype == torch.float32
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16


def test_require_names_the_extra() -> None:
    with pytest.raises(OptionalDependencyError, match=r"catseg\[onnx\]"):
        require("catseg_no_such_module_xyz", "onnx")
