"""The layout of a model folder: file names, the format tag and version, ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catseg.models.config import UNetConfig

FORMAT_TAG = "catseg.model"
"""The ``format`` field of every ``config.json`` catseg writes."""
FORMAT_VERSION = 1
"""Version of the folder layout this catseg writes (and the newest it reads)."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


@dataclass(frozen=True)
class FolderConfig:
    """What ``config.json`` holds: the model's record plus the folder's own fields."""

    model: UNetConfig
    palette: tuple[tuple[int, int, int], ...] | None
    fused: bool = False
    training: dict[str, Any] | None = None
    catseg_version: str = "unknown"
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` document (plain JSON types)."""
        return {
            "format": FORMAT_TAG,
            "format_version": self.format_version,
            "catseg_version": self.catseg_version,
            "model": self.model.to_dict(),
            "fused": self.fused,
            "palette": None if self.palette is None else [list(c) for c in self.palette],
            "training": self.training,
        }
