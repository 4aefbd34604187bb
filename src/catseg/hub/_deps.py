"""Lazy imports of the optional libraries a model folder needs, naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from catseg.errors import OptionalDependencyError

__all__ = ["import_hub", "import_safetensors"]


def import_safetensors() -> ModuleType:
    """``safetensors.torch``, or an error naming the ``safetensors`` extra."""
    try:
        return importlib.import_module("safetensors.torch")
    except ImportError as err:
        raise OptionalDependencyError(
            "model folders store their weights in safetensors format, which needs the "
            'safetensors package: pip install "catseg[safetensors]"'
        ) from err


def import_hub() -> ModuleType:
    """``huggingface_hub``, or an error naming the ``hub`` extra."""
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError as err:
        raise OptionalDependencyError(
            "downloading from or uploading to the Hugging Face Hub needs the huggingface_hub "
            'package: pip install "catseg[hub]"'
        ) from err
