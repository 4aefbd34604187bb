"""Backbone plugins people can trust (issue #30), with throwaway plugin distributions.

Each plugin is "installed" as in ``test_models_registry``: a ``<dist>-<version>.dist-info``
folder with ``entry_points.txt`` and the module, in a temporary folder on ``sys.path``;
``importlib.metadata`` discovers it for real. "Uninstalling" takes the folder off
``sys.path``, forgets the module and gives ``UNet`` a fresh registry.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from test_models_registry import site, write_dist  # noqa: F401  (site: a fixture)

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.errors import CheckpointError, ConfigError, EncoderError
from catseg.hub import save_pretrained
from catseg.models import Registry, UNet, list_encoders, register_encoder
from catseg.models.encoders import ClassicEncoder, resnet18
from catseg.models.encoders import registry as registry_module
from catseg.predict import Segmenter

DIST = "catseg-plugin-tv"
MODULE = "catseg_plugin_tv"

# A ConvNeXt-like toy: option `blocks` (default BLOCKS) and EXTRA hard-coded layers.
PLUGIN = """
from torch import nn

class Net(nn.Module):
    def __init__(self, in_channels, width, blocks):
        super().__init__()
        self.out_channels = (width, 2 * width)
        self.reductions = (2, 4)
        self.stem = nn.Conv2d(in_channels, width, 2, stride=2)
        layers = [nn.Conv2d(width, width, 3, padding=1) for _ in range(blocks + EXTRA)]
        self.stage = nn.Sequential(*layers)
        self.down = nn.Conv2d(width, 2 * width, 2, stride=2)

    def forward(self, x):
        x = self.stage(self.stem(x))
        return [x, self.down(x)]

def factory(*, in_channels=3, width=4, blocks=BLOCKS):
    return Net(in_channels, width, blocks)

def with_kwargs(*, in_channels=3, **options):
    return Net(in_channels, 4, 1)
"""


def install(folder: Path, version: str, *, blocks: int = 1, extra: int = 0) -> Path:
    """Put plugin ``version`` (its own site folder) first on ``sys.path``; forget the old one."""
    source = PLUGIN.replace("BLOCKS", str(blocks)).replace("EXTRA", str(extra))
    write_dist(folder, DIST, {"tv": f"{MODULE}:factory"}, {MODULE: source}, version=version)
    sys.path.insert(0, str(folder))
    uninstall(None)
    return folder


def uninstall(folder: Path | None) -> None:
    if folder is not None:
        sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)
    importlib.invalidate_caches()
    fresh = Registry()  # a new process: entry points not read yet, nothing loaded
    fresh.register("unet")(ClassicEncoder)
    fresh.register("resnet18")(resnet18)
    registry_module._REGISTRY = fresh


@pytest.fixture
def plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """catseg-plugin-tv 1.0 installed; ``sys.path`` and the registry restored after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(registry_module, "_REGISTRY", registry_module._REGISTRY)
    return install(site / "v1", "1.0")


def tiny_model() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 2, encoder="tv", encoder_options={"width": 8}).eval()


# ---------------------------------------------------------------------------- the record


def test_record_holds_distribution_version_and_resolved_options(
    plugin: Path, tmp_path: Path
) -> None:
    model = tiny_model()
    assert model.config.encoder_package == "catseg-plugin-tv==1.0"
    # every option, the default `blocks` included, in the signature's order
    assert model.config.to_dict()["encoder_options"] == {"width": 8, "blocks": 1}
    assert len(model.encoder.stage) == 1  # type: ignore[arg-type]
    assert list_encoders(sources=True) == {
        "resnet18": "catseg",
        "tv": "catseg-plugin-tv 1.0",
        "unet": "catseg",
    }
    # the same record in a checkpoint and in a model folder (config.json and card)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "tv.pt", model))
    assert ckpt.config == model.config
    save_pretrained(tmp_path / "folder", model)
    assert Segmenter.from_pretrained(tmp_path / "folder").model.config == model.config
    card = (tmp_path / "folder" / "README.md").read_text(encoding="utf-8")
    assert "Its encoder is a plugin: `pip install catseg-plugin-tv==1.0` first." in card


def test_builtins_record_no_package_and_only_declared_options() -> None:
    config = UNet(encoder="resnet18").config
    assert (config.encoder_options, config.encoder_package) == ({}, None)
    # the classic encoder's options are its config fields: nothing is duplicated
    assert UNet(init_features=4, depth=2).config.encoder_options == {}


