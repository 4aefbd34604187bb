"""Model tests run torch single-threaded.

On a loaded 2-core machine, OpenMP threads spinning against other processes make tiny
convolutions 10-20x slower; one thread keeps these small tests fast and deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
