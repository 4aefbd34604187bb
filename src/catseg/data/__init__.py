"""Data loading for segmentation: VOC folders, labelme JSON, joint transforms.

Examples:
    >>> import tempfile
    >>> from catseg.data import VOCSegmentationDataset, make_synthetic_voc
    >>> root = make_synthetic_voc(tempfile.mkdtemp(), n=4, size=32)
    >>> len(VOCSegmentationDataset(root))
    4
"""

from __future__ import annotations

from catseg.data._io import open_image, read_mask, to_rgb
from catseg.data.synthetic import make_synthetic_voc
from catseg.data.voc import VOCSegmentationDataset

__all__ = [
    "VOCSegmentationDataset",
    "make_synthetic_voc",
    "open_image",
    "read_mask",
    "to_rgb",
]
