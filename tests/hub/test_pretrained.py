"""Model folders (issue 19, point 1): save_pretrained / from_pretrained, the card, the hub."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from catseg.data import VOCSegmentationDataset
from catseg.errors import CheckpointError, ConfigError, MissingFileError, OptionalDependencyError
from catseg.hub import FORMAT_VERSION, _remote, load_pretrained, push_to_hub, save_pretrained
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import EpochRecord, History

CLASSES = ["_background_", "cat"]


@pytest.fixture(scope="module")
def trained(cats_voc: Path) -> tuple[UNet, list[Path]]:
    """A small 2-class UNet trained for a few steps on real cat photos (BatchNorm stats move)."""
    torch.manual_seed(0)
    data = VOCSegmentationDataset(cats_voc, "train", image_size=64)
    batch = [data[i] for i in range(8)]
    images = torch.stack([b[0] for b in batch])
    masks = torch.stack([b[1] for b in batch])
    model = UNet(3, 2, init_features=8, depth=3)
    model.describe(classes=CLASSES, mean=(0.45, 0.44, 0.40), std=(0.25, 0.24, 0.26))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    assert model.preprocessing is not None
    normalised = model.preprocessing(images)
    for _ in range(6):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(normalised), masks, ignore_index=255)
        loss.backward()
        optimizer.step()
    photos = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[::70][:4]
    return model.eval(), photos


def _history() -> History:
    return History(
        records=(
            EpochRecord(1, 0.9, 0.41, 3.0, 10.0, 1e-3),
            EpochRecord(2, 0.5, 0.62, 3.0, 11.0, 1e-3),
            EpochRecord(3, 0.4, 0.58, 3.0, 11.0, 1e-3),
        ),
        precision="bf16",
        device="cuda:0",
    )


@pytest.mark.parametrize("fuse", [True, False])
def test_round_trip_gives_identical_masks_on_cat_photos(
    trained: tuple[UNet, list[Path]], tmp_path: Path, fuse: bool
) -> None:
    model, photos = trained
    seg = Segmenter(model, classes=CLASSES, image_size=(64, 64), precision="fp32", fuse=fuse)
    folder = seg.save_pretrained(tmp_path / "cat-unet", history=_history())
    again = Segmenter.from_pretrained(folder, precision="fp32", fuse=fuse)
    assert again.classes == CLASSES
    assert again.image_size == (64, 64)
    assert again.mean == pytest.approx((0.45, 0.44, 0.40))
    assert again.std == pytest.approx((0.25, 0.24, 0.26))
    before = seg.predict_batch(photos, return_probabilities=True)
    after = again.predict_batch(photos, return_probabilities=True)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a.mask, b.mask)
        assert torch.equal(a.probabilities, b.probabilities)
    assert any(int(p.mask.sum()) > 0 for p in before)  # the masks are not all background
    config = json.loads((folder / "config.json").read_text())
    assert config["fused"] is fuse


def test_function_form_keeps_weights_bit_exact_and_safetensors_alone_reads_them(
    trained: tuple[UNet, list[Path]], tmp_path: Path
) -> None:
    model, _ = trained
    folder = save_pretrained(tmp_path / "m", model, palette=[0, 0, 0, 255, 128, 0])
    state = load_file(str(folder / "model.safetensors"))  # safetensors alone, no catseg
    expected = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    loaded = load_pretrained(folder)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert loaded.palette == (0, 0, 0, 255, 128, 0)
    assert loaded.model.config.mode == "multiclass"
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.model.config == model.config


def test_config_json_records_everything(trained: tuple[UNet, list[Path]], tmp_path: Path) -> None:
    model = copy.deepcopy(trained[0]).describe(image_size=(48, 80))
    folder = save_pretrained(tmp_path / "m", model, history=_history())
    config = json.loads((folder / "config.json").read_text())
    # each fact once: the model's record under "model", the folder's own fields beside it
    assert sorted(config) == [
        "catseg_version", "format", "format_version", "fused", "model", "palette", "training"
    ]  # fmt: skip
    assert config["format"] == "catseg.model"
    assert config["format_version"] == 1
    record = config["model"]
    assert record == model.config.to_dict()
    assert record["encoder_options"] == {}
    assert record["preprocessing"] == {"mean": [0.45, 0.44, 0.40], "std": [0.25, 0.24, 0.26]}
    assert record["image_size"] == [48, 80]
    assert record["classes"] == CLASSES
    assert record["mode"] == "multiclass"
    assert record["threshold"] == 0.5
    assert config["palette"] is None
    assert config["training"]["epochs"] == 3
    assert config["training"]["best_epoch"] == 2
    assert config["training"]["best_val_miou"] == 0.62
    import catseg

    assert config["catseg_version"] == catseg.__version__


def test_card_names_classes_colours_preprocessing_and_training(tmp_path: Path) -> None:
    model = UNet(3, 3, init_features=4, depth=2).describe(
        classes=["bg", "cat", "dog"], image_size=128, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)
    )
    metric = MeanIoU(3)
    # hand-made: class 1 IoU 1/2 (1 hit, 2 in the union), class 2 IoU 1
    metric.update(torch.tensor([[[1, 1, 2]]]), torch.tensor([[[1, 0, 2]]]))
    result = metric.compute()
    folder = save_pretrained(
        tmp_path / "pets",
        model,
        palette="voc",
        history=_history(),
        evaluation=result,
    )
    card = (folder / "README.md").read_text()
    front, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "catseg"
    assert meta["pipeline_tag"] == "image-segmentation"
    assert "image-segmentation" in meta["tags"]
    assert "license" not in meta  # left for the author
    assert "# license:" in front
    assert "| 1 | cat | `#800000` (128, 0, 0) |" in body
    assert "| 2 | dog | `#008000` (0, 128, 0) |" in body
    assert "resized to 128×128" in body
    assert "mean: `[0.5, 0.5, 0.5]`" in body
    assert "std: `[0.2, 0.2, 0.2]`" in body
    assert "best validation mIoU: 0.6200 (epoch 2)" in body
    assert "- epochs: 3" in body
    assert "bf16" in body
    assert "cuda:0" in body
    assert "| cat | 0.5000 |" in body
    assert "| dog | 1.0000 |" in body
    assert "## Intended use" in body
    assert "## Limitations" in body


def test_binary_card_threshold_and_default_colours(tmp_path: Path) -> None:
    net = UNet(3, 1, init_features=4, depth=2).describe(classes=CLASSES, threshold=0.3)
    folder = save_pretrained(tmp_path / "b", net)
    card = (folder / "README.md").read_text()
    assert "| 1 | cat | `#008000` (0, 128, 0) |" in card  # the tutorial's binary palette
    assert "above 0.3" in card
    assert "No training summary" in card
    assert load_pretrained(folder).model.config.threshold == 0.3
    seg = Segmenter.from_pretrained(folder)
    assert seg.threshold == 0.3


def test_resave_into_own_folder_but_not_into_a_foreign_one(tmp_path: Path) -> None:
    net = UNet(3, 1, init_features=4, depth=2).describe(classes=CLASSES)
    folder = save_pretrained(tmp_path / "m", net)
    save_pretrained(folder, net.describe(classes=["bg", "dog"]))  # a catseg folder: replaced
    assert load_pretrained(folder).model.config.classes == ("bg", "dog")
    net.describe(classes=CLASSES)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    with pytest.raises(ConfigError, match="not empty and is not a catseg model folder"):
        save_pretrained(foreign, net)
    assert (foreign / "README.md").read_text() == "my notes"
    assert sorted(p.name for p in foreign.iterdir()) == ["README.md"]
    save_pretrained(foreign, net, overwrite=True)
    assert load_pretrained(foreign).model.config.classes == tuple(CLASSES)
    assert not [p for p in foreign.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"palette": [0, 0, 0]}, "a colour for each of the 2 classes"),
        ({"palette": [0, 0, 0, 0, 300, 0]}, "0..255"),
        ({"history": {"epochs": 3}}, "history must be a catseg History"),
        ({"overwrite": "yes"}, "overwrite must be True or False"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        save_pretrained(tmp_path / "m", UNet(3, 1, init_features=4, depth=2), **kwargs)
    assert not (tmp_path / "m").exists()


def test_onnx_segmenter_cannot_save(tmp_path: Path) -> None:
    from catseg.export import to_onnx

    seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=CLASSES, precision="fp32")
    onnx_seg = Segmenter.from_onnx(to_onnx(seg, tmp_path / "m.onnx"))
    with pytest.raises(ConfigError, match="runs an ONNX file"):
        onnx_seg.save_pretrained(tmp_path / "folder")


# ----------------------------------------------------------------------- hostile folders
def _folder(tmp_path: Path) -> Path:
    net = UNet(3, 1, init_features=4, depth=2).describe(classes=CLASSES)
    return save_pretrained(tmp_path / "m", net)


def _edit(folder: Path, record: dict[str, Any] | None = None, **changes: Any) -> None:
    """Change top-level fields of config.json and fields of its "model" record."""
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    if record is not None:
        data["model"] = {**data["model"], **record}
    path.write_text(json.dumps(data))


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, format_version=2, catseg_version="9.0")
    with pytest.raises(CheckpointError, match=r"config\.json: field 'format_version' is 2 .*9\.0"):
        load_pretrained(folder)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    folder = _folder(tmp_path)
    (folder / name).unlink()
    with pytest.raises(MissingFileError, match=name.replace(".", r"\.")):
        load_pretrained(folder)


def test_missing_folder_and_file_source(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        load_pretrained(tmp_path / "nothing")
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        load_pretrained(tmp_path / "f.bin")


def test_config_that_does_not_match_the_weights(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, record={"init_features": 8})
    with pytest.raises(CheckpointError, match=r"config\.json: field 'model': the weights"):
        load_pretrained(folder)


RECORD = r"config\.json: invalid model record: "


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": "other"}, "not a catseg model config: field 'format'"),
        ({"model": "unet"}, r"config\.json: field 'model' is 'unet', expected an object"),
        ({"palette": [[0, 0]]}, r"config\.json: field 'palette' is \[\[0, 0\]\]"),
        ({"fused": "yes"}, r"config\.json: field 'fused' is 'yes', expected true or false"),
    ],
)
def test_malformed_fields_are_named(tmp_path: Path, changes: dict[str, Any], match: str) -> None:
    folder = _folder(tmp_path)
    _edit(folder, **changes)
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(folder)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"classes": "cat"}, RECORD + "classes must be a list of class names, got 'cat'"),
        ({"classes": ["bg", "cat", "dog"]}, RECORD + r"classes has 3 names but a binary"),
        ({"mode": "panoptic"}, RECORD + "mode must be one of 'binary', .*got 'panoptic'"),
        ({"threshold": 2}, RECORD + r"threshold must be a finite number in \(0.0, 1.0\), got 2"),
        ({"image_size": [0, 5]}, RECORD + r"image_size must be an int or \(height, width\)"),
        ({"preprocessing": {"mean": [0, 0, 0], "std": [1, 0, 1]}}, RECORD + r".*std\[1\]"),
        ({"colours": 3}, RECORD + r"unknown UNet config key\(s\) \['colours'\]"),
        (
            {"depth": 10**6},
            r"config\.json: invalid model record: depth=1000000 is over the limit of 12",
        ),
        (
            {"encoder": "nope", "init_features": 32, "depth": 4},
            r"config\.json: field 'model' cannot be built: .*'nope'",
        ),
    ],
)
def test_malformed_records_are_named(tmp_path: Path, model: dict[str, Any], match: str) -> None:
    folder = _folder(tmp_path)
    _edit(folder, record=model)
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(folder)


def test_huge_and_deep_json_is_refused_fast(tmp_path: Path) -> None:
    import time

    folder = _folder(tmp_path)
    start = time.perf_counter()
    (folder / "config.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(CheckpointError, match="over the limit of 1048576 bytes"):
        load_pretrained(folder)
    (folder / "config.json").write_bytes(b"[" * 500_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_pretrained(folder)
    (folder / "config.json").write_bytes(b'{"format": ' + b"[" * 40 + b"]" * 40 + b"}")
    with pytest.raises(CheckpointError, match="nested more than 32 levels"):
        load_pretrained(folder)
    (folder / "config.json").write_bytes(b'{"a": 1, "a": 2}')
    with pytest.raises(CheckpointError, match="appears twice"):
        load_pretrained(folder)
    (folder / "config.json").write_bytes(b'{"a": NaN}')
    with pytest.raises(CheckpointError, match="not a finite number"):
        load_pretrained(folder)
    (folder / "config.json").write_bytes(b'{"a": ' + b"9" * 5000 + b"}")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pretrained(folder)
    assert time.perf_counter() - start < 2.0


def test_hostile_safetensors_header_is_refused_before_reading(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="header claims 1099511627776 bytes"):
        load_pretrained(folder)
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6], "data_offsets": [0, 4]}})
    weights.write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\0" * 4)
    with pytest.raises(CheckpointError, match="data offsets"):
        load_pretrained(folder)
    weights.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_pretrained(folder)


def test_integer_weights_where_floats_belong(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = _folder(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(torch.int32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"tensor '{name}' is I32"):
        load_pretrained(folder)


def test_missing_safetensors_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(OptionalDependencyError, match=r"catseg\[safetensors\]"):
        save_pretrained(tmp_path / "m", UNet(3, 1, init_features=4, depth=2))
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------ the hub
def _hub_cache(tmp_path: Path, folder: Path, repo: str = "catlab/cat-unet") -> Path:
    """A folder laid out like huggingface_hub's cache, holding ``folder`` as main's snapshot."""
    cache = tmp_path / "hub-cache"
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    blobs = root / "blobs"
    blobs.mkdir()
    for file in folder.iterdir():
        blob = blobs / f"blob-{file.name}"
        blob.write_bytes(file.read_bytes())
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return cache


def test_repo_id_loads_from_the_hub_cache_offline(
    trained: tuple[UNet, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, photos = trained
    seg = Segmenter(model, classes=CLASSES, image_size=(64, 64), precision="fp32")
    cache = _hub_cache(tmp_path, seg.save_pretrained(tmp_path / "upload"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the environment then
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # "catlab/cat-unet" is not a local path here
    again = Segmenter.from_pretrained("catlab/cat-unet", cache_dir=cache, precision="fp32")
    assert again.classes == CLASSES
    assert "snapshots" in str(load_pretrained("catlab/cat-unet", cache_dir=cache).folder)
    for a, b in zip(seg.predict_batch(photos), again.predict_batch(photos), strict=True):
        assert torch.equal(a.mask, b.mask)
    with pytest.raises(CheckpointError, match="cannot get the model 'catlab/other'"):
        load_pretrained("catlab/other", cache_dir=cache)


def test_existing_local_path_wins_over_repo_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "catlab" / "cat-unet"
    save_pretrained(local, UNet(3, 1, init_features=4, depth=2).describe(classes=["bg", "local"]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # the hub is never asked
    assert load_pretrained("catlab/cat-unet").model.config.classes == ("bg", "local")


def test_missing_hub_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionalDependencyError, match=r"catseg\[hub\]"):
        load_pretrained("catlab/cat-unet")
    segmenter = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=CLASSES)
    with pytest.raises(OptionalDependencyError, match=r"catseg\[hub\]"):
        segmenter.push_to_hub("catlab/cat-unet")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_missing_optional_libraries_give_the_whole_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    net = UNet(3, 1, init_features=4, depth=2).describe(classes=CLASSES)
    for call in (lambda: save_pretrained(tmp_path / "new", net), lambda: load_pretrained(folder)):
        with pytest.raises(OptionalDependencyError) as safetensors_err:
            call()
        assert str(safetensors_err.value) == (
            "'safetensors.torch' is needed for this feature but is not installed; "
            'install it with: pip install "catseg[safetensors]"'
        )
        assert isinstance(safetensors_err.value.__cause__, ImportError)
    assert not (tmp_path / "new").exists()


@dataclasses.dataclass
class _Add:  # huggingface_hub.CommitOperationAdd's fields that push_to_hub uses
    path_in_repo: str
    path_or_fileobj: bytes


def test_push_to_hub_uploads_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path)
    calls: list[tuple[str, dict[str, Any]]] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, **kwargs: Any) -> None:
            calls.append(("create_repo", kwargs))

        def create_commit(self, **kwargs: Any) -> Any:
            calls.append(("create_commit", kwargs))
            return types.SimpleNamespace(commit_url="https://hub/commit/1")

    fake = types.SimpleNamespace(HfApi=FakeApi, CommitOperationAdd=_Add)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    url = push_to_hub(folder, "catlab/cat-unet", token="t", private=True)
    assert url == "https://hub/commit/1"
    assert calls[0] == ("init", {"token": "t"})
    assert calls[1][1] == {
        "repo_id": "catlab/cat-unet",
        "repo_type": "model",
        "private": True,
        "exist_ok": True,
    }
    upload = calls[2][1]
    sent = {op.path_in_repo: op.path_or_fileobj for op in upload["operations"]}
    assert sent == {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    assert sorted(sent) == ["README.md", "config.json", "model.safetensors"]
    with pytest.raises(ConfigError, match="repo_id must look like 'user/name'"):
        push_to_hub(folder, "not a repo")
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingFileError, match=r"model\.safetensors"):
        push_to_hub(folder, "catlab/cat-unet")
    assert len(calls) == 3


@pytest.mark.parametrize("where", ["create_repo", "create_commit"])
def test_push_to_hub_wraps_the_hubs_errors_and_chains_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Offline, without a token or refused: a CheckpointError, the hub's error its cause."""
    from huggingface_hub.errors import HfHubHTTPError

    httpx = sys.modules[HfHubHTTPError.__mro__[1].__module__]  # httpx (or the hub's fork)
    error = httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            pass

        def create_repo(self, **kwargs: Any) -> None:
            if where == "create_repo":
                raise error

        def create_commit(self, **kwargs: Any) -> Any:
            raise error

    hub = types.SimpleNamespace(HfApi=FakeApi, CommitOperationAdd=_Add)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    folder = _folder(tmp_path)
    with pytest.raises(CheckpointError, match="on the Hugging Face Hub: ConnectError") as info:
        push_to_hub(folder, "catlab/cat-unet")
    assert info.value.__cause__ is error
    seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=CLASSES)
    with pytest.raises(CheckpointError, match="ConnectError: \\[Errno -3\\]") as info:
        seg.push_to_hub("catlab/cat-unet")
    assert info.value.__cause__ is error


