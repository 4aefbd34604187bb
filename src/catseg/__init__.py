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

from catseg import errors
from catseg.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from catseg.data import (
    LabelmeDataset,
    SegmentationLoader,
    VOCMultilabelDataset,
    VOCSegmentationDataset,
    labelme_to_voc,
    make_synthetic_multilabel,
    make_synthetic_voc,
    read_labelme,
)
from catseg.errors import *  # noqa: F403  (the error tree, listed once in catseg.errors)
from catseg.export import (
    quantize_onnx,
    to_onnx,
)
from catseg.losses import (
    BCEDiceLoss,
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LovaszLoss,
    SoftDice,
    TverskyLoss,
    soft_dice,
)
from catseg.metrics import (
    IoUResult,
    MeanIoU,
    confusion_matrix,
    mean_iou,
)
from catseg.models import (
    Encoder,
    EncoderFactory,
    Preprocessing,
    Registry,
    UNet,
    UNetConfig,
    freeze_encoder,
    get_encoder,
    list_encoders,
    param_groups,
    register_encoder,
    unfreeze_encoder,
    validate_encoder,
)
from catseg.predict import (
    FolderSummary,
    Prediction,
    Segmenter,
    rank_for_labelling,
)
from catseg.training import (
    EpochRecord,
    History,
    RunOptions,
    evaluate,
    fit,
    train_one_epoch,
)
from catseg.visualize import (
    BINARY_PALETTE,
    VOC_PALETTE,
    colorize,
    get_palette,
    overlay,
)

__all__ = ["__version__"]
__all__ += errors.__all__  # the whole error tree, listed once in catseg.errors
__all__ += [
    # models
    "UNet",
    "UNetConfig",
    "Preprocessing",
    "Encoder",
    "EncoderFactory",
    "Registry",
    "register_encoder",
    "get_encoder",
    "list_encoders",
    "validate_encoder",
    "freeze_encoder",
    "unfreeze_encoder",
    "param_groups",
    # losses
    "soft_dice",
    "SoftDice",
    "DiceLoss",
    "BCEDiceLoss",
    "DiceCELoss",
    "FocalLoss",
    "TverskyLoss",
    "JaccardLoss",
    "LovaszLoss",
    # metrics
    "confusion_matrix",
    "mean_iou",
    "MeanIoU",
    "IoUResult",
    # data
    "VOCSegmentationDataset",
    "VOCMultilabelDataset",
    "SegmentationLoader",
    "LabelmeDataset",
    "read_labelme",
    "labelme_to_voc",
    "make_synthetic_voc",
    "make_synthetic_multilabel",
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
    "FolderSummary",
    "rank_for_labelling",
    # training
    "fit",
    "train_one_epoch",
    "evaluate",
    "History",
    "EpochRecord",
    "RunOptions",
    # export
    "to_onnx",
    "quantize_onnx",
]
