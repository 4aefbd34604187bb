"""Encoder registry and entry-point plugins, discovered through real importlib.metadata.

Plugins are "installed" by writing a ``<dist>-<version>.dist-info`` folder (METADATA +
entry_points.txt, exactly what pip writes) and the plugin module into a temporary folder
that is put on ``sys.path``; discovery itself is not mocked.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from catseg.errors import ConfigError, EncoderError
from catseg.models import Registry, UNet, get_encoder, list_encoders, register_encoder
from catseg.models.encoders.resnet import ResNetEncoder, resnet18, resnet34

ENTRY_POINT_GROUP = "catseg.encoders"

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom_encoder_plugin"

TINY_MODULE = """
from torch import nn

class Tiny(nn.Module):
    out_channels = (4, 8)
    reductions = (2, 4)

    def __init__(self, in_channels):
        super().__init__()
        self.a = nn.Conv2d(in_channels, 4, 2, stride=2)
        self.b = nn.Conv2d(4, 8, 2, stride=2)

    def forward(self, x):
        x = self.a(x)
        return [x, self.b(x)]

def factory(*, in_channels=3, pretrained=False):
    return Tiny(in_channels)

NOT_CALLABLE = 42
"""


def write_dist(
    site: Path,
    dist: str,
    entry_points: dict[str, str],
    modules: dict[str, str] | None = None,
    version: str = "0.1",
) -> None:
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, source in (modules or {}).items():
        site.joinpath(f"{name}.py").write_text(source, encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))  # also invalidates import caches
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("catseg_plugin_", "catseg_tiny_encoder")):
            del sys.modules[name]


# ------------------------------------------------------------------------ plain registry


def test_fresh_registry_register_get_and_duplicates() -> None:
    registry = Registry(entry_point_group=None)
    assert registry.names() == []

    @registry.register("mine")
    def mine(*, in_channels: int = 3, pretrained: bool = False) -> ResNetEncoder:
        return resnet18(in_channels=in_channels)

    assert registry.names() == ["mine"]
    assert "mine" in registry
    assert registry.get("mine", in_channels=1).conv1.in_channels == 1  # type: ignore[attr-defined]
    with pytest.raises(EncoderError, match=r"encoder 'mine' is already registered"):
        registry.register("mine")(resnet18)
    # the process-wide registry is untouched
    assert "mine" not in list_encoders()


@pytest.mark.parametrize("name", ["", " x", "a b", 3, "a:b", "a::", ":"])
def test_invalid_names(name: object) -> None:
    with pytest.raises(EncoderError, match=r"encoder name must be a non-empty word"):
        Registry(entry_point_group=None).register(name)  # type: ignore[arg-type]


def test_factory_must_be_callable() -> None:
    with pytest.raises(EncoderError, match=r"encoder 'x' must be a callable, got 3"):
        Registry(entry_point_group=None).register("x")(3)  # type: ignore[type-var]


def test_bad_group_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"entry_point_group must be a str or None, got 3"):
        Registry(entry_point_group=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"options must be a mapping .*, got \[\('depth', 2\)\]"):
        get_encoder("unet", options=[("depth", 2)])  # type: ignore[arg-type]


def test_did_you_mean_and_no_hint() -> None:
    registry = Registry(entry_point_group=None)
    registry.register("resnet18")(resnet18)
    registry.register("resnet34")(resnet34)
    registry.register("tv:")({"r18": resnet18}.__getitem__)
    with pytest.raises(
        EncoderError, match=r"unknown encoder 'resnet43'; did you mean 'resnet34'\?"
    ):
        registry.get("resnet43")
    with pytest.raises(
        EncoderError,
        match=r"unknown encoder 'zzz'; available: \['resnet18', 'resnet34'\]; "
        r"families: \['tv:<name>'\]$",
    ):
        registry.get("zzz")


def test_global_register_encoder_duplicate_of_builtin_raises() -> None:
    with pytest.raises(EncoderError, match=r"'unet' is already registered"):
        register_encoder("unet")(resnet18)


def test_factory_failures_are_wrapped() -> None:
    registry = Registry(entry_point_group=None)
    registry.register("broken")(lambda *, in_channels=3: resnet18(in_channels=in_channels[0]))
    registry.register("not_module")(lambda *, in_channels=3: object())
    with pytest.raises(EncoderError, match=r"factory 'broken' .* failed .*\(TypeError"):
        registry.get("broken")
    with pytest.raises(EncoderError, match=r"must be a torch.nn.Module"):
        registry.get("not_module")


def test_family_resolver() -> None:
    registry = Registry(entry_point_group=None)
    registry.register("tv:")({"r18": resnet18}.__getitem__)
    assert registry.names() == []
    assert registry.names(families=True) == ["tv:"]
    assert registry.get("tv:r18", in_channels=2).conv1.in_channels == 2  # type: ignore[attr-defined]
    with pytest.raises(EncoderError, match=r"family 'tv' cannot resolve 'r99' \(KeyError"):
        registry.get("tv:r99")
    with pytest.raises(EncoderError, match=r"'tv:' names no member of family 'tv'"):
        registry.get("tv:")
    with pytest.raises(EncoderError, match=r"already registered"):
        registry.register("tv:")(resnet18)
    registry.register("bad:")(lambda member: 3)
    with pytest.raises(EncoderError, match=r"family 'bad' returned 3 for 'x'"):
        registry.get("bad:x")
    with pytest.raises(EncoderError, match=r"unknown encoder 'other:r18'; available: \[\]"):
        registry.get("other:r18")


def test_get_encoder_builds_fresh_instances() -> None:
    a, b = get_encoder("resnet18"), get_encoder("resnet18")
    assert a is not b
    assert isinstance(a, nn.Module)


# ------------------------------------------------------------------ entry-point plugins


def test_plugin_is_discovered_lazily(site: Path) -> None:
    write_dist(
        site,
        "catseg-plugin-tiny",
        {"tiny2": "catseg_plugin_tiny:factory"},
        {"catseg_plugin_tiny": TINY_MODULE},
    )
    registry = Registry()
    assert "tiny2" in registry.names()
    assert "catseg_plugin_tiny" not in sys.modules  # listed, not imported
    encoder = registry.get("tiny2", in_channels=2)
    assert "catseg_plugin_tiny" in sys.modules
    assert tuple(encoder.out_channels) == (4, 8)


def test_entry_points_are_read_once(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dist(
        site,
        "catseg-plugin-once",
        {"once": "catseg_plugin_once:factory"},
        {"catseg_plugin_once": TINY_MODULE},
    )
    reads: list[str | None] = []
    real = importlib.metadata.entry_points

    def counting(**kwargs: str) -> object:
        reads.append(kwargs.get("group"))
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    registry = Registry()
    registry.register("mine")(resnet18)
    assert reads == []  # registering reads nothing (catseg's built-ins register at import)
    registry.get("mine")  # the first lookup reads them, to warn about a shadowed plugin
    assert reads == [ENTRY_POINT_GROUP]
    for _ in range(3):
        assert "once" in registry
        assert "absent" not in registry
        registry.get("once")
    with pytest.raises(EncoderError, match=r"unknown encoder 'absent'"):
        registry.get("absent")
    assert reads == [ENTRY_POINT_GROUP]


def test_broken_plugin_fails_only_when_asked_for(site: Path) -> None:
    write_dist(
        site,
        "catseg-broken-plugin",
        {"broken": "catseg_plugin_broken:factory"},
        {"catseg_plugin_broken": "raise RuntimeError('boom at import')\n"},
        version="2.3",
    )
    registry = Registry()
    registry.register("resnet18")(resnet18)
    assert "broken" in registry.names()
    registry.get("resnet18")  # other encoders are unaffected
    expected = (
        r"encoder plugin 'broken' failed to load from entry point "
        r"'broken = catseg_plugin_broken:factory' \(group 'catseg.encoders', "
        r"distribution catseg-broken-plugin 2.3\) \(RuntimeError: boom at import\)"
    )
    with pytest.raises(EncoderError, match=expected):
        registry.get("broken")


def test_broken_plugin_through_unet(site: Path, fresh_global: Registry) -> None:
    write_dist(
        site,
        "catseg-broken-plugin",
        {"broken": "catseg_plugin_broken:factory"},
        {"catseg_plugin_broken": "raise RuntimeError('boom at import')\n"},
        version="2.3",
    )
    UNet(encoder="resnet18")
    with pytest.raises(EncoderError, match=r"distribution catseg-broken-plugin 2.3"):
        UNet(encoder="broken")


def test_plugin_cannot_shadow_a_builtin(site: Path) -> None:
    write_dist(
        site,
        "catseg-plugin-evil",
        {"resnet18": "catseg_plugin_evil:factory"},
        {"catseg_plugin_evil": "raise RuntimeError('must never be imported')\n"},
    )
    registry = Registry()
    registry.register("resnet18")(resnet18)
    with pytest.warns(UserWarning, match=r"catseg-plugin-evil 0.1\) is not used") as caught:
        assert registry.names().count("resnet18") == 1
    assert len(caught) == 1
    assert isinstance(registry.get("resnet18"), ResNetEncoder)
    assert "catseg_plugin_evil" not in sys.modules


def test_plugin_name_claimed_twice(site: Path) -> None:
    write_dist(site, "catseg-plugin-one", {"twin": "catseg_plugin_one:factory"})
    write_dist(site, "catseg-plugin-two", {"twin": "catseg_plugin_two:factory"})
    with pytest.raises(
        EncoderError,
        match=r"'twin' is claimed by several plugins: .*"
        r"catseg-plugin-(one|two).*catseg-plugin-(one|two)",
    ):
        Registry().get("twin")


def test_plugin_object_not_callable(site: Path) -> None:
    write_dist(
        site,
        "catseg-plugin-nc",
        {"nc": "catseg_plugin_nc:NOT_CALLABLE"},
        {"catseg_plugin_nc": TINY_MODULE},
    )
    with pytest.raises(
        EncoderError,
        match=r"'nc' from entry point 'nc = catseg_plugin_nc:"
        r"NOT_CALLABLE' .* is not callable: 42",
    ):
        Registry().get("nc")


def test_discovery_disabled(site: Path) -> None:
    write_dist(
        site,
        "catseg-plugin-off",
        {"off": "catseg_plugin_off:factory"},
        {"catseg_plugin_off": TINY_MODULE},
    )
    registry = Registry(entry_point_group=None)
    assert registry.names() == []
    with pytest.raises(EncoderError, match=r"unknown encoder 'off'"):
        registry.get("off")


# ------------------------------------------------------ examples/custom_encoder_plugin


def example_entry_points() -> dict[str, str]:
    """The [project.entry-points."catseg.encoders"] table of the example's pyproject."""
    text = EXAMPLE.joinpath("pyproject.toml").read_text(encoding="utf-8")
    section = text.split(f'[project.entry-points."{ENTRY_POINT_GROUP}"]', 1)[1]
    section = section.split("\n[", 1)[0]
    return dict(re.findall(r'^(\w+)\s*=\s*"([^"]+)"', section, flags=re.MULTILINE))


