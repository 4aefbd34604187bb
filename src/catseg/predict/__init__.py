"""Segment images with a trained model: :class:`Segmenter` and :class:`Prediction`.

Examples:
    >>> import torch
    >>> from catseg.models import UNet
    >>> from catseg.predict import Segmenter
    >>> seg = Segmenter(UNet(3, 1, init_features=4, depth=2), classes=["_background_", "cat"])
    >>> pred = seg.predict(torch.rand(3, 37, 53))
    >>> pred.mask.shape, pred.classes
    (torch.Size([37, 53]), ['_background_', 'cat'])
    >>> pred.overlay(alpha=0.3).size
    (53, 37)
"""

from __future__ import annotations

from catseg.data._inputs import ImageInput
from catseg.predict._annotate import rank_for_labelling
from catseg.predict._folder import FolderSummary
from catseg.predict._pipeline import Postprocess
from catseg.predict._prediction import Prediction
from catseg.predict._segmenter import Segmenter

__all__ = ["FolderSummary", "ImageInput", "Postprocess", "Prediction", "Segmenter"]
__all__ += ["rank_for_labelling"]
