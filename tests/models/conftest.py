"""Model tests run torch single-threaded (the shared ``one_thread`` fixture, tests/conftest.py).

On a loaded 2-core machine, OpenMP threads spinning against other processes make tiny
convolutions 10-20x slower; one thread keeps these small tests fast and deterministic.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread: None) -> None:
    """Apply ``one_thread`` to every test in this folder."""