def test_segmenter_push_to_hub_uploads_a_saved_folder(
    trained: tuple[UNet, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The method saves into a temporary folder, uploads it through the hub, removes it."""
    model, photos = trained
    seg = Segmenter(model, classes=CLASSES, image_size=(64, 64))
    seen: dict[str, Any] = {}

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            seen["token"] = token

        def create_repo(self, **kwargs: Any) -> None:
            seen["create_repo"] = kwargs

        def create_commit(self, **kwargs: Any) -> Any:
            folder = tmp_path / "uploaded"
            folder.mkdir()
            for op in kwargs["operations"]:
                (folder / op.path_in_repo).write_bytes(op.path_or_fileobj)
            seen["upload"] = kwargs
            seen["files"] = sorted(p.name for p in folder.iterdir())
            seen["config"] = json.loads((folder / "config.json").read_text())
            seen["card"] = (folder / "README.md").read_text()
            again = Segmenter.from_pretrained(folder, precision="fp32")
            seen["masks"] = [again.predict(p).mask for p in photos]
            return types.SimpleNamespace(commit_url="https://hub/commit/2")

    hub = types.SimpleNamespace(HfApi=FakeApi, CommitOperationAdd=_Add)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    checked = _remote._checked_files

    def checked_files(folder: Path) -> dict[str, bytes]:
        seen["saved"] = folder
        return checked(folder)

    monkeypatch.setattr(_remote, "_checked_files", checked_files)
    url = seg.push_to_hub(
        "catlab/cat-unet", token="t", private=False, revision="dev", history=_history()
    )
    assert url == "https://hub/commit/2"
    assert seen["token"] == "t"
    assert seen["create_repo"] == {
        "repo_id": "catlab/cat-unet",
        "repo_type": "model",
        "private": False,
        "exist_ok": True,
    }
    assert seen["upload"]["revision"] == "dev"
    assert seen["upload"]["commit_message"] == "Upload catseg model"
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["config"]["model"]["classes"] == CLASSES
    assert seen["config"]["model"]["image_size"] == [64, 64]
    assert seen["config"]["training"]["epochs"] == 3
    assert "cat" in seen["card"]
    reference = Segmenter(model, classes=CLASSES, image_size=(64, 64), precision="fp32")
    for photo, mask in zip(photos, seen["masks"], strict=True):
        assert torch.equal(mask, reference.predict(photo).mask)
    assert not seen["saved"].exists()  # the temporary folder is gone


def test_segmenter_push_to_hub_needs_the_hub_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=CLASSES)
    saved: list[object] = []
    monkeypatch.setattr(Segmenter, "save_pretrained", lambda *a, **k: saved.append(a))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(OptionalDependencyError, match=r"catseg\[hub\]"):
        seg.push_to_hub("catlab/cat-unet")
    assert saved == []  # nothing was written before the check


def test_nan_miou_history_is_recorded_as_null(tmp_path: Path) -> None:
    history = History(records=(EpochRecord(1, 0.5, math.nan, 1.0, 1.0, 1e-3),))
    folder = save_pretrained(tmp_path / "m", UNet(3, 1, init_features=4, depth=2), history=history)
    assert json.loads((folder / "config.json").read_text())["training"]["best_val_miou"] is None


def test_importing_catseg_and_hub_pulls_in_neither_safetensors_nor_the_hub() -> None:
    import subprocess

    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import catseg, catseg.hub, catseg.predict\n"
        "added = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(added & {'safetensors', 'huggingface_hub'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
