"""Tiled inference: segment a large image piece by piece and blend the overlaps."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["blend_weights", "tile_starts", "tiled_scores"]


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``size`` covering ``length`` with at least ``overlap``.

    Tiles advance by ``size - overlap``; the last tile is aligned to the end so no
    tile sticks out of the image (it may then overlap its neighbour by more).

    Examples:
        >>> tile_starts(10, 4, 1)
        [0, 3, 6]
        >>> tile_starts(11, 4, 1)
        [0, 3, 6, 7]
        >>> tile_starts(3, 4, 1)
        [0]
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size - overlap))
    starts.append(length - size)
    return starts


def blend_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """Weight map of one tile: a linear ramp over ``overlap`` pixels at each edge.

    Pixels deep inside a tile get weight 1; towards an edge the weight falls
    linearly to ``0.5 / overlap`` (never 0, so every pixel is covered). Overlapping
    predictions are averaged with these weights, which hides tile seams.

    Shape:
        - output: ``(height, width)`` float32.

    Examples:
        >>> blend_weights(6, 6, 2)[2]  # a middle row
        tensor([0.2500, 0.7500, 1.0000, 1.0000, 0.7500, 0.2500])
    """

    def ramp(n: int) -> torch.Tensor:
        if overlap <= 0:
            return torch.ones(n)
        i = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(i + 0.5, n - i - 0.5) / overlap
        return edge.clamp(max=1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


def tiled_scores(
    scores: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    size: int,
    overlap: int,
    batch_size: int,
) -> torch.Tensor:
    """Run ``scores`` on overlapping tiles of ``image`` and blend the results.

    Only ``batch_size`` tiles are in flight at a time; the blended result and the
    weight sum are accumulated on the CPU, so device memory stays bounded by the
    tile batch whatever the image size.

    Args:
        scores: Maps a batch ``(N, C, h, w)`` to per-pixel scores ``(N, K, h, w)``.
        image: The preprocessed image ``(C, H, W)``.
        size: Tile side in pixels.
        overlap: Pixels shared by neighbouring tiles.
        batch_size: Tiles per call of ``scores``.

    Returns:
        Blended scores ``(K, H, W)`` float32 on the CPU.
    """
    _, height, width = image.shape
    tile_h, tile_w = min(size, height), min(size, width)
    boxes = [
        (y, x)
        for y in tile_starts(height, size, overlap)
        for x in tile_starts(width, size, overlap)
    ]
    weight = blend_weights(tile_h, tile_w, overlap)
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(height, width)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        batch = torch.stack([image[:, y : y + tile_h, x : x + tile_w] for y, x in chunk])
        result = scores(batch).float().cpu()
        if total is None:
            total = torch.zeros(result.shape[1], height, width)
        for (y, x), tile in zip(chunk, result, strict=True):
            total[:, y : y + tile_h, x : x + tile_w] += tile * weight
            weight_sum[y : y + tile_h, x : x + tile_w] += weight
    assert total is not None  # at least one tile always exists
    return total / weight_sum
