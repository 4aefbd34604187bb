"""Lazy imports of the optional libraries a model folder needs, naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from catseg.errors import OptionalDependencyError


def _import(module: str, needs: str, extra: str) -> ModuleType:
    """``module``, or an error saying what ``needs`` it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionalDependencyError(f'{needs}: pip install "catseg[{extra}]"') from err


def import_safetensors() -> ModuleType:
    """``safetensors.torch``, or an error naming the ``safetensors`` extra."""
    return _import(
        "safetensors.torch",
        "model folders store their weights in safetensors format, which needs the "
        "safetensors package",
        "safetensors",
    )


def import_hub() -> ModuleType:
    """``huggingface_hub``, or an error naming the ``hub`` extra."""
    return _import(
        "huggingface_hub",
        "downloading from or uploading to the Hugging Face Hub needs the huggingface_hub package",
        "hub",
    )
