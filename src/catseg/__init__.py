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
# --- checkpoint -------------------------------------------------------------
from catseg.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from catseg.data import (
    LabelmeDataset,
    SegmentationLoader,
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

# --- export -----------------------------------------------------------------
from catseg.export import (
    to_onnx,
)

# --- losses -----------------------------------------------------------------
from catseg.losses import (
    BCEDiceLoss,
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

# --- models -----------------------------------------------------------------
from catseg.models import (
    Encoder,
    EncoderFactory,
    Registry,
    UNet,
    UNetConfig,
    get_encoder,
    list_encoders,
    register_encoder,
    validate_encoder,
)

# --- predict ----------------------------------------------------------------
from catseg.predict import (
    Prediction,
    Segmenter,
)

# --- training ---------------------------------------------------------------
from catseg.training import (
    CheckpointMeta,
    EpochRecord,
    History,
    evaluate,
    fit,
    train_one_epoch,
)

# --- visualize --------------------------------------------------------------
from catseg.visualize import (
    BINARY_PALETTE,
    VOC_PALETTE,
    colorize,
    get_palette,
    overlay,
)

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
    "UNet",
    "UNetConfig",
    "Encoder",
    "EncoderFactory",
    "Registry",
    "register_encoder",
    "get_encoder",
    "list_encoders",
    "validate_encoder",
    # losses
    "soft_dice",
    "SoftDice",
    "DiceLoss",
    "BCEDiceLoss",
    # metrics
    "confusion_matrix",
    "mean_iou",
    "MeanIoU",
    "IoUResult",
    # data
    "VOCSegmentationDataset",
    "SegmentationLoader",
    "LabelmeDataset",
    "read_labelme",
    "labelme_to_voc",
    "make_synthetic_voc",
    # visualize
    "VOC_PALETTE",
    "BINARY_PALETTE",
    "get_palette",
    "colorize",
    "overlay",
    # checkpoint
    "save_checkpoint",
    "load_checkpoint",
    "Checkpoint",
    # predict
    "Segmenter",
    "Prediction",
    # training
    "fit",
    "train_one_epoch",
    "evaluate",
    "History",
    "EpochRecord",
    "CheckpointMeta",
    # export
    "to_onnx",
]