def check_example_model() -> None:
    from catseg_tiny_encoder import TinyEncoder  # type: ignore[import-not-found]

    assert "tiny" in list_encoders()
    model = UNet(3, 2, encoder="tiny").eval()
    assert isinstance(model.encoder, TinyEncoder)
    assert model.config.to_dict()["encoder"] == "tiny"  # rebuildable by name
    with torch.no_grad():
        out: Tensor = model(torch.rand(1, 3, 45, 61))
    assert out.shape == (1, 2, 45, 61)


def test_example_plugin_via_dist_info(
    site: Path, monkeypatch: pytest.MonkeyPatch, fresh_global: Registry
) -> None:
    assert example_entry_points() == {"tiny": "catseg_tiny_encoder:tiny_encoder"}
    write_dist(site, "catseg-tiny-encoder", example_entry_points())
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    check_example_model()


@pytest.mark.slow
def test_example_plugin_via_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_global: Registry
) -> None:
    pytest.importorskip("hatchling", reason="pip needs the example's build backend offline")
    target = tmp_path / "target"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(EXAMPLE),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert (target / "catseg_tiny_encoder-0.1.0.dist-info" / "entry_points.txt").is_file()
    monkeypatch.syspath_prepend(str(target))
    try:
        check_example_model()
    finally:
        sys.modules.pop("catseg_tiny_encoder", None)
