"""The model card (``README.md``): YAML front matter for the hub, then the facts of the model."""

from __future__ import annotations

import math

from catseg.hub._format import FolderConfig
from catseg.models.preprocessing import Preprocessing
from catseg.visualize import get_palette

_OUTPUT = {
    "binary": "one logit map; sigmoid, foreground where the probability is above {t}",
    "multiclass": "one logit map per class; softmax, each pixel takes the most probable class",
    "multilabel": "one logit map per label; sigmoid per label, a pixel carries every label "
    "whose probability is above {t} (labels may overlap)",
}


def _text(value: object) -> str:
    """``value`` as literal Markdown on one line: markup and control characters escaped."""
    return "".join(
        f"\\{c}" if c in "\\`*_[]<>|&~$#" else c if c.isprintable() else ascii(c)[1:-1]
        for c in str(value)
    )


_FRONT_MATTER = """---
library_name: catseg
# license: mit  # choose the licence of these weights and uncomment this line
tags: [image-segmentation, semantic-segmentation, catseg, unet, pytorch, safetensors]
pipeline_tag: image-segmentation
---
"""


def _classes_section(config: FolderConfig) -> list[str]:
    flat = get_palette("binary" if len(config.model.class_names) == 2 else "voc")
    colours = list(config.palette or zip(flat[0::3], flat[1::3], flat[2::3], strict=True))
    lines = ["## Classes", "", "| label | name | colour |", "|---:|---|---|"]
    for label, name in enumerate(config.model.class_names):
        if label < len(colours):
            r, g, b = colours[label]
            colour = f"`#{r:02x}{g:02x}{b:02x}` ({r}, {g}, {b})"
        else:
            colour = "-"
        lines.append(f"| {label} | {_text(name)} | {colour} |")
    return [*lines, ""]


def _preprocessing_section(config: FolderConfig) -> list[str]:
    record = config.model
    pre = record.preprocessing or Preprocessing.identity(record.in_channels)
    size = (
        "kept at its original size (any size works)"
        if record.image_size is None
        else f"resized to {record.image_size[0]}×{record.image_size[1]} (height × width, "
        "bilinear, antialiased)"
    )
    threshold = (
        ", ".join(f"{t:g}" for t in record.threshold)
        if isinstance(record.threshold, tuple)
        else f"{record.threshold:g}"
    )
    return [
        "## Preprocessing",
        "",
        "Each image is read as RGB (EXIF orientation applied), scaled to [0, 1], "
        f"{size}, then normalised per channel as `(x - mean) / std` with:",
        "",
        f"- mean: `{list(pre.mean)}`",
        f"- std: `{list(pre.std)}`",
        "",
        f"Output ({record.mode}): {_OUTPUT[str(record.mode)].format(t=threshold)}. Masks are "
        "returned at the original image size. `Segmenter.from_pretrained` applies all of this "
        "from `config.json`.",
        "",
    ]


def _number(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def _training_section(config: FolderConfig) -> list[str]:
    lines = ["## Training", ""]
    info = config.training
    if info is None:
        return [*lines, "No training summary was recorded (describe the training data here).", ""]
    lines += [
        f"- epochs: {info.get('epochs')}",
        f"- best validation mIoU: {_number(info.get('best_val_miou'))} "
        f"(epoch {_number(info.get('best_epoch'))})",
        f"- precision: {_text(info.get('precision'))}",
        f"- device: {_text(info.get('device'))} (processes: {info.get('world_size')})",
        "",
    ]
    per_class = info.get("per_class_iou")
    if isinstance(per_class, dict) and per_class:
        lines += ["| class | validation IoU |", "|---|---:|"]
        lines += [f"| {_text(name)} | {_number(iou)} |" for name, iou in per_class.items()]
        lines.append("")
    return lines


def model_card(name: str, config: FolderConfig) -> str:
    r"""The text of ``README.md`` for a model folder.

    Examples:
        >>> from catseg.models import UNetConfig
        >>> cfg = FolderConfig(UNetConfig(classes=("bg", "cat"), image_size=(64, 64)), None)
        >>> card = model_card("cat", cfg)
        >>> card.startswith("---\nlibrary_name: catseg"), "| 1 | cat | `#008000`" in card
        (True, True)
    """
    arch = config.model
    package = arch.encoder_package  # a checked "dist==version": safe in a code span
    fused = " BatchNorm is folded into its convolutions (inference only)." if config.fused else ""
    lines = [
        _FRONT_MATTER,
        f"# {_text(name)}",
        "",
        f"A [catseg](https://catseg.readthedocs.io) UNet for {arch.mode} semantic "
        f"segmentation: encoder {_text(arch.encoder)}, {arch.in_channels} input "
        f"channels, {arch.num_classes} output map(s).{fused}",
        "",
        *([f"Its encoder is a plugin: `pip install {package}` first.", ""] if package else []),
        "```python",
        "from catseg.predict import Segmenter",
        "",
        f"seg = Segmenter.from_pretrained({name!r})  # a folder or a hub repo id",
        'seg.predict("photo.jpg").save("photo-mask.png")',
        "```",
        "",
        *_classes_section(config),
        *_preprocessing_section(config),
        *_training_section(config),
        "## Intended use",
        "",
        "<!-- Who should use this model, on which images, for what. -->",
        "",
        "## Limitations",
        "",
        "<!-- Where it fails: image kinds, classes or conditions it was not trained on, "
        "known biases. -->",
        "",
        f"*Written by catseg {config.catseg_version} (model folder format "
        f"{config.format_version}).*",
        "",
    ]
    return "\n".join(lines)
