"""Model tests run torch single-threaded (the shared ``one_thread`` fixture, tests/conftest.py).

On a loaded 2-core machine, OpenMP threads spinning against other processes make tiny
convolutions 10-20x slower; one thread keeps these small tests fast and deterministic.
"""

from __future__ import annotations

import pytest

from catseg.models import Registry
from catseg.models.encoders import ClassicEncoder, resnet18
from catseg.models.encoders import registry as registry_module


@pytest.fixture(autouse=True)
def _single_thread(one_thread: None) -> None:
    """Apply ``one_thread`` to every test in this folder."""


@pytest.fixture
def fresh_global(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A fresh registry behind ``UNet(encoder=...)``: ``unet`` and ``resnet18``, discovery on."""
    registry = Registry()
    registry.register("unet")(ClassicEncoder)
    registry.register("resnet18")(resnet18)
    monkeypatch.setattr(registry_module, "_REGISTRY", registry)
    return registry
