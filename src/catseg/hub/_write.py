"""Writing a model folder: ``config.json``, ``model.safetensors`` and ``README.md``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catseg._bounds import read_json
from catseg._files import atomic_write
from catseg._modules import unwrap_model
from catseg._runtime import require
from catseg._validation import check_bool, check_path
from catseg._version import catseg_version
from catseg.checkpoint._checks import check_weights_fit
from catseg.errors import CatsegError, CheckpointError, ConfigError
from catseg.hub._card import model_card
from catseg.hub._format import CARD_NAME, CONFIG_NAME, FORMAT_TAG, WEIGHTS_NAME, FolderConfig
from catseg.metrics import IoUResult
from catseg.models import UNet
from catseg.training import History
from catseg.visualize import PaletteName, check_palette


def _check_target(folder: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder that is not a catseg model folder."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"save_pretrained needs a folder, but {folder} is a file")
    if overwrite or not folder.is_dir() or not any(folder.iterdir()):
        return
    try:
        data = read_json(folder / CONFIG_NAME)
        ours = isinstance(data, dict) and data.get("format") == FORMAT_TAG
    except CatsegError:
        ours = False
    if not ours:
        raise ConfigError(
            f"{folder} is not empty and is not a catseg model folder (no {CONFIG_NAME} with "
            f"format {FORMAT_TAG!r}); choose an empty or new folder, or pass overwrite=True "
            f"to write {CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME} into it"
        )


def _palette(
    palette: PaletteName | Sequence[int] | None, count: int
) -> tuple[tuple[int, int, int], ...] | None:
    if palette is None:
        return None
    flat = check_palette(palette)
    if len(flat) < 3 * count:
        raise ConfigError(
            f"palette has {len(flat) // 3} colours, expected a colour for each of the "
            f"{count} classes"
        )
    return tuple((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]) for i in range(count))


def _training(history: History | None, evaluation: IoUResult | None, classes: Sequence[str]) -> Any:
    if history is None and evaluation is None:
        return None
    info: dict[str, Any] = {}
    if history is not None:
        if not isinstance(history, History):
            raise ConfigError(f"history must be a catseg History, got {type(history).__name__}")
        best = history.best_val_miou
        info.update(
            epochs=len(history),
            best_epoch=history.best_epoch,
            best_val_miou=None if best is None or math.isnan(best) else float(best),
            precision=history.precision,
            device=history.device,
            world_size=history.world_size,
        )
    if evaluation is not None:
        if not isinstance(evaluation, IoUResult):
            raise ConfigError(
                f"evaluation must be an IoUResult (MeanIoU.compute()), got "
                f"{type(evaluation).__name__}"
            )
        values = [float(v) for v in evaluation.iou.flatten().tolist()]
        names = list(classes)[-len(values) :] if len(values) < len(classes) else list(classes)
        info["per_class_iou"] = {
            n: (None if math.isnan(v) else v) for n, v in zip(names, values, strict=False)
        }
        info["val_miou"] = None if math.isnan(evaluation.miou) else float(evaluation.miou)
    return info


def _weights(model: UNet) -> dict[str, torch.Tensor]:
    """The weights as contiguous CPU tensors, checked against a fresh model of the config."""
    with torch.device("meta"):
        reference = UNet.from_config(model.config.to_dict())  # ConfigError for an encoder instance
        if model.is_fused:
            reference = reference.fuse_for_inference()
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    check_weights_fit(reference, state, what="the model's weights")
    return state


def save_pretrained(
    folder: str | os.PathLike[str],
    model: nn.Module,
    *,
    palette: PaletteName | Sequence[int] | None = None,
    history: History | None = None,
    evaluation: IoUResult | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model folder: ``config.json``, ``model.safetensors`` and a ``README.md`` card.

    ``config.json`` holds the model's config, which is its one record (architecture,
    classes, mode, threshold, input size, normalisation: see
    :meth:`~catseg.models.UNet.describe`), plus the class colours, a training summary,
    the catseg version and the folder format version. ``model.safetensors`` holds the
    weights only (any safetensors reader loads it). ``README.md`` is a model card with
    YAML front matter for the Hugging Face Hub; its licence line and its "Intended use"
    and "Limitations" sections are left for the author. Each file is written atomically.
    A model returned by ``fuse_for_inference()`` is saved fused (recorded in
    ``config.json``; the folder is then for inference only).

    Args:
        folder: Destination folder, created if missing. A folder that is not empty must
            already be a catseg model folder (its three files are replaced), unless
            ``overwrite`` is true.
        model: A :class:`~catseg.models.UNet` built from a registered encoder name
            (``DataParallel``/``torch.compile`` wrappers are unwrapped).
        palette: ``"voc"``, ``"binary"`` or a flat sequence ``r0, g0, b0, ...`` giving each
            class its colour; ``None`` records none (the card shows catseg's default).
        history: The :class:`~catseg.training.History` of the training run, summarised
            in ``config.json`` and on the card.
        evaluation: A :class:`~catseg.metrics.IoUResult` of the validation set, whose
            per-class IoU goes on the card.
        overwrite: Write into a non-empty folder that is not a catseg model folder
            (other files in it are left alone).

    Returns:
        The folder, as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: If an argument is invalid (named), the folder is not empty and not a
            catseg model folder, or the model has no rebuildable config.
        CheckpointError: If the model's weights do not fit its config.
        OptionalDependencyError: If safetensors is not installed (extra ``safetensors``).

    Examples:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from catseg.models import UNet
        >>> net = UNet(3, 1, init_features=4, depth=2).describe(classes=["_background_", "cat"])
        >>> folder = save_pretrained(Path(tempfile.mkdtemp()) / "cat-unet", net)
        >>> sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
        >>> json.loads((folder / "config.json").read_text())["model"]["classes"]
        ['_background_', 'cat']
    """
    plain = unwrap_model(model)
    if not isinstance(plain, UNet):
        raise ConfigError(
            f"save_pretrained saves catseg.models.UNet models, got {type(plain).__qualname__}"
        )
    overwrite = check_bool("overwrite", overwrite)
    names = plain.config.class_names
    config = FolderConfig(
        model=plain.config,
        palette=_palette(palette, len(names)),
        fused=plain.is_fused,
        training=_training(history, evaluation, names),
        catseg_version=catseg_version(),
    )
    state = _weights(plain)
    safetensors = require("safetensors.torch", "safetensors")
    target = check_path("folder", folder)
    _check_target(target, overwrite)
    try:  # bytes written by atomic_write: safetensors.save_file recreates the file as 0600
        data = safetensors.save(state, metadata={"format": "pt", "catseg": FORMAT_TAG})
    except (RuntimeError, ValueError) as err:  # shared or non-contiguous tensors
        raise CheckpointError(
            f"the model's weights cannot be stored as safetensors: {err}"
        ) from err
    target.mkdir(parents=True, exist_ok=True)
    atomic_write(target / WEIGHTS_NAME, lambda p: p.write_bytes(data))
    text = json.dumps(config.to_json(), indent=2, allow_nan=False) + "\n"
    atomic_write(target / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
    card = model_card(target.resolve().name, config)
    atomic_write(target / CARD_NAME, lambda p: p.write_text(card, encoding="utf-8"))
    return target
