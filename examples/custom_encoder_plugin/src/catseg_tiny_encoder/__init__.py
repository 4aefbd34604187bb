"""A tiny encoder plugin for catseg (the example of docs/guides/extending.md).

It follows catseg's ``Encoder`` protocol without importing anything from catseg:
``out_channels`` and ``reductions`` describe the feature maps ``forward`` returns.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["TinyEncoder", "tiny_encoder"]


class TinyEncoder(nn.Module):
    """Three stages of (strided 3x3 conv, BatchNorm, ReLU) at strides 2, 4 and 8."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int] = (8, 16, 32)) -> None:
        super().__init__()
        self.out_channels: tuple[int, ...] = widths
        self.reductions: tuple[int, ...] = (2, 4, 8)
        stages = []
        previous = in_channels
        for width in widths:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                )
            )
            previous = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def tiny_encoder(*, in_channels: int = 3, widths: list[int] | None = None) -> TinyEncoder:
    """The factory the entry point names: ``(*, in_channels=3, **options) -> Encoder``.

    ``widths`` is an option: ``UNet(encoder="tiny", encoder_options={"widths": [4, 8, 16]})``
    passes it here and records it in the model's config, so checkpoints rebuild it.
    """
    chosen = (8, 16, 32) if widths is None else (widths[0], widths[1], widths[2])
    return TinyEncoder(in_channels, chosen)
