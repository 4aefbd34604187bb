"""Tiled inference: segment a large image piece by piece and blend the overlaps."""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, size: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of at most ``size`` covering ``length`` with ``overlap``.

    Tiles advance by ``size - overlap`` rounded down to a multiple of ``align`` (at
    least ``align``); the last one is cut at the end of the image. With ``align`` the
    network's total stride, each tile sees the whole image's pooling grid and padding,
    so tiles differ from the whole-image pass only near their inner edges.

    Examples:
        >>> tile_starts(10, 4, 1), tile_starts(11, 4, 1), tile_starts(3, 4, 1)
        ([0, 3, 6], [0, 3, 6, 9], [0])
        >>> tile_starts(1500, 1024, 256, align=16)
        [0, 768]
    """
    if length <= size:
        return [0]
    step = max(align, (size - overlap) // align * align)
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + step)
    return starts


def blend_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """Weight map of one tile: a ramp across the middle quarter of the overlap.

    The weight at distance ``d`` from the nearest tile edge is ``1e-3`` (never 0) up to
    ``d = 3/8 · overlap``, then rises linearly to 1 at ``d = 5/8 · overlap``: each pixel
    comes from tiles where it lies away from the (zero-padded) edge, and the hand-over
    is smooth, so no seam shows. Returns ``(height, width)`` float32.

    Examples:
        >>> blend_weights(16, 16, 8)[8]  # a middle row
        tensor([0.0010, 0.0010, 0.0010, 0.2500, 0.7500, 1.0000, 1.0000, 1.0000, 1.0000,
                1.0000, 1.0000, 0.7500, 0.2500, 0.0010, 0.0010, 0.0010])
    """

    def ramp(n: int) -> torch.Tensor:
        if overlap <= 0:
            return torch.ones(n)
        i = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(i + 0.5, n - i - 0.5)
        return ((edge - 0.375 * overlap) / (0.25 * overlap)).clamp(1e-3, 1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


def tiled_scores(
    scores: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: tuple[int, int],
    batch_size: int,
    align: int = 1,
) -> torch.Tensor:
    """Run ``scores`` on overlapping tiles of ``image`` and blend the results.

    ``batch_size`` tiles of one shape run at a time; the blend is accumulated on the
    CPU, so device memory is bounded by the tile batch whatever the image size.

    Args:
        scores: Maps a batch ``(N, C, h, w)`` to per-pixel scores ``(N, K, h, w)``.
        image: The preprocessed image ``(C, H, W)``.
        tile: ``(size, overlap)``: tile side and pixels shared by neighbours (at least).
        batch_size: Tiles per call of ``scores``.
        align: Tile starts are multiples of this (the model's total stride).

    Returns:
        Blended scores ``(K, H, W)`` float32 on the CPU.
    """
    (_, height, width), (size, overlap) = image.shape, tile
    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for y in tile_starts(height, size, overlap, align):
        for x in tile_starts(width, size, overlap, align):
            shape = (min(size, height - y), min(size, width - x))
            by_shape.setdefault(shape, []).append((y, x))
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(height, width)
    for (tile_h, tile_w), boxes in by_shape.items():
        weight = blend_weights(tile_h, tile_w, overlap)
        for first in range(0, len(boxes), batch_size):
            chunk = boxes[first : first + batch_size]
            batch = torch.stack([image[:, y : y + tile_h, x : x + tile_w] for y, x in chunk])
            result = scores(batch).float().cpu()
            if total is None:
                total = torch.zeros(result.shape[1], height, width)
            for (y, x), part in zip(chunk, result, strict=True):
                total[:, y : y + tile_h, x : x + tile_w] += part * weight
                weight_sum[y : y + tile_h, x : x + tile_w] += weight
    assert total is not None  # at least one tile always exists
    return total / weight_sum
