"""The ResNet encoders against torchvision itself: its real state dict loads exactly, the
features equal torchvision's, and ``encoder_weights="torchvision"`` goes through
torchvision's weight enum and cache (pre-filled here: nothing is downloaded).

torchvision's compiled ops do not load beside CI's ``torch==2.13.0+cpu`` wheel, so these
tests run in the second environment described in CONTRIBUTING and are skipped in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

tv_models: Any = pytest.importorskip(
    "torchvision.models",
    reason="torchvision's compiled ops do not load beside CI's torch CPU wheel",
)

from catseg.models import IMAGENET, UNet  # noqa: E402


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_torchvision_state_dict_loads_and_features_match(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(0)
    reference = getattr(tv_models, arch)(weights=None).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)
    model = UNet(3, 1, encoder=arch, encoder_weights=path).eval()
    assert model.preprocessing == IMAGENET
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        stem = reference.relu(reference.bn1(reference.conv1(x)))
        f1 = reference.layer1(reference.maxpool(stem))
        f2 = reference.layer2(f1)
        f3 = reference.layer3(f2)
        f4 = reference.layer4(f3)
        ours = model.encoder(x)
    for a, b in zip(ours, [stem, f1, f2, f3, f4], strict=True):
        assert torch.equal(a, b)


def test_named_source_torchvision_uses_its_cache(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    enum = tv_models.ResNet18_Weights.DEFAULT
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(3)
    state = tv_models.resnet18(weights=None).state_dict()
    torch.save(state, cache / Path(enum.url).name)
    model = UNet(1, 1, encoder="resnet18", encoder_weights="torchvision")
    loaded = model.encoder.state_dict()
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(loaded["layer4.1.bn2.running_var"], state["layer4.1.bn2.running_var"])
    assert model.preprocessing is not None
    assert len(model.preprocessing.mean) == 1
