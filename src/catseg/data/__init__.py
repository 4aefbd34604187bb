"""Data loading for segmentation: VOC folders, labelme JSON, joint transforms.

* :class:`VOCSegmentationDataset` reads Pascal VOC style folders lazily.
* :func:`read_labelme`, :func:`labelme_to_voc` and :class:`LabelmeDataset` handle
  labelme annotations with labelme's own rasterisation rules.
* :func:`make_synthetic_voc` writes a tiny learnable toy dataset.
* :class:`SegmentationLoader` is a DataLoader with sensible defaults whose worker
  processes keep sharing the training process's memory.
* :mod:`catseg.data.transforms` holds joint image + mask transforms on tensors.

Examples:
    >>> import tempfile
    >>> from catseg.data import VOCSegmentationDataset, make_synthetic_voc
    >>> root = make_synthetic_voc(tempfile.mkdtemp(), n=4, size=32)
    >>> len(VOCSegmentationDataset(root))
    4
"""

from __future__ import annotations

from catseg.data import transforms
from catseg.data._io import open_image, to_rgb
from catseg.data._masks import read_mask
from catseg.data.labelme import LabelmeDataset, labelme_to_voc, read_labelme, read_labels
from catseg.data.loader import SegmentationLoader
from catseg.data.multilabel import VOCMultilabelDataset, make_synthetic_multilabel
from catseg.data.synthetic import make_synthetic_voc
from catseg.data.voc import VOCSegmentationDataset

__all__ = [
    "LabelmeDataset",
    "SegmentationLoader",
    "VOCMultilabelDataset",
    "VOCSegmentationDataset",
    "labelme_to_voc",
    "make_synthetic_multilabel",
    "make_synthetic_voc",
    "open_image",
    "read_labelme",
    "read_labels",
    "read_mask",
    "to_rgb",
    "transforms",
]
