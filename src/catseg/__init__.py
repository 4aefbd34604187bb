"""catseg: typed, documented PyTorch semantic segmentation.

The "segment the cat" workflow as a library: labelme polygons and Pascal-VOC masks
in, a UNet with pluggable encoders, a soft Dice loss, the VOC definition of mIoU,
safe checkpoints and a fast :class:`Segmenter` out.

Examples:
    >>> import catseg
    >>> isinstance(catseg.__version__, str)
    True
"""

from __future__ import annotations

__version__ = "0.1.0"

# --- errors -----------------------------------------------------------------
# --- data -------------------------------------------------------------------
from catseg.data import (
    LabelmeDataset,
    VOCSegmentationDataset,
    labelme_to_voc,
    make_synthetic_voc,
    read_labelme,
)
from catseg.errors import (
    CatsegError,
    CheckpointError,
    ConfigError,
    DataError,
    DTypeError,
    EncoderError,
    LabelmeError,
    MissingFileError,
    NonFiniteError,
    OptionalDependencyError,
    ShapeError,
)

# --- models -----------------------------------------------------------------
# --- losses -----------------------------------------------------------------
from catseg.losses import (
    DiceLoss,
    SoftDice,
    soft_dice,
)

# --- metrics ----------------------------------------------------------------
from catseg.metrics import (
    IoUResult,
    MeanIoU,
    confusion_matrix,
    mean_iou,
)

# --- visualize --------------------------------------------------------------

# --- checkpoint -------------------------------------------------------------

# --- predict ----------------------------------------------------------------

# --- training ---------------------------------------------------------------

# --- export -----------------------------------------------------------------

__all__ = [
    "__version__",
    # errors
    "CatsegError",
    "CheckpointError",
    "ConfigError",
    "DTypeError",
    "DataError",
    "EncoderError",
    "LabelmeError",
    "MissingFileError",
    "NonFiniteError",
    "OptionalDependencyError",
    "ShapeError",
    # models
    # losses
    "soft_dice",
    "SoftDice",
    "DiceLoss",
    # metrics
    "confusion_matrix",
    "mean_iou",
    "MeanIoU",
    "IoUResult",
    # data
    "VOCSegmentationDataset",
    "LabelmeDataset",
    "read_labelme",
    "labelme_to_voc",
    "make_synthetic_voc",
    # visualize
    # checkpoint
    # predict
    # training
    # export
]
