"""The public-API sweep (issue #27): one bad value at a time, for every parameter.

For each public callable (``catseg.__all__`` and the public names of its subpackages that
take arguments, plus the main methods) :func:`recipes` gives a small *valid* call (a tiny
UNet, 4x4 tensors, an 8-photo synthetic VOC folder). :func:`sweep` then replaces one
parameter at a time with each value of a fixed set chosen from the parameter's annotation
(:func:`bad_values`: ``None`` where not optional, a string where a number goes, a list
where a scalar goes, ``object()``, NaN/inf, bools where ints go, ``2**70``, negative and
zero numbers, empty sequences, a string naming no choice ...) and classifies the outcome:

* ``catseg``: a :class:`~catseg.errors.CatsegError` (good);
* ``bare``: any other exception, or no answer within :data:`SECONDS` (bad);
* ``accepted``: the call returned although the value breaks the documented contract (bad);
* ``valid``: the call returned and ``_ALLOWED`` says the contract allows the value.

``python tests/reliability/api_sweep.py`` prints the table that test_api_sweep.py records.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import re
import signal
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import catseg
from catseg import data as catseg_data
from catseg import export, hub, models, visualize
from catseg import losses as lo
from catseg import metrics as me
from catseg.data import transforms as tf
from catseg.errors import CatsegError

SECONDS = 5.0
"""A call still running after this long counts as a bare failure (a hang)."""


@dataclass(frozen=True)
class Bad:
    """One bad value: a label for the table and a factory (a fresh object per call)."""

    label: str
    make: Callable[[], object]


class Alien:
    """A value of a type no catseg parameter expects."""

    def __repr__(self) -> str:
        return "<Alien>"


class _Hang(BaseException):
    """Raised by the alarm; a ``BaseException`` so ``except Exception`` inside catseg misses it."""


CHOICE_ALIASES = {
    "LossMode", "ReductionScope", "NormName", "ActivationName", "UpsampleName", "Mode",
    "MetricMode", "AbsentMode", "LabelmeMode", "Precision", "PaletteName", "OnError",
    "CalibrationMethod",
}  # fmt: skip


def _parts(annotation: str) -> list[str]:
    """Top-level ``|`` alternatives of an annotation string."""
    parts, depth, current = [], 0, ""
    for char in annotation:
        depth += char in "[("
        depth -= char in "])"
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def bad_values(annotation: str) -> list[Bad]:
    """The fixed set of bad values for a parameter with this annotation."""
    parts = _parts(annotation)
    heads = {re.split(r"[\[.]", p.removeprefix("os.").removeprefix("torch."))[0] for p in parts}
    numeric = heads & {"int", "float", "Threshold"}
    sequence = heads & {"Sequence", "tuple", "list", "Iterable"}
    text = heads & ({"str", "Literal", "Labels"} | CHOICE_ALIASES)
    out = [Bad("object()", Alien)]
    if "None" not in heads:
        out.append(Bad("None", lambda: None))
    if numeric and not text:
        out.append(Bad("str", lambda: "1"))
    if numeric and not sequence:
        out.append(Bad("list", lambda: [1]))
    if "int" in heads and "float" not in heads:
        out += [
            Bad("1.5", lambda: 1.5),
            Bad("True", lambda: True),
            Bad("2**70", lambda: 2**70),
            Bad("-1", lambda: -1),
            Bad("0", lambda: 0),
        ]
    if heads & {"float", "Threshold"}:
        out += [
            Bad("nan", lambda: math.nan),
            Bad("inf", lambda: math.inf),
            Bad("True", lambda: True),
            Bad("-1.0", lambda: -1.0),
        ]
    if "bool" in heads:
        out += [Bad("'yes'", lambda: "yes"), Bad("2", lambda: 2)]
    if heads & ({"Literal"} | CHOICE_ALIASES):
        out.append(Bad("'no-such-choice'", lambda: "no-such-choice"))
    if text and not numeric and "Literal" not in heads and not heads & CHOICE_ALIASES:
        out.append(Bad("3", lambda: 3))
    if sequence:
        out += [Bad("[]", list), Bad("[object()]", lambda: [Alien()])]
        if not text:
            out.append(Bad("'ab'", lambda: "ab"))
    if heads & {"Tensor"}:
        out += [
            Bad("nested list", lambda: [[0.0, 1.0]]),
            Bad("empty tensor", lambda: torch.empty(0)),
            Bad("1-d tensor", lambda: torch.ones(4)),
        ]
    if heads & {"PathLike"}:
        out.append(Bad("3", lambda: 3)) if not any(b.label == "3" for b in out) else None
    if heads & {"Mapping", "dict"}:
        out.append(Bad("list", lambda: [1]))
    return out


_TRANSFORMS = ("ColorJitter", "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation")
_METRICS = ("confusion_matrix", "mean_iou", "MeanIoU")
# (parameter, value labels, callables) -> why the documented contract allows these values
_ALLOWED: list[tuple[str, tuple[str, ...], tuple[str, ...], str]] = [
    ("ignore_index", ("-1",), (), "any int label may be the ignored one (-1 is a common choice)"),
    ("ignore_index", ("0",), _METRICS, "ignoring class 0 (the background) is allowed"),
    ("seed", ("0",), (), "0 is a seed"),
    ("seed", ("-1",), (*_TRANSFORMS, "RunOptions"), "any int seeds a torch generator"),
    ("void_width", ("0",), (), "documented: >= 0 (0 draws no void border)"),
    ("image_fill", ("-1.0",), (), "normalised images hold negative values"),
    ("mask_fill", ("-1", "0"), (), "any value the mask's dtype holds (checked per call)"),
    ("class_weights", ("1-d tensor",), (), "the documented form; length checked at the call"),
    ("num_workers", ("0",), (), "0 loads in the main process"),
    ("transforms", ("[]",), ("Compose",), "an empty Compose is the identity"),
    ("callbacks", ("[]",), ("fit",), "no callbacks (the default is ())"),
    ("files", ("[]",), ("Segmenter.predict_folder",), "an empty list predicts nothing"),
    ("images", ("[]",), ("rank_for_labelling",), "an empty list ranks nothing"),
    ("min_area", ("0",), ("Prediction.to_labelme",), "0 keeps every region"),
]


def _valid(name: str, parameter: str, label: str) -> str | None:
    for param, labels, names, reason in _ALLOWED:
        if param == parameter and label in labels and (not names or name in names):
            return reason
    return None


@dataclass
class Outcome:
    """The classified calls of one callable."""

    calls: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    offenders: list[str] = field(default_factory=list)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def classify(call: Callable[[], object]) -> tuple[str, str]:
    """``(kind, detail)`` for one call: catseg, bare (with the error) or returned."""
    try:
        with warnings.catch_warnings(), _deadline(SECONDS):
            warnings.simplefilter("ignore")
            call()
    except _Hang:
        return "bare", f"no answer in {SECONDS} s"
    except CatsegError:
        return "catseg", ""
    except Exception as error:
        return "bare", f"{type(error).__name__}: {str(error)[:120]}"
    return "returned", ""


# --------------------------------------------------------------------------- recipes

Recipe = Callable[[], tuple[Callable[..., object], dict[str, Any]]]


def _tiny(num_classes: int = 1) -> catseg.UNet:
    return catseg.UNet(num_classes=num_classes, init_features=4, depth=1)


def _logits(channels: int = 1) -> torch.Tensor:
    return torch.linspace(-2, 2, 16 * channels).reshape(1, channels, 4, 4)


def _labels() -> torch.Tensor:
    return (torch.arange(16).reshape(1, 4, 4) % 2).long()


def recipes(tmp: Path) -> dict[str, Recipe]:
    """Name -> a factory of ``(callable, valid keyword arguments)``; files live under ``tmp``."""
    counter = itertools.count()

    def out(suffix: str = "") -> Path:
        return tmp / "out" / f"{next(counter)}{suffix}"

    (tmp / "out").mkdir(parents=True, exist_ok=True)
    voc = catseg.make_synthetic_voc(tmp / "voc", n=8, size=16, seed=0)
    photos = tmp / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8), (90, 20, 30)).save(photos / "a.png")
    labelme = tmp / "labelme"
    labelme.mkdir()
    Image.new("RGB", (8, 6), (40, 50, 60)).save(labelme / "a.png")
    square = [[1, 1], [6, 1], [6, 4], [1, 4]]
    (labelme / "a.json").write_text(
        '{"imagePath": "a.png", "imageData": null, "shapes": [{"label": "cat", "points": '
        f'{square}, "shape_type": "polygon"}}]}}',
        encoding="utf-8",
    )
    checkpoint = catseg.save_checkpoint(tmp / "m.pt", _tiny())
    onnx = catseg.to_onnx(_tiny(), tmp / "m.onnx")
    folder = hub.save_pretrained(tmp / "folder", _tiny())
    dataset = catseg.VOCSegmentationDataset(voc, "train")
    image = torch.rand(3, 4, 4)
    mask = torch.zeros(4, 4, dtype=torch.long)

    def loader() -> torch.utils.data.DataLoader[Any]:
        return torch.utils.data.DataLoader(dataset, batch_size=4)

    def segmenter() -> catseg.Segmenter:
        return catseg.Segmenter(_tiny(), device="cpu", fuse=False)

    def loss_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lo.DiceLoss()(a, b)

    def opt(model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=0.01)

    def with_model(build: Callable[[torch.nn.Module], dict[str, Any]], f: Any) -> Recipe:
        def recipe() -> tuple[Callable[..., object], dict[str, Any]]:
            model = _tiny()
            return f, build(model)

        return recipe

    r: dict[str, Recipe] = {
        "UNet": lambda: (catseg.UNet, {"num_classes": 2, "init_features": 4, "depth": 1}),
        "UNetConfig": lambda: (catseg.UNetConfig, {"num_classes": 2}),
        "UNet.from_config": lambda: (catseg.UNet.from_config, {"cfg": {"num_classes": 1}}),
        "UNet.describe": lambda: (
            _tiny(2).describe,
            {"classes": ["bg", "cat"], "image_size": 8, "mean": [0.5] * 3, "std": [0.2] * 3},
        ),
        "Preprocessing": lambda: (catseg.Preprocessing, {"mean": (0.5,), "std": (0.2,)}),
        "Registry": lambda: (catseg.Registry, {"entry_point_group": None}),
        "register_encoder": lambda: (
            catseg.Registry(entry_point_group=None).register,
            {"name": "x"},
        ),
        "get_encoder": lambda: (
            catseg.get_encoder,
            {"name": "unet", "options": {"init_features": 4, "depth": 1}},
        ),
        "list_encoders": lambda: (catseg.list_encoders, {}),
        "validate_encoder": lambda: (
            catseg.validate_encoder,
            {
                "encoder": catseg.get_encoder("unet", options={"init_features": 4, "depth": 1}),
                "size": 8,
            },
        ),
        "freeze_encoder": lambda: (catseg.freeze_encoder, {"model": _tiny()}),
        "unfreeze_encoder": lambda: (catseg.unfreeze_encoder, {"model": _tiny()}),
        "param_groups": lambda: (catseg.param_groups, {"model": _tiny(), "encoder_lr": 0.1}),
        "adapt_stem_weight": lambda: (
            models.adapt_stem_weight,
            {"weight": torch.ones(2, 3, 3, 3), "in_channels": 1},
        ),
        "soft_dice": lambda: (lo.soft_dice, {"input": _logits(), "target": _labels()}),
        "dice_ce_loss": lambda: (lo.dice_ce_loss, {"input": _logits(), "target": _labels()}),
        "focal_loss": lambda: (lo.focal_loss, {"input": _logits(), "target": _labels()}),
        "jaccard_loss": lambda: (lo.jaccard_loss, {"input": _logits(), "target": _labels()}),
        "lovasz_loss": lambda: (lo.lovasz_loss, {"input": _logits(), "target": _labels()}),
        "tversky_loss": lambda: (lo.tversky_loss, {"input": _logits(), "target": _labels()}),
        "confusion_matrix": lambda: (
            me.confusion_matrix,
            {"preds": _logits(2), "target": _labels(), "num_classes": 2},
        ),
        "mean_iou": lambda: (
            me.mean_iou,
            {"preds": _logits(2), "target": _labels(), "num_classes": 2},
        ),
        "MeanIoU": lambda: (me.MeanIoU, {"num_classes": 2}),
        "MeanIoU.update": lambda: (
            me.MeanIoU(2).update,
            {"preds": _logits(2), "target": _labels()},
        ),
        "VOCSegmentationDataset": lambda: (
            catseg.VOCSegmentationDataset,
            {"root": voc, "split": "train", "image_size": 8, "classes": ["bg", "cat"]},
        ),
        "VOCMultilabelDataset": lambda: (
            catseg.VOCMultilabelDataset,
            {"root": catseg.make_synthetic_multilabel(out(), n=4, size=16), "split": "train"},
        ),
        "SegmentationLoader": lambda: (
            catseg.SegmentationLoader,
            {"dataset": dataset, "batch_size": 2, "num_workers": 0},
        ),
        "LabelmeDataset": lambda: (catseg.LabelmeDataset, {"root": labelme, "labels": ["cat"]}),
        "read_labelme": lambda: (
            catseg.read_labelme,
            {"json_path": labelme / "a.json", "labels": ["cat"]},
        ),
        "labelme_to_voc": lambda: (
            catseg.labelme_to_voc,
            {"src_dir": labelme, "dst_dir": out(), "labels": ["cat"], "val_fraction": 0.0},
        ),
        "make_synthetic_voc": lambda: (
            catseg.make_synthetic_voc,
            {"root": out(), "n": 2, "size": 16},
        ),
        "make_synthetic_multilabel": lambda: (
            catseg.make_synthetic_multilabel,
            {"root": out(), "n": 2, "size": 16},
        ),
        "open_image": lambda: (
            catseg_data.open_image,
            {"path": photos / "a.png", "draft_size": (4, 4)},
        ),
        "read_labels": lambda: (catseg_data.read_labels, {"labels": ["cat"]}),
        "read_mask": lambda: (
            catseg_data.read_mask,
            {"path": voc / "SegmentationClassPNG" / "synthetic_0000.png"},
        ),
        "to_rgb": lambda: (catseg_data.to_rgb, {"image": Image.new("L", (4, 4))}),
        "ColorJitter": lambda: (tf.ColorJitter, {"brightness": 0.1, "seed": 0}),
        "Compose": lambda: (tf.Compose, {"transforms": [tf.RandomHorizontalFlip()]}),
        "Normalize": lambda: (tf.Normalize, {"mean": (0.5,) * 3, "std": (0.2,) * 3}),
        "PadToMultiple": lambda: (tf.PadToMultiple, {"multiple": 8}),
        "RandomHorizontalFlip": lambda: (tf.RandomHorizontalFlip, {"seed": 0}),
        "RandomResizedCrop": lambda: (tf.RandomResizedCrop, {"size": 4, "seed": 0}),
        "RandomRotation": lambda: (tf.RandomRotation, {"degrees": 10.0, "seed": 0}),
        "Resize": lambda: (tf.Resize, {"size": 4}),
        "get_palette": lambda: (catseg.get_palette, {"name": "voc"}),
        "colorize": lambda: (catseg.colorize, {"mask": mask}),
        "overlay": lambda: (catseg.overlay, {"image": image, "mask": mask}),
        "colorize_layers": lambda: (
            visualize.colorize_layers,
            {"layers": torch.zeros(2, 4, 4, dtype=torch.uint8)},
        ),
        "overlay_layers": lambda: (
            visualize.overlay_layers,
            {"image": image, "layers": torch.zeros(2, 4, 4, dtype=torch.uint8)},
        ),
        "save_checkpoint": lambda: (
            catseg.save_checkpoint,
            {"path": out(".pt"), "model": _tiny(), "extra": {"note": 1}},
        ),
        "load_checkpoint": lambda: (
            catseg.load_checkpoint,
            {"path": checkpoint, "map_location": "cpu"},
        ),
        "Segmenter": lambda: (catseg.Segmenter, {"model": _tiny(), "device": "cpu", "fuse": False}),
        "Segmenter.predict": lambda: (segmenter().predict, {"image": image}),
        "rank_for_labelling": lambda: (
            catseg.rank_for_labelling,
            {"segmenter": segmenter(), "images": [image]},
        ),
        "Prediction.to_labelme": lambda: (
            segmenter().predict(image, return_probabilities=True).to_labelme,
            {"path": out(".json")},
        ),
        "Prediction.uncertainty": lambda: (
            segmenter().predict(image, return_probabilities=True).uncertainty,
            {},
        ),
        "Segmenter.predict_folder": lambda: (
            segmenter().predict_folder,
            {"src": photos, "dst": out(), "num_workers": 0},
        ),
        "fit": with_model(
            lambda m: {
                "model": m,
                "train_loader": loader(),
                "loss_fn": loss_fn,
                "epochs": 1,
                "optimizer": opt(m),
                "run": catseg.RunOptions(device="cpu"),
                "progress": False,
            },
            catseg.fit,
        ),
        "train_one_epoch": with_model(
            lambda m: {
                "model": m,
                "loader": loader(),
                "loss_fn": loss_fn,
                "optimizer": opt(m),
                "device": "cpu",
            },
            catseg.train_one_epoch,
        ),
        "evaluate": lambda: (
            catseg.evaluate,
            {"model": _tiny(2), "loader": loader(), "metric": me.MeanIoU(2), "device": "cpu"},
        ),
        "RunOptions": lambda: (catseg.RunOptions, {"device": "cpu", "seed": 0, "grad_clip": 1.0}),
        "to_onnx": lambda: (
            catseg.to_onnx,
            {"model_or_segmenter": _tiny(), "path": out(".onnx"), "example_size": (8, 8)},
        ),
        "quantize_onnx": lambda: (
            catseg.quantize_onnx,
            {"src_onnx": onnx, "dst_onnx": out(".onnx"), "calibration_images": [image]},
        ),
        "OnnxRunner": lambda: (export.OnnxRunner, {"path": onnx}),
        "load_pretrained": lambda: (hub.load_pretrained, {"source": folder}),
        "save_pretrained": lambda: (hub.save_pretrained, {"folder": out(), "model": _tiny()}),
    }
    for name in ("DiceLoss", "SoftDice", "DiceCELoss", "BCEDiceLoss", "FocalLoss", "TverskyLoss",
                 "JaccardLoss", "LovaszLoss"):  # fmt: skip
        r[name] = (lambda cls: lambda: (cls, {}))(getattr(lo, name))
    return r


NOT_SWEPT = {
    # result records: catseg builds them and hands them out; they are not entry points
    "IoUResult", "Checkpoint", "Prediction", "FolderSummary", "History", "EpochRecord",
    "PretrainedModel",
    # protocols, type aliases and constants
    "Encoder", "EncoderFactory", "EncoderWeights", "PretrainedEncoder", "ValidationMetric",
    "LossMode", "ReductionScope", "AbsentMode", "MetricMode", "CalibrationMethod", "PaletteName",
    "IMAGENET",
    # reaches the network (its arguments are checked by test_catalogue's sharing rows)
    "push_to_hub",
    # its arguments are those of load_encoder_weights's callers: UNet(encoder_weights=...)
    "load_encoder_weights",
}  # fmt: skip


def public_callables() -> set[str]:
    """Names of the public callables that take arguments (the sweep must cover each)."""
    modules = ["catseg", *(f"catseg.{m}" for m in (
        "losses", "metrics", "data", "data.transforms", "models", "predict", "training",
        "export", "hub", "checkpoint", "visualize"))]  # fmt: skip
    names = set()
    for module in modules:
        mod = sys.modules.get(module) or __import__(module, fromlist=["_"])
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if (isinstance(obj, type) and issubclass(obj, BaseException)) or not callable(obj):
                continue
            try:
                if not inspect.signature(obj).parameters:
                    continue
            except (TypeError, ValueError):
                continue
            names.add(name)
    return names


def sweep(tmp: Path) -> dict[str, Outcome]:
    """Run every recipe with one bad value at a time; the outcome per callable."""
    table: dict[str, Outcome] = {}
    for name, recipe in recipes(tmp).items():
        outcome = table.setdefault(name, Outcome())
        target, _ = recipe()
        for parameter in inspect.signature(target).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = str(parameter.annotation)
            for bad in bad_values(annotation):
                # a fresh valid call each time: the bad value is the only thing wrong with it
                def call(recipe: Recipe = recipe, p: str = parameter.name, b: Bad = bad) -> object:
                    f, kwargs = recipe()
                    return f(**{**kwargs, p: b.make()})

                kind, detail = classify(call)
                key = (name, parameter.name, bad.label)
                if kind == "returned":
                    kind = "valid" if _valid(*key) else "accepted"
                outcome.calls += 1
                outcome.counts[kind] += 1
                if kind in ("bare", "accepted"):
                    outcome.offenders.append(
                        f"{name}({parameter.name}={bad.label}): {kind} {detail}"
                    )
    return table


def format_table(table: dict[str, Outcome]) -> str:
    """The table as the Python dict literal test_api_sweep.py records."""
    lines = ["TABLE = {  # name: (calls, bare, accepted)"]
    for name in sorted(table):
        o = table[name]
        lines.append(f"    {name!r}: ({o.calls}, {o.counts['bare']}, {o.counts['accepted']}),")
    total = [sum(o.calls for o in table.values())]
    total += [sum(o.counts[k] for o in table.values()) for k in ("bare", "accepted")]
    lines.append(f"}}  # total: {total[0]} calls, {total[1]} bare, {total[2]} accepted")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    np.seterr(all="ignore")
    with tempfile.TemporaryDirectory() as d:
        result = sweep(Path(d))
    if "-v" in sys.argv:
        for o in result.values():
            print(*o.offenders, sep="\n")
    print(format_table(result))
