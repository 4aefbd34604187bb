"""The public-API sweep's table (issue #27): bare builtin errors and accepted bad values.

:mod:`api_sweep` calls every public callable once per (parameter, bad value) pair, with
the other arguments valid, and counts the calls that end in a bare builtin error or that
return although the value breaks the documented contract. :data:`TABLE` is its result at
the last change (regenerate with ``python tests/reliability/api_sweep.py``; ``-v`` lists
the offending calls). The test fails when a total exceeds :data:`LIMITS` or any callable
gets worse.

Before the fixes of issue #27 the same sweep gave 1,845 calls, 125 bare errors and 69
accepted invalid values; then 44 and 31, then 16 and 4, now 0 and 0 (1,903 calls)
(the issue's own sweep found 286 and 250 of 2,426).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from api_sweep import NOT_SWEPT, format_table, public_callables, sweep
from reliability_builders import single_threaded_torch  # noqa: F401  (autouse fixture)

LIMITS = {"bare": 0, "accepted": 0}
"""The totals at the last change (issue 27's acceptance bound was 50 each): never more."""

TABLE = {  # name: (calls, bare, accepted)
    "BCEDiceLoss": (32, 0, 0),
    "ColorJitter": (32, 0, 0),
    "Compose": (5, 0, 0),
    "DiceCELoss": (49, 0, 0),
    "DiceLoss": (49, 0, 0),
    "FocalLoss": (31, 0, 0),
    "JaccardLoss": (33, 0, 0),
    "LabelmeDataset": (27, 0, 0),
    "LovaszLoss": (15, 0, 0),
    "MeanIoU": (47, 0, 0),
    "MeanIoU.update": (10, 0, 0),
    "Normalize": (10, 0, 0),
    "OnnxRunner": (7, 0, 0),
    "PadToMultiple": (26, 0, 0),
    "Prediction.to_labelme": (29, 0, 0),
    "Prediction.uncertainty": (2, 0, 0),
    "Preprocessing": (10, 0, 0),
    "RandomHorizontalFlip": (16, 0, 0),
    "RandomResizedCrop": (29, 0, 0),
    "RandomRotation": (35, 0, 0),
    "Registry": (2, 0, 0),
    "Resize": (11, 0, 0),
    "RunOptions": (28, 0, 0),
    "SegmentationLoader": (37, 0, 0),
    "Segmenter": (57, 0, 0),
    "Segmenter.predict": (6, 0, 0),
    "Segmenter.predict_folder": (41, 0, 0),
    "SoftDice": (49, 0, 0),
    "TverskyLoss": (57, 0, 0),
    "UNet": (63, 0, 0),
    "UNet.describe": (33, 0, 0),
    "UNet.from_config": (3, 0, 0),
    "UNetConfig": (88, 0, 0),
    "VOCMultilabelDataset": (19, 0, 0),
    "VOCSegmentationDataset": (33, 0, 0),
    "adapt_stem_weight": (14, 0, 0),
    "colorize": (10, 0, 0),
    "colorize_layers": (10, 0, 0),
    "confusion_matrix": (42, 0, 0),
    "dice_ce_loss": (59, 0, 0),
    "evaluate": (19, 0, 0),
    "fit": (35, 0, 0),
    "focal_loss": (41, 0, 0),
    "freeze_encoder": (2, 0, 0),
    "get_encoder": (14, 0, 0),
    "get_palette": (3, 0, 0),
    "jaccard_loss": (43, 0, 0),
    "labelme_to_voc": (28, 0, 0),
    "list_encoders": (8, 0, 0),
    "load_checkpoint": (5, 0, 0),
    "load_pretrained": (7, 0, 0),
    "lovasz_loss": (25, 0, 0),
    "make_synthetic_multilabel": (49, 0, 0),
    "make_synthetic_voc": (49, 0, 0),
    "mean_iou": (53, 0, 0),
    "open_image": (7, 0, 0),
    "overlay": (23, 0, 0),
    "overlay_layers": (23, 0, 0),
    "param_groups": (16, 0, 0),
    "quantize_onnx": (26, 0, 0),
    "rank_for_labelling": (17, 0, 0),
    "read_labelme": (11, 0, 0),
    "read_labels": (3, 0, 0),
    "read_mask": (3, 0, 0),
    "register_encoder": (3, 0, 0),
    "save_checkpoint": (9, 0, 0),
    "save_pretrained": (15, 0, 0),
    "soft_dice": (59, 0, 0),
    "to_onnx": (22, 0, 0),
    "to_rgb": (2, 0, 0),
    "train_one_epoch": (39, 0, 0),
    "tversky_loss": (67, 0, 0),
    "unfreeze_encoder": (2, 0, 0),
    "validate_encoder": (19, 0, 0),
}


def test_the_public_api_refuses_bad_arguments_with_catseg_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a bad local source must never reach the network
    table = sweep(tmp_path)
    missing = public_callables() - NOT_SWEPT - set(table)
    assert not missing, f"public callables the sweep does not call: {sorted(missing)}"
    offenders = [line for outcome in table.values() for line in outcome.offenders]
    report = format_table(table) + "\n" + "\n".join(offenders)
    bare = sum(o.counts["bare"] for o in table.values())
    accepted = sum(o.counts["accepted"] for o in table.values())
    assert bare <= LIMITS["bare"], f"{bare} bare builtin errors\n{report}"
    assert accepted <= LIMITS["accepted"], f"{accepted} invalid values accepted\n{report}"
    worse = {
        name: (o.counts["bare"], o.counts["accepted"])
        for name, o in table.items()
        if name not in TABLE
        or o.counts["bare"] > TABLE[name][1]
        or o.counts["accepted"] > TABLE[name][2]
    }
    assert not worse, f"worse than TABLE (bare, accepted): {worse}\n{report}"
