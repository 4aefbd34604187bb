"""quantize_onnx: post-training static int8 quantisation of an exported ONNX model for CPUs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from catseg import _validation as check
from catseg._files import atomic_write
from catseg._runtime import require
from catseg._version import catseg_version
from catseg.errors import CatsegError, CheckpointError, ConfigError, ExportError
from catseg.export._int8_graph import read_shapes_before_dequantize, rewrite_block_upsampling
from catseg.export._runner import OnnxRunner
from catseg.models.preprocessing import Preprocessing

CalibrationMethod = Literal["minmax", "entropy", "percentile"]
"""How activation ranges are chosen from the calibration images (onnxruntime's methods)."""

QUANTIZATION_KEY = "quantization"
"""Metadata key that marks a quantised file; its value describes the quantisation."""

_METHODS: tuple[CalibrationMethod, ...] = ("minmax", "entropy", "percentile")
_QDQ = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")
_ORT_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _calibration_tensors(
    images: Sequence[object], runner: OnnxRunner
) -> Iterator[tuple[int, torch.Tensor]]:
    """Each image preprocessed as the Segmenter does: ``(1, C, h, w)`` float32 batches.

    The same steps as :class:`~catseg.predict.Segmenter` before its forward pass: read
    the image (EXIF, modes, channels), scale to [0, 1], resize to the file's
    ``image_size`` (bilinear, antialiased; a fixed-size file's own size when it stores
    none) and normalise with the file's ``mean``/``std``.
    """
    from catseg.data._inputs import load_input, model_input

    record, channels = runner.config, runner.in_channels
    pre = (record.preprocessing or Preprocessing.identity(channels)).for_channels(channels)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    size = record.image_size
    if size is None:
        height, width = (OnnxRunner.static_dim(d) for d in runner.input_shape[2:])
        size = (height, width) if height is not None and width is not None else None
    for index, image in enumerate(images):
        try:
            tensor = load_input(image, channels, size).pixels
        except CatsegError as err:
            raise ConfigError(f"calibration_images[{index}] cannot be read: {err}") from err
        yield index, model_input(tensor, size, mean, std)


class _Reader:
    """A ``CalibrationDataReader`` (onnxruntime's protocol: ``get_next`` and ``rewind``)."""

    def __init__(self, images: Sequence[object], runner: OnnxRunner) -> None:
        self._images, self._runner = images, runner
        self.rewind()

    def get_next(self) -> dict[str, Any] | None:
        item = next(self._iterator, None)
        return None if item is None else {self._runner.input_name: item[1].numpy()}

    def rewind(self) -> None:
        self._iterator = _calibration_tensors(self._images, self._runner)


def _check_arguments(
    src_onnx: object, dst_onnx: object, calibration_images: object
) -> tuple[Path, Path, Sequence[object]]:
    src, dst = check.check_path("src_onnx", src_onnx), check.check_path("dst_onnx", dst_onnx)
    if src.resolve() == dst.resolve():
        raise ConfigError(
            f"dst_onnx {str(dst)!r} is the source file; quantize_onnx never overwrites "
            "src_onnx: choose another destination"
        )
    if (
        isinstance(calibration_images, (str, os.PathLike, bytes))
        or not isinstance(calibration_images, Sequence)
        or len(calibration_images) == 0
    ):
        raise ConfigError(
            "calibration_images must be a non-empty sequence of images (paths, PIL images, "
            f"arrays or tensors), got {calibration_images!r:.80}"
        )
    return src, dst, calibration_images


def _finish(path: Path, metadata: dict[str, Any], marker: dict[str, Any]) -> None:
    """Read shapes before dequantising; write the source's metadata plus the marker."""
    onnx = require("onnx", "onnx")
    model = onnx.load(str(path))
    read_shapes_before_dequantize(model)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({key: json.dumps(value) for key, value in metadata.items()})
    props[QUANTIZATION_KEY] = json.dumps(marker)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _quantize(src: Path, tmp: Path, reader: _Reader, options: dict[str, Any]) -> None:
    """Pre-process the fp32 graph, rewrite its block upsampling (exact), quantise it (QDQ)."""
    onnx = require("onnx", "onnx")
    quantization = require("onnxruntime.quantization", "onnx")
    model_in = tmp.with_name(tmp.name + ".fp32.onnx")
    ort_logger = logging.getLogger("onnxruntime")  # its info lines are not ours to print
    level = ort_logger.level
    ort_logger.setLevel(logging.ERROR)
    method = getattr(quantization.CalibrationMethod, _ORT_METHODS[options["method"]])
    try:
        if options["preprocess"]:
            quantization.shape_inference.quant_pre_process(
                str(src), str(model_in), skip_symbolic_shape=True
            )
        model = onnx.load(str(model_in if options["preprocess"] else src))
        rewrite_block_upsampling(model)
        onnx.save(model, str(model_in))
        quantization.quantize_static(
            str(model_in),
            str(tmp),
            reader,
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=options["per_channel"],
            reduce_range=options["reduce_range"],
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=method,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    except CatsegError:
        raise
    except Exception as err:  # onnxruntime's quantiser raises many unrelated types
        raise ExportError(
            f"onnxruntime could not quantise {str(src)!r}: {type(err).__name__}: {err}"
        ) from err
    finally:
        ort_logger.setLevel(level)
        model_in.unlink(missing_ok=True)


def quantize_onnx(
    src_onnx: str | os.PathLike[str],
    dst_onnx: str | os.PathLike[str],
    *,
    calibration_images: Sequence[object],
    per_channel: bool = True,
    method: CalibrationMethod = "minmax",
    reduce_range: bool = True,
    preprocess: bool = True,
) -> Path:
    """Quantise an exported model to int8 (post-training, static, QDQ) for CPU inference.

    Weights become int8 (one scale per output channel with ``per_channel=True``) and
    activations uint8, with ranges measured by running the fp32 model on
    ``calibration_images`` (``onnxruntime.quantization.quantize_static``, QDQ format),
    preprocessed exactly as :class:`~catseg.predict.Segmenter` does for this file. Use a
    few dozen photos like the ones the model will see; on a trained model the masks then
    usually agree with the fp32 model's on ≥ 99 % of the pixels (see the export guide).

    Before quantising, the graph is pre-processed (``quant_pre_process``) and each
    transposed convolution whose kernel equals its stride (the UNet's 2×2 upsampling) is
    rewritten, exactly, as a 1×1 convolution and a block reshuffle that run in int8
    (onnxruntime has no int8 ``ConvTranspose``; speeds are in the export guide).

    The destination keeps every metadata entry of the source (the model's record in
    ``model_config``, ...) plus ``quantization`` (a JSON object: ``"int8"``
    format, calibration method and image count), so ``Segmenter.from_onnx(dst_onnx)``
    runs it unchanged. The file is written atomically; ``src_onnx`` is never modified.

    Args:
        src_onnx: An fp32 ONNX file from :func:`~catseg.export.to_onnx`.
        dst_onnx: Destination file (not ``src_onnx``); its folder is created if missing
            and an existing file is replaced only once the new one loads.
        calibration_images: Images in any form the Segmenter accepts (file paths, PIL
            images, uint8 ``(H, W, C)`` arrays, ``(C, H, W)`` tensors); each is run once.
        per_channel: One weight scale per output channel (more accurate) instead of one
            per tensor.
        method: ``"minmax"`` (the observed range), ``"entropy"`` or ``"percentile"``
            (clip outliers; slower calibration).
        reduce_range: Quantise weights to 7 bits (the default), which cannot saturate the
            16-bit sums of x86 CPUs without VNNI (see the export guide); ``False`` gives
            8-bit weights, finer on VNNI CPUs.
        preprocess: Run onnxruntime's ``quant_pre_process`` (graph optimisation and
            shape inference) first.

    Returns:
        The path written.

    Raises:
        ConfigError: If a path is not a path, ``dst_onnx`` is ``src_onnx``,
            ``calibration_images`` is empty or not a sequence, an image cannot be
            read, or an option has the wrong type or value.
        MissingFileError: If ``src_onnx`` does not exist.
        CheckpointError: If ``src_onnx`` is not a loadable ONNX model or already
            quantised.
        ExportError: If onnxruntime fails to quantise it, the result does not load, or
            ``dst_onnx`` cannot be written (a read-only folder, a parent that is a file).
        OptionalDependencyError: If onnx or onnxruntime is not installed.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from catseg.export import OnnxRunner, to_onnx
        >>> from catseg.models import UNet
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = Path(tmp.name)
        >>> fp32 = to_onnx(UNet(3, 2, init_features=4, depth=2).eval(), folder / "m.onnx")
        >>> images = [torch.rand(3, 32, 32) for _ in range(4)]
        >>> int8 = quantize_onnx(fp32, folder / "m-int8.onnx", calibration_images=images)
        >>> runner = OnnxRunner(int8)
        >>> runner.metadata["quantization"]["format"], runner.num_classes
        ('int8', 2)
        >>> runner(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 2, 32, 32])
        >>> tmp.cleanup()
    """
    src, dst, images = _check_arguments(src_onnx, dst_onnx, calibration_images)
    options = {
        "per_channel": check.check_bool("per_channel", per_channel),
        "reduce_range": check.check_bool("reduce_range", reduce_range),
        "method": check.check_choice("method", method, _METHODS),
        "preprocess": check.check_bool("preprocess", preprocess),
    }
    onnx = require("onnx", "onnx")
    runner = OnnxRunner(src, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(src), load_external_data=False).graph  # onnxruntime loops on int8
    if any(n.op_type in _QDQ for n in graph.node) or any(
        t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) for t in graph.initializer
    ):
        raise CheckpointError(
            f"{str(src)!r} is already quantised (it holds QuantizeLinear/DequantizeLinear "
            "nodes or int8 weights); quantise the fp32 file instead"
        )
    reader = _Reader(images, runner)

    def write(tmp: Path) -> None:
        _quantize(src, tmp, reader, options)
        marker = {
            "format": "int8",
            "scheme": "QDQ, uint8 activations, int8 weights",
            **{k: options[k] for k in ("per_channel", "reduce_range", "method")},
            "calibration_images": len(images),
            "catseg_version": catseg_version(),
        }
        _finish(tmp, runner.metadata, marker)
        try:
            OnnxRunner(tmp, providers=["CPUExecutionProvider"])
        except CatsegError as err:
            raise ExportError(f"the quantised model does not load: {err}") from err

    try:
        return atomic_write(dst, write)
    except CatsegError:
        raise
    except OSError as err:  # a read-only folder, a full disk, a parent that is a file
        raise ExportError(f"cannot write {dst}: {err.strerror or err}") from err
