"""Shared fixtures: locating the shared data (README, "The cat data") and seeding torch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


SHARED_DATA_ENV = "CATSEG_SHARED_DATA"
HOW_TO_GET_SHARED_DATA = (
    f"set {SHARED_DATA_ENV}=/path/to/data (the folder holding cats-voc/), or place the shared "
    f"data folder at {REPO_ROOT.parent / 'shared' / 'data'} (../shared/data beside the "
    "checkout); see 'The cat data' in README.md"
)


def shared_data_root() -> Path | None:
    """The shared data folder, found with the same rules as the examples (examples/_data.py).

    ``$CATSEG_SHARED_DATA`` when set (``None`` if it is not a folder), else ``shared/data``
    beside the checkout, else one level further up (a git worktree beside the data).
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    for candidate in (
        REPO_ROOT.parent / "shared" / "data",
        REPO_ROOT.parents[1] / "shared" / "data",
    ):
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (saying how to get it) when absent.

    With ``CATSEG_REQUIRE_SHARED_DATA=1`` (CI) a missing folder fails instead.
    """
    root = shared_data_root()
    if root is None:
        env = os.environ.get(SHARED_DATA_ENV)
        found = f"{SHARED_DATA_ENV}={env} is not a folder" if env else "not found"
        reason = (
            f"shared cat data (Oxford-IIIT Pet photos in VOC layout) {found}: "
            f"{HOW_TO_GET_SHARED_DATA}"
        )
        if os.environ.get("CATSEG_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"CATSEG_REQUIRE_SHARED_DATA=1 but the {reason}")
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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread for the test, restoring the previous count after.

    Tiny models train fastest on one thread, and on a loaded 2-core machine a second
    spinning OpenMP thread makes small convolutions 10-20x slower. Use it per module with
    ``pytestmark = pytest.mark.usefixtures("one_thread")`` or per folder from a conftest.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a CUDA GPU, deselect the ``gpu`` tests; the summary says why.

    They are the GPU half of the suite, run by ``benchmarks/gpu_checks.py`` on a CUDA
    machine; CI has none, and only the timm/torchvision tests may skip there.
    """
    if torch.cuda.is_available():
        return
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu:
        items[:] = [item for item in items if "gpu" not in item.keywords]
        config.hook.pytest_deselected(items=gpu)
        config.stash[_GPU_DESELECTED] = len(gpu)


_GPU_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the reason for the deselected GPU tests in the summary."""
    count = config.stash.get(_GPU_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} gpu tests deselected: no CUDA GPU here (they run by "
            "benchmarks/gpu_checks.py on a CUDA machine)"
        )
