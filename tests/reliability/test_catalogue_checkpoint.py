"""Bad-input catalogue rows for checkpoints (issue 21, "Hostile files: Checkpoints").

Same contract as ``test_catalogue.py``: each row either returns the documented result,
checked against hand-worked values, or raises the listed catseg error whose message
names the file, field and what is wrong. Every hostile file here is refused in
milliseconds; the subprocess test with a memory limit is ``tests/checkpoint``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from reliability_builders import (
    Row,
    check_rows,
    run_row,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
)
from torch.utils.data import ConcatDataset, Dataset, Subset

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.data import transforms as tfm
from catseg.errors import CheckpointError, ConfigError
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training._data import record_data_facts

CLASSES = ["_background_", "cat"]


def tiny() -> UNet:
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2)
    return model.describe(classes=CLASSES, mean=(0.5,) * 3, std=(0.25,) * 3).eval()


def _bomb(levels: int) -> list[Any]:
    bomb: list[Any] = [0]
    for _ in range(levels):
        bomb = [bomb, bomb]
    return bomb


def _hostile(field: str, value: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Any]:
    """Save a good file, set ``field`` to ``value(payload)``, load it as Segmenter would."""

    def call(tmp: Path) -> Any:
        payload = torch.load(save_checkpoint(tmp / "ok.pt", tiny()), weights_only=True)
        payload[field] = value(payload)
        torch.save(payload, tmp / "downloaded.pt")
        return Segmenter.from_checkpoint(tmp / "downloaded.pt", precision="fp32")

    return call


def _weight(tensor: torch.Tensor) -> Callable[[dict[str, Any]], Any]:
    return lambda payload: {**payload["state_dict"], "head.bias": tensor}


def _config(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda payload: {**payload["model_config"], **changes}


def _encoder_weights(key: str, tensor: torch.Tensor, *, file: bool) -> Callable[[Path], Any]:
    """Build a tiny UNet from its own encoder's weights with ``key`` replaced by ``tensor``."""

    def call(tmp: Path) -> Any:
        state = {**UNet(3, 1, init_features=4, depth=2).encoder.state_dict(), key: tensor}
        if file:
            torch.save(state, tmp / "weights.pth")
        return UNet(
            3, 1, init_features=4, depth=2, encoder_weights=tmp / "weights.pth" if file else state
        )

    return call


_STEM = "blocks.0.0.weight"  # (4, 3, 3, 3): the first convolution
_NAN, _COUNTER = torch.full((4, 3, 3, 3), float("nan")), "blocks.0.1.num_batches_tracked"
_INF = torch.full((4, 3, 3, 3), float("inf"))


def _deflated(tmp: Path) -> Any:
    source = save_checkpoint(tmp / "ok.pt", tiny())
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(tmp / "zipped.pt", "w", 8) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return load_checkpoint(tmp / "zipped.pt")


def _map_location(value: Any) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        return load_checkpoint(save_checkpoint(tmp / "ok.pt", tiny()), map_location=value)

    return call


class _Declared(Dataset[Any]):
    def __init__(self, names: list[str], size: int, transforms: Any = None) -> None:
        self.class_names, self.image_size, self.transforms = names, size, transforms

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        raise IndexError(index)


def _meta(dataset: Any) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        model = UNet(3, 1, init_features=4, depth=2)
        record_data_facts(model, dataset, need_size=True)
        return model.config.classes, model.config.image_size

    return call


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


def _crop(image: Any, mask: Any) -> Any:
    return image[:, :8, :8], mask[:8, :8]


