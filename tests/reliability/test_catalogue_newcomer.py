"""Catalogue rows for issue 27, points 7 and 8 (the stem rule; a newcomer's first hour).

Each row fails on the code before the fix: the stem rule gave a k-channel input of equal
channels another output than RGB for k = 2, 4, 5; ``UNet(encoder_name=..., classes=...)``
raised a bare ``TypeError``; no training transform matched the ``"L"`` conversion a
1-channel model's Segmenter applies; ``to_onnx`` printed four torch notices.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from reliability_builders import (  # noqa: F401  (single_threaded_torch: autouse fixture)
    Row,
    check_rows,
    run_row,
    single_threaded_torch,
)

from catseg.errors import ConfigError
from catseg.models import UNet, adapt_stem_weight


def _stem_difference(channels: int) -> float:
    """Relative difference of the stem outputs: k equal channels vs (g, g, g) in RGB."""
    weight = torch.randn(8, 3, 7, 7, generator=torch.Generator().manual_seed(channels))
    grey = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    rgb = F.conv2d(grey.expand(-1, 3, -1, -1), weight)
    got = F.conv2d(grey.expand(-1, channels, -1, -1), adapt_stem_weight(weight, channels))
    return float((got - rgb).abs().max() / rgb.abs().max())


def _to_gray_vs_pil(_: object) -> int:
    from catseg.data.transforms import ToGray

    pixels = np.random.default_rng(0).integers(0, 256, (17, 31, 3), dtype=np.uint8)
    rgb = Image.fromarray(pixels)
    image = torch.from_numpy(pixels).permute(2, 0, 1)
    grey = torch.from_numpy(np.asarray(rgb.convert("L")).astype(np.int64))
    out, _ = ToGray()(image, torch.zeros(17, 31, dtype=torch.int64))
    return int((out[0].long() - grey).abs().max())


ROWS = [
    *(
        Row(
            f"stem-rule-exact-k{k}",
            lambda _, k=k: _stem_difference(k),
            "equal channels give the RGB output (was 0.68 / 0.41 / 0.27 off for k = 2 / 4 / 5)",
            check=lambda diff: diff < 1e-6,
        )
        for k in range(1, 7)
    ),
    Row(
        "unet-smp-keywords",
        lambda _: UNet(encoder_name="resnet34", classes=3),
        "ConfigError naming encoder= and num_classes= (was: bare TypeError)",
        ConfigError,
        r"encoder_name: catseg says encoder=; classes: catseg says num_classes=",
    ),
    Row(
        "unet-smp-imagenet-weights",
        lambda _: UNet(encoder="resnet18", encoder_weights="imagenet"),
        "ConfigError naming the sources (was: MissingFileError about a file)",
        ConfigError,
        r"encoder_weights='imagenet': catseg says encoder_weights=\"torchvision\" or \"timm\"",
    ),
    Row(
        "unet-smp-output-activation",
        lambda _: UNet(activation="sigmoid"),  # type: ignore[arg-type]
        "ConfigError saying models return logits",
        ConfigError,
        r"activation='sigmoid': catseg says no output activation: models return logits",
    ),
    Row(
        "to-gray-equals-pil-L",
        _to_gray_vs_pil,
        "the training transform equals the Segmenter's PIL 'L' conversion (was: none)",
        check=lambda diff: diff <= 1,
    ),
]


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_catalogue_newcomer(row: Row) -> None:
    run_row(row, None)


def test_to_onnx_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    from catseg.export import to_onnx

    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        to_onnx(UNet(3, 1, init_features=4, depth=2), tmp_path / "m.onnx")
    # torch's own handler may write to pytest's capture rather than to fd 2: check both
    shown = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    out, err = capfd.readouterr()
    assert (shown, out, err) == ([], "", ""), f"to_onnx printed: {shown[:2]} {(out + err)[:300]}"
