"""The layout of a model folder: file names, the format tag and version, the config record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "MODES",
    "WEIGHTS_NAME",
    "FolderConfig",
    "Mode",
]

FORMAT_TAG = "catseg.model"
"""The ``format`` field of every ``config.json`` catseg writes."""
FORMAT_VERSION = 1
"""Version of the folder layout this catseg writes (and the newest it reads)."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"

Mode = Literal["binary", "multiclass", "multilabel"]
MODES: tuple[Mode, ...] = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class FolderConfig:
    """What ``config.json`` records, checked (see ``_write`` and ``_read``)."""

    architecture: dict[str, Any]
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...] | None
    mode: Mode
    threshold: float | tuple[float, ...]
    image_size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fused: bool = False
    training: dict[str, Any] | None = None
    catseg_version: str = "unknown"
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` document (plain JSON types)."""
        threshold = list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold
        return {
            "format": FORMAT_TAG,
            "format_version": self.format_version,
            "catseg_version": self.catseg_version,
            "architecture": self.architecture,
            "fused": self.fused,
            "classes": list(self.classes),
            "palette": None if self.palette is None else [list(c) for c in self.palette],
            "mode": self.mode,
            "threshold": threshold,
            "image_size": None if self.image_size is None else list(self.image_size),
            "preprocessing": {"mean": list(self.mean), "std": list(self.std)},
            "training": self.training,
        }
