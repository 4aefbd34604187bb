"""Data loading for segmentation: VOC folders, labelme JSON, joint transforms.

Examples:
    >>> from catseg.data import open_image, read_mask
    >>> callable(open_image) and callable(read_mask)
    True
"""

from __future__ import annotations

from catseg.data._io import open_image, read_mask, to_rgb

__all__ = ["open_image", "read_mask", "to_rgb"]
