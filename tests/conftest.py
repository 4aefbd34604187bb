"""Shared fixtures: locating ../shared/data and keeping torch small and deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """The shared data folder: $CATSEG_SHARED_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("CATSEG_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [
        REPO_ROOT.parent / "shared" / "data",
        REPO_ROOT.parent.parent / "shared" / "data",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips when absent, fails when CATSEG_REQUIRE_SHARED_DATA=1."""
    root = shared_data_root()
    if root is None:
        reason = (
            "shared data not found: set CATSEG_SHARED_DATA or place it at ../shared/data "
            f"(looked beside {REPO_ROOT})"
        )
        if os.environ.get("CATSEG_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"CATSEG_REQUIRE_SHARED_DATA=1 but {reason}")
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def cats_voc(shared_data: Path) -> Path:
    """The real cats dataset in VOC layout."""
    path = shared_data / "cats-voc"
    if not path.is_dir():
        pytest.fail(f"{path} is missing from the shared data folder")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
