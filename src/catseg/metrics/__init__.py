"""Segmentation metrics: confusion matrix, per-class IoU, Dice/F1, precision, recall, mIoU.

The default is the Pascal VOC / mmseg definition: one confusion matrix over the whole
dataset, pixels labelled 255 ignored, mean over the classes present in prediction or
ground truth, and (catseg's choice, as the tutorial states) the background left out.
Other libraries' definitions are named options of :class:`MeanIoU`; the guide
"Losses and metrics" compares them side by side. ``mode="multilabel"`` scores K
independent labels per pixel against multi-hot targets.

Examples:
    >>> import torch
    >>> from catseg.metrics import MeanIoU
    >>> metric = MeanIoU(num_classes=2)
    >>> metric.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 1]]]))
    >>> round(metric.compute().miou, 4)
    0.6667
"""

from __future__ import annotations

from catseg.metrics._confusion import MetricMode
from catseg.metrics._iou import AbsentMode, IoUResult, MeanIoU, mean_iou
from catseg.metrics._matrix import confusion_matrix

__all__ = ["AbsentMode", "IoUResult", "MeanIoU", "MetricMode", "confusion_matrix", "mean_iou"]