ROWS: list[Row] = [
    Row("checkpoint-shared-list-bomb-in-extra", _hostile("extra", lambda p: {"x": _bomb(40)}),
        "CheckpointError in ms, naming the field", CheckpointError,
        r"downloaded\.pt cannot be loaded safely: field 'extra'\['x'\].* nested more than 32"),
    Row("checkpoint-shared-list-bomb-in-classes",
        _hostile("model_config", _config(classes=[_bomb(40)])),
        "CheckpointError (was: str() of 2**40 items, a hang)", CheckpointError,
        r"field 'model_config'\['classes'\]\[0\].* is nested more than 32 levels deep"),
    Row("checkpoint-record-threshold-1.5",
        _hostile("model_config", _config(threshold=1.5)),
        "CheckpointError naming the file and the field", CheckpointError,
        r"downloaded\.pt: invalid model record: threshold must be a finite number in \(0\.0, 1"),
    Row("checkpoint-config-depth-1000", _hostile("model_config", _config(depth=1000)),
        "CheckpointError before building", CheckpointError,
        r"invalid model record: depth=1000 is over the limit of 12"),
    Row("checkpoint-config-init-features-1e6",
        _hostile("model_config", _config(init_features=10**6)),
        "CheckpointError before building", CheckpointError,
        r"invalid model record: init_features=1000000 is over the limit of 65536"),
    Row("checkpoint-config-wider-than-its-weights",
        _hostile("model_config", _config(init_features=64, depth=10)),
        "CheckpointError from the meta-device model, nothing allocated", CheckpointError,
        r"downloaded\.pt: the checkpoint's weights do not match the model config: .*the config "
        r"builds \d+ weight values, the file holds \d+\)"),
    Row("checkpoint-sparse-weight", _hostile("state_dict", _weight(torch.zeros(1).to_sparse())),
        "CheckpointError naming the weight and its layout", CheckpointError,
        r"field 'state_dict'\['head.bias'\] is a sparse_coo tensor \(only dense tensors\)"),
    Row("checkpoint-complex-weight",
        _hostile("state_dict", _weight(torch.zeros(1, dtype=torch.complex64))),
        "CheckpointError naming the weight and its dtype", CheckpointError,
        r"state_dict\['head.bias'\] is a complex tensor \(torch.complex64\)"),
    Row("checkpoint-expanded-tensor-2**40",
        _hostile("extra", lambda p: {"x": torch.zeros(1).expand(1 << 40)}),
        "CheckpointError (a .clone() would need 4 TB)", CheckpointError,
        r"field 'extra'\['x'\] declares 1099511627776 elements over a storage of 1"),
    Row("checkpoint-huge-int", _hostile("extra", lambda p: {"n": 1 << 80}),
        "CheckpointError naming the field", CheckpointError,
        r"field 'extra'\['n'\] is an int of 81 bits \(at most 64\)"),
    Row("checkpoint-compressed-archive", _deflated,
        "CheckpointError (a zip bomb would expand)", CheckpointError,
        r"zipped\.pt is not a catseg checkpoint: archive entry .* is compressed"),
    Row("checkpoint-map-location-typo", _map_location("gpu"),
        "CheckpointError naming the value", CheckpointError,
        r"map_location 'gpu' is not a device name; expected e\.g\. 'cpu', 'cuda' or 'cuda:0'"),
    Row("checkpoint-map-location-absent-device", _map_location("cuda:7"),
        "CheckpointError saying what this machine has", CheckpointError,
        r"map_location='cuda:7': this machine has"),
    Row("checkpoint-map-location-callable", _map_location(lambda s, loc: s),
        "CheckpointError naming the type", CheckpointError,
        r"map_location must be None, a device name .* of type function"),
    # One rule for the weights of a checkpoint and of encoder_weights= (issue 27, class 6):
    # before, these loaded silently through encoder_weights= (complex lost its imaginary part).
    Row("checkpoint-nan-weight",
        _hostile("state_dict", _weight(torch.tensor([float("nan")]))),
        "CheckpointError naming the weight", CheckpointError,
        r"downloaded\.pt is a corrupt catseg checkpoint: state_dict\['head.bias'\] holds NaN or "
        r"infinite values"),
    Row("checkpoint-bool-weight", _hostile("state_dict", _weight(torch.ones(1, dtype=torch.bool))),
        "CheckpointError naming the weight and the dtype", CheckpointError,
        r"weight 'head.bias' is torch.bool, but the model needs a floating-point tensor"),
    Row("encoder-weights-nan-file", _encoder_weights(_STEM, _NAN, file=True),
        "CheckpointError naming the file and the weight", CheckpointError,
        r"weights\.pth: weight 'blocks.0.0.weight' holds NaN or infinite values"),
    Row("encoder-weights-inf", _encoder_weights(_STEM, -_INF, file=False),
        "CheckpointError naming the weight", CheckpointError,
        r"the given state dict: weight 'blocks.0.0.weight' holds NaN or infinite values"),
    Row("encoder-weights-integer-file",
        _encoder_weights(_STEM, torch.ones(4, 3, 3, 3, dtype=torch.int64), file=True),
        "CheckpointError (was: loaded as 1.0)", CheckpointError,
        r"weight 'blocks.0.0.weight' is torch.int64, but the model needs a floating-point tensor"),
    Row("encoder-weights-bool", _encoder_weights(_STEM, torch.ones(4, 3, 3, 3).bool(), file=False),
        "CheckpointError (was: loaded as 1.0)", CheckpointError,
        r"weight 'blocks.0.0.weight' is torch.bool, but the model needs a floating-point tensor"),
    Row("encoder-weights-complex-file",
        _encoder_weights(_STEM, torch.ones(4, 3, 3, 3, dtype=torch.complex64), file=True),
        "CheckpointError (was: the imaginary part dropped with a torch warning)", CheckpointError,
        r"weight 'blocks.0.0.weight' is a complex tensor \(torch.complex64\); model weights are"),
    Row("encoder-weights-float-counter",
        _encoder_weights(_COUNTER, torch.tensor(3.0), file=False),
        "CheckpointError: the model's counter is an integer", CheckpointError,
        r"weight 'blocks.0.1.num_batches_tracked' is torch.float32, but the model needs an "
        r"integer tensor"),
    Row("encoder-weights-sparse",
        _encoder_weights(_STEM, torch.zeros(4, 3, 3, 3).to_sparse(), file=False),
        "CheckpointError (was: a bare RuntimeError)", CheckpointError,
        r"weight 'blocks.0.0.weight' is a sparse_coo tensor \(only dense tensors\)"),
    Row("encoder-weights-meta",
        _encoder_weights(_STEM, torch.zeros(4, 3, 3, 3, device="meta"), file=False),
        "CheckpointError (was: a bare NotImplementedError)", CheckpointError,
        r"weight 'blocks.0.0.weight' is a meta tensor \(it holds no values\)"),
    Row("encoder-weights-integer-counter-loads",
        _encoder_weights(_COUNTER, torch.tensor(7), file=True),
        "loads: the counter is an integer in the model too",
        check=lambda model: int(model.encoder.state_dict()[_COUNTER]) == 7),
    Row("meta-from-dataset-through-compose-resize",
        _meta(Subset(_Declared(CLASSES, 64, tfm.Compose([tfm.Resize((32, 48))])), [0])),
        "the size after Resize, not the dataset's 64",
        check=_equal((("_background_", "cat"), (32, 48)))),
    Row("meta-from-dataset-concat-disagrees",
        _meta(ConcatDataset([_Declared(CLASSES, 32), _Declared(["_background_", "dog"], 32)])),
        "ConfigError naming the describe call", ConfigError,
        r"parts of the dataset disagree on classes: .* model.describe\(classes="),
    Row("meta-from-dataset-unknown-transform",
        _meta(_Declared(CLASSES, 64, tfm.Compose([_crop]))),
        "ConfigError naming the transform", ConfigError,
        r"the transforms of the dataset hold a function, whose effect on the size is unknown"),
]  # fmt: skip


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_checkpoint(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)
