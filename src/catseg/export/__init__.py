"""Export a UNet (or a whole Segmenter) to ONNX and run the file with onnxruntime.

:func:`to_onnx` writes one self-contained ``.onnx`` file: the network in fp32 eval
mode with BatchNorm folded into the convolutions, taking ``images`` of shape
``(batch, in_channels, height, width)`` and returning ``logits`` of shape
``(batch, num_classes, height, width)``. With ``dynamic_size=True`` (the default) the
batch, height and width are free, including sizes that are not multiples of the
encoder's total stride: the UNet's pad-to-stride and crop-back are exported as shape
operations, and :func:`to_onnx` checks the file against PyTorch at a second size before
it replaces anything on disk.

Everything needed to use the file again is stored in its ``metadata_props``:
``model_config`` (the model's one record, ``UNetConfig.to_dict()`` as JSON: architecture,
classes, mode, threshold, input size, normalisation; read back with the same checks as
a checkpoint's), ``dynamic_size``, ``stride`` and ``catseg_version``.

:class:`OnnxRunner` loads such a file (or any ONNX model with one 4-D input) with
onnxruntime and runs it on torch tensors; :meth:`Segmenter.from_onnx
<catseg.predict.Segmenter.from_onnx>` builds on it.

Both need the ``onnx`` extra (``pip install "catseg[onnx]"``: onnx, onnxscript and
onnxruntime); importing this module does not import them.

Examples:
    >>> from catseg.export import INPUT_NAME, OUTPUT_NAME
    >>> INPUT_NAME, OUTPUT_NAME
    ('images', 'logits')
"""

from __future__ import annotations

from catseg.export._onnx import INPUT_NAME, OUTPUT_NAME, to_onnx
from catseg.export._quantize import QUANTIZATION_KEY, CalibrationMethod, quantize_onnx
from catseg.export._runner import OnnxRunner

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "QUANTIZATION_KEY",
    "CalibrationMethod",
    "OnnxRunner",
    "quantize_onnx",
    "to_onnx",
]