def test_a_bad_package_record_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"encoder_package must be 'dist==version' or None, got 'x; rm -rf /'"
    ):
        UNet.from_config({"encoder": "resnet18", "encoder_package": "x; rm -rf /"})


def test_saved_with_the_plugin_loaded_without_it(plugin: Path, tmp_path: Path) -> None:
    model = tiny_model()
    ckpt = save_checkpoint(tmp_path / "tv.pt", model)
    save_pretrained(tmp_path / "folder", model)
    uninstall(plugin)
    loaders = [
        lambda: Segmenter.from_checkpoint(ckpt),
        lambda: Segmenter.from_pretrained(tmp_path / "folder"),
        lambda: UNet.from_config(model.config),
    ]
    for load in loaders:
        with pytest.raises((CheckpointError, EncoderError)) as caught:
            load()
        message = str(caught.value)
        assert "unknown encoder 'tv'" in message
        assert message.endswith(
            "the model was saved with catseg-plugin-tv==1.0: pip install catseg-plugin-tv==1.0"
        )
        assert "by this catseg" not in message
        if importlib.util.find_spec("timm") is None:
            assert "timm:" not in message


def test_changed_default_is_shielded_by_the_record(plugin: Path, tmp_path: Path) -> None:
    model = tiny_model()
    path = save_checkpoint(tmp_path / "tv.pt", model)
    uninstall(plugin)
    install(tmp_path / "v2", "2.0", blocks=2)  # v2: one more block by default
    assert len(UNet(encoder="tv").encoder.stage) == 2  # type: ignore[arg-type]
    mismatch = r"plugin version mismatch: encoder 'tv' was saved with catseg-plugin-tv==1\.0, "
    with pytest.warns(UserWarning, match=mismatch + r"this environment has catseg-plugin-tv==2\.0"):
        Segmenter.from_checkpoint(path)
    with pytest.warns(UserWarning, match=mismatch):
        loaded = load_checkpoint(path).build_model()
    assert len(loaded.encoder.stage) == 1  # type: ignore[arg-type]
    assert loaded.config.encoder_package == "catseg-plugin-tv==2.0"  # what built it here
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_changed_architecture_is_a_plugin_version_mismatch(plugin: Path, tmp_path: Path) -> None:
    model = tiny_model()
    ckpt = save_checkpoint(tmp_path / "tv.pt", model)
    save_pretrained(tmp_path / "folder", model)
    uninstall(plugin)
    install(tmp_path / "v2", "2.0", extra=1)  # v2: a layer more, not an option
    note = (
        r"\(plugin version mismatch: encoder 'tv' was saved with catseg-plugin-tv==1\.0, "
        r"this environment has catseg-plugin-tv==2\.0; pip install catseg-plugin-tv==1\.0\) "
        r"do not match the model config: 2 missing \(first: encoder\.stage\.1\.weight"
    )
    for load in (
        lambda: Segmenter.from_checkpoint(ckpt),
        lambda: Segmenter.from_pretrained(tmp_path / "folder"),
    ):
        with (
            pytest.warns(UserWarning, match="plugin version mismatch"),
            pytest.raises(CheckpointError, match=note),
        ):
            load()


# ----------------------------------------------------------- the contract, at construction

BROKEN = """
import torch
from torch import nn

class Broken(nn.Module):
    def __init__(self, in_channels, declared=(4, 8), reductions=(2, 4), out=list, width=8):
        super().__init__()
        self.out_channels, self.reductions, self.out = declared, reductions, out
        self.a = nn.Conv2d(in_channels, 4, 2, stride=2)
        self.b = nn.Conv2d(4, width, 2, stride=2)

    def forward(self, x):
        x = self.a(x)
        return self.out([x, self.b(x)])

def ignores_in_channels(*, in_channels=3):
    return Broken(3)

def wrong_out_channels(*, in_channels=3):
    return Broken(in_channels, declared=(4, 9))

def wrong_reductions(*, in_channels=3):
    return Broken(in_channels, reductions=(2, 8))

def returns_tuple(*, in_channels=3):
    return Broken(in_channels, out=tuple)

def returns_tensor(*, in_channels=3):
    return Broken(in_channels, out=lambda maps: maps[-1])
"""


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ignores_in_channels", r"failed on a dummy input of shape \(1, 1, 4, 4\): RuntimeError"),
        ("wrong_out_channels", r"feature map 1 has 8 channels, expected 9"),
        ("wrong_reductions", r"feature map 1 has shape \(1, 8, 2, 2\) for a 8x8 input, "),
        ("returns_tuple", r"forward must return a list of tensors, got <class 'tuple'>"),
        ("returns_tensor", r"forward must return a list of tensors, got <class '.*Tensor'>"),
    ],
)
def test_broken_contract_fails_at_construction(
    site: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    problem: str,
) -> None:
    write_dist(
        site,
        "catseg-plugin-broken",
        {name: f"catseg_plugin_broken:{name}"},
        {"catseg_plugin_broken": BROKEN},
        version="3.1",
    )
    monkeypatch.setattr(registry_module, "_REGISTRY", Registry())
    match = rf"encoder '{name}' from catseg-plugin-broken==3\.1 breaks the contract: .*{problem}"
    with pytest.raises(EncoderError, match=match):
        UNet(1, 2, encoder=name)


