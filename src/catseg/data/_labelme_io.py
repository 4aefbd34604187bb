"""labelme files on disk: the JSON document, its image, the folder listing (hostile-file rules)."""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from catseg.data._io import read_rgb
from catseg.errors import ConfigError, DataError, LabelmeError, MissingFileError


def load_image(doc: dict[str, Any], path: Path, image_root: Path) -> Image.Image:
    data = doc.get("imageData")
    if data is not None and not isinstance(data, str):
        raise LabelmeError(
            f"{path}: imageData must be a base64 string or null, got {type(data).__name__}"
        )
    if data:
        try:
            raw = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError) as err:
            raise LabelmeError(f"{path}: imageData is not a readable base64 image") from err
        try:  # as stored: labelme applies EXIF only to image files
            return read_rgb(raw, f"{path}: imageData")[0]
        except DataError as err:
            raise LabelmeError(str(err)) from err
    image_path = doc.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise LabelmeError(
            f"{path}: imagePath must be a string, got {type(image_path).__name__} {image_path!r}"
        )
    if not image_path:
        raise LabelmeError(f"{path} has neither imageData nor imagePath; cannot find the image")
    resolved = _resolve_image(path, image_path, image_root)
    if not resolved.is_file():
        raise MissingFileError(f"{path}: imagePath {image_path!r} not found at {resolved}")
    return read_rgb(resolved, str(resolved))[0]


def _resolve_image(path: Path, image_path: str, image_root: Path) -> Path:
    """Resolve ``imagePath`` against the JSON's folder; refuse it outside ``image_root``."""
    try:
        resolved = (path.parent / image_path.replace("\\", "/")).resolve()
        root = image_root.resolve()
    except (OSError, ValueError, RuntimeError) as err:  # NUL bytes, symlink loops
        raise LabelmeError(f"{path}: imagePath {image_path!r} cannot be resolved: {err}") from err
    if not resolved.is_relative_to(root):
        raise LabelmeError(
            f"{path}: imagePath {image_path!r} resolves to {resolved}, outside {root}; "
            "images are read only inside the labelme folder unless you opt in with "
            "image_root= (e.g. the parent folder of a sibling images/ folder)"
        )
    return resolved


def image_root_or(image_root: str | os.PathLike[str] | None, default: Path) -> Path:
    if image_root is None:
        return default
    if not isinstance(image_root, (str, os.PathLike)):
        raise ConfigError(f"image_root must be a folder path or None, got {image_root!r}")
    return Path(image_root)


def read_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingFileError(f"labelme file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as err:  # bad UTF-8, bad JSON, integers past Python's digit limit
        raise LabelmeError(f"{path} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise LabelmeError(f"{path} is nested too deeply to be a labelme file") from err
    except OSError as err:
        raise LabelmeError(f"{path} cannot be read: {err}") from err
    if not isinstance(doc, dict):
        raise LabelmeError(
            f"{path} is not a labelme file (expected an object with 'shapes', "
            f"got a JSON {type(doc).__name__})"
        )
    if not isinstance(doc.get("shapes", []), list):
        raise LabelmeError(f"{path}: shapes must be a list, got {type(doc.get('shapes')).__name__}")
    return doc


def json_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise MissingFileError(f"labelme folder not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".json" and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"{folder} holds no labelme .json files")
    return files


def check_distinct_ids(files: list[Path]) -> None:
    """Refuse two JSON files whose ids (stems) differ only in case (``a.json``, ``A.JSON``)."""
    seen: dict[str, Path] = {}
    for file in files:
        key = file.stem.casefold()
        if key in seen:
            raise DataError(
                f"{seen[key]} and {file} give ids that differ only in case "
                f"({seen[key].stem!r}, {file.stem!r}); their images and masks would overwrite "
                "each other on case-insensitive file systems and in the split files; rename one"
            )
        seen[key] = file
