"""timm backbones through the ``"timm:"`` entry point (extra ``catseg[timm]``).

timm needs torchvision, whose compiled ops do not load beside CI's ``torch==2.13.0+cpu``
wheel, so these tests run in the second environment described in CONTRIBUTING
(``docs/contributing.md``) and are skipped in CI. Nothing is downloaded: weights are
random (``pretrained=False``) or written to a local file by the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

timm: Any = pytest.importorskip(
    "timm", reason="timm needs torchvision, which does not load beside CI's torch CPU wheel"
)
safetensors_torch: Any = pytest.importorskip(
    "safetensors.torch", reason="installed with timm (catseg[timm])"
)

from catseg.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from catseg.errors import CheckpointError, ConfigError, EncoderError  # noqa: E402
from catseg.export import OnnxRunner, to_onnx  # noqa: E402
from catseg.models import Preprocessing, UNet, list_encoders  # noqa: E402
from catseg.models.encoders import Registry  # noqa: E402

MODELS = ["resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_100"]
SIZES = [(64, 64), (45, 77), (97, 50)]


def _classifier_file(tmp_path: Path, name: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    full = timm.create_model(name, pretrained=False)
    path = tmp_path / f"{name}.safetensors"
    safetensors_torch.save_file(full.state_dict(), str(path))
    return path


def test_family_is_discovered_through_the_entry_point() -> None:
    assert "timm:" in list_encoders(families=True)
    assert all(":" not in name for name in list_encoders())
    fresh = Registry()  # nothing registered in-process: only the entry point serves it
    encoder = fresh.get("timm:resnet18", in_channels=2)
    assert encoder.out_channels == (64, 64, 128, 256, 512)
    with pytest.raises(EncoderError, match=r"timm has no model 'resnet_18'"):
        fresh.get("timm:resnet_18")
    with pytest.raises(ConfigError, match=r"accepted options: \['drop_path_rate', 'out_indices'\]"):
        fresh.get("timm:resnet18", options={"out_index": [1]})


@pytest.mark.parametrize("name", MODELS)
def test_unet_with_timm_backbone_any_size_matches_timm_features(name: str) -> None:
    torch.manual_seed(0)
    model = UNet(3, 2, encoder=f"timm:{name}").eval()
    cfg = timm.create_model(name, pretrained=False).pretrained_cfg
    assert model.encoder.weights_preprocessing == Preprocessing(cfg["mean"], cfg["std"])
    assert model.preprocessing is None  # random init records nothing
    reference = timm.create_model(name, features_only=True, pretrained=False).eval()
    reference.load_state_dict(
        {k.removeprefix("body."): v for k, v in model.encoder.state_dict().items()}
    )
    for height, width in SIZES:
        x = torch.rand(2, 3, height, width)
        with torch.no_grad():
            out = model(x)
            assert out.shape == (2, 2, height, width)
            assert torch.isfinite(out).all()
            padded = torch.nn.functional.pad(x, (0, (-width) % 32, 0, (-height) % 32))
            ours = model.encoder(padded)
            theirs = reference(padded)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_weights_file_checkpoint_round_trip_and_onnx(tmp_path: Path, name: str) -> None:
    path = _classifier_file(tmp_path, name)
    model = UNet(3, 1, encoder=f"timm:{name}", encoder_weights=path).eval()
    # timm's own loading of the same file gives the same feature extractor, tensor by tensor
    reference = timm.create_model(
        name, features_only=True, pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    ours = model.encoder.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours["body." + key], value), key
    cfg = reference.pretrained_cfg
    assert model.preprocessing == Preprocessing(tuple(cfg["mean"]), tuple(cfg["std"]))

    ckpt = save_checkpoint(tmp_path / "m.pt", model.describe(classes=["bg", "fg"]))
    rebuilt = load_checkpoint(ckpt).build_model()
    assert rebuilt.config == model.config
    x = torch.rand(1, 3, 45, 77)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))

    onnx_path = to_onnx(model, tmp_path / "m.onnx")  # verifies parity itself (<= 1e-4)
    runner = OnnxRunner(onnx_path)
    assert runner.config.preprocessing == model.preprocessing
    with torch.no_grad():
        expected = model(x)
    assert (runner(x) - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max())


def test_stem_rule_for_timm_one_channel(tmp_path: Path) -> None:
    path = _classifier_file(tmp_path, "efficientnet_b0")
    rgb = UNet(3, 1, encoder="timm:efficientnet_b0", encoder_weights=path).eval()
    grey = UNet(1, 1, encoder="timm:efficientnet_b0", encoder_weights=path).eval()
    stem = rgb.encoder.stem_weight
    assert stem == "body.conv_stem.weight"
    x = torch.rand(2, 1, 32, 48)
    w3 = rgb.encoder.state_dict()[stem]
    w1 = grey.encoder.state_dict()[stem]
    assert torch.allclose(w1, w3.sum(dim=1, keepdim=True))
    with torch.no_grad():
        a = grey.encoder(x)[0]
        b = rgb.encoder(x.expand(-1, 3, -1, -1))[0]
    assert torch.allclose(a, b, atol=1e-5)
    assert len(grey.preprocessing.mean) == 1  # type: ignore[union-attr]


def test_options_round_trip_and_wrong_file(tmp_path: Path) -> None:
    model = UNet(3, 1, encoder="timm:resnet18", encoder_options={"out_indices": [1, 2, 3]})
    assert model.encoder.reductions == (4, 8, 16)
    assert UNet.from_config(model.config.to_dict()).encoder.reductions == (4, 8, 16)
    wrong = _classifier_file(tmp_path, "resnet18")
    with pytest.raises(
        CheckpointError, match=r"resnet18.safetensors \(timm model 'convnext_atto'\)"
    ):
        UNet(encoder="timm:convnext_atto", encoder_weights=wrong)