def test_contract_check_leaves_no_trace() -> None:
    model = UNet(encoder="resnet18")  # checked by one forward, in eval mode, without grad
    assert model.training
    assert model.encoder.training
    bn = model.encoder.bn1  # running statistics untouched by the dummy forward
    assert torch.equal(bn.running_mean, torch.zeros(64))
    assert int(bn.num_batches_tracked) == 0
    assert all(p.grad is None for p in model.parameters())
    torch.manual_seed(0)
    a = UNet(init_features=4, depth=2, dropout=0.5).state_dict()
    torch.manual_seed(0)
    b = ClassicEncoder(3, init_features=4, depth=2, dropout=0.5).state_dict()
    assert all(torch.equal(a[f"encoder.{k}"], v) for k, v in b.items())  # no RNG drawn before
    with torch.device("meta"):  # loaders build their reference model on meta: checked there
        assert next(UNet(encoder="unet").parameters()).is_meta


# ------------------------------------------------------------------ shadowing and **kwargs


def test_shadowed_plugin_warns_once_naming_both(
    site: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_dist(
        site,
        "catseg-plugin-shadow",
        {"resnet18": "catseg_plugin_shadow:factory", "tv": "catseg_plugin_shadow:factory"},
        version="0.3",
    )
    registry = Registry()
    registry.register("resnet18")(resnet18)
    monkeypatch.setattr(registry_module, "_REGISTRY", registry)
    by_builtin = (
        r"entry point 'resnet18 = catseg_plugin_shadow:factory' .*catseg-plugin-shadow 0\.3\) "
        r"is not used: 'resnet18' is already the catseg encoder resnet18$"
    )
    with pytest.warns(UserWarning, match=by_builtin) as caught:
        UNet(encoder="resnet18")
    assert len(caught) == 1
    UNet(encoder="resnet18")  # once: pytest turns any further warning into an error

    with pytest.warns(UserWarning, match=r"'tv' is already the runtime encoder .*\.mine") as caught:

        @register_encoder("tv")
        def mine(*, in_channels: int = 3) -> torch.nn.Module:
            return resnet18(in_channels=in_channels)

    assert len(caught) == 1
    assert list_encoders(sources=True)["tv"] == "runtime"
    assert "catseg_plugin_shadow" not in sys.modules


def test_factory_with_kwargs_is_refused(plugin: Path) -> None:
    with pytest.raises(
        EncoderError, match=r"encoder 'loose': factory .* takes \*\*kwargs; declare"
    ):
        Registry(entry_point_group=None).register("loose")(lambda *, in_channels=3, **kw: None)
    write_dist(plugin / "kw", "catseg-plugin-kw", {"kw": f"{MODULE}:with_kwargs"}, version="0.9")
    sys.path.insert(0, str(plugin / "kw"))
    uninstall(None)
    with pytest.raises(
        EncoderError,
        match=r"encoder plugin 'kw' from entry point .*catseg-plugin-kw 0\.9\): factory .* "
        r"takes \*\*kwargs",
    ):
        UNet(encoder="kw")
    registry = Registry(entry_point_group=None)
    registry.register("fam:")(lambda member: lambda *, in_channels=3, **kw: None)
    with pytest.raises(EncoderError, match=r"encoder 'fam:x': factory .* takes \*\*kwargs"):
        registry.get("fam:x")


def test_timm_family_is_not_listed_without_timm(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a)
    )
    registry = Registry(entry_point_group=None)
    registry.register("timm:")(lambda member: resnet18)
    registry.register("tv:")(lambda member: resnet18)
    assert registry.names(families=True) == ["tv:"]
    with pytest.raises(EncoderError, match=r"available: \[\]; families: \['tv:<name>'\]$"):
        registry.get("nope")
