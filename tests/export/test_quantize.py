"""quantize_onnx: int8 masks against fp32 on a trained model, metadata, preprocessing, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import torch
from torch.utils.data import DataLoader

import catseg
from catseg.data import VOCSegmentationDataset, make_synthetic_voc
from catseg.errors import (
    CheckpointError,
    ConfigError,
    ExportError,
    MissingFileError,
    OptionalDependencyError,
)
from catseg.export import QUANTIZATION_KEY, OnnxRunner, quantize_onnx, to_onnx
from catseg.export._quantize import _calibration_tensors
from catseg.losses import BCEDiceLoss
from catseg.metrics import MeanIoU
from catseg.models import UNet
from catseg.predict import Segmenter
from catseg.training import fit


@dataclass
class Quantised:
    data: Path
    fp32: Path
    int8: Path
    calibration: list[Path]


def _photos(root: Path, split: str) -> list[Path]:
    ids = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
    return [root / "JPEGImages" / f"{i}.jpg" for i in ids]


@pytest.fixture(scope="module")
def quantised(tmp_path_factory: pytest.TempPathFactory) -> Quantised:
    """A UNet trained for a few epochs on the synthetic blobs, exported and quantised."""
    folder = tmp_path_factory.mktemp("int8")
    data = make_synthetic_voc(folder / "voc", n=40, size=64, seed=3, val_fraction=0.2)
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=8, depth=3)
    dataset = VOCSegmentationDataset(data, "train", cache=True, image_dtype="uint8")
    loader = DataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    fit(model, loader, loss_fn=BCEDiceLoss(), optimizer=optimizer, epochs=8, progress=False)
    model.describe(mean=(0.4, 0.45, 0.5), std=(0.25, 0.2, 0.3))  # carried by both files
    segmenter = Segmenter(
        model.eval(), classes=["_background_", "blob"], device="cpu", precision="fp32"
    )
    fp32 = to_onnx(segmenter, folder / "fp32.onnx")
    calibration = _photos(data, "train")[:16]
    int8 = quantize_onnx(fp32, folder / "int8.onnx", calibration_images=calibration)
    return Quantised(data, fp32, int8, calibration)


def test_int8_masks_agree_with_fp32(quantised: Quantised) -> None:
    fp32 = Segmenter.from_onnx(quantised.fp32, providers=["CPUExecutionProvider"])
    int8 = Segmenter.from_onnx(quantised.int8, providers=["CPUExecutionProvider"])
    val = VOCSegmentationDataset(quantised.data, "val", image_dtype="uint8")
    same = total = 0
    iou32, iou8 = MeanIoU(2), MeanIoU(2)
    for index in range(len(val)):
        image, truth = val[index]
        a = fp32.predict(image).mask.long()
        b = int8.predict(image).mask.long()
        same += int((a == b).sum())
        total += a.numel()
        iou32.update(a[None], truth[None])
        iou8.update(b[None], truth[None])
    fp32_iou = float(iou32.compute().iou[1])
    # measured: 99.61 % of the pixels agree; blob IoU 0.9956 fp32, 0.9968 int8 (the
    # issue's targets: >= 99 % of the pixels, IoU drop <= 0.005)
    assert fp32_iou > 0.9, "the fixture model did not learn; the comparison would be empty"
    assert same / total >= 0.99
    assert fp32_iou - float(iou8.compute().iou[1]) <= 0.005


def test_int8_file_is_quantised_and_smaller(quantised: Quantised) -> None:
    model = onnx.load(str(quantised.int8))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "no int8 weight tensors"
    # the UNet's 2x2 stride-2 ConvTranspose became a quantised 1x1 Conv: none stays fp32
    assert "ConvTranspose" not in ops
    conv_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Conv"}
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert conv_inputs <= dequantized, "a Conv reads an fp32 activation"
    # per-channel: the conv weights carry one scale per output channel
    assert any(
        len(t.dims) == 1 and t.dims[0] > 1 for t in model.graph.initializer if "scale" in t.name
    )
    assert quantised.int8.stat().st_size < 0.5 * quantised.fp32.stat().st_size


def test_metadata_survives_and_marks_int8(quantised: Quantised) -> None:
    fp32 = OnnxRunner(quantised.fp32, providers=["CPUExecutionProvider"])
    int8 = OnnxRunner(quantised.int8, providers=["CPUExecutionProvider"])
    marker = int8.metadata.pop(QUANTIZATION_KEY)
    # every catseg key is kept as it was (onnxruntime adds keys of its own)
    assert {key: int8.metadata.get(key) for key in fp32.metadata} == fp32.metadata
    assert QUANTIZATION_KEY not in fp32.metadata
    assert int8.config == fp32.config  # the record survives, read with the same checks
    assert int8.config.classes == ("_background_", "blob")
    assert marker["format"] == "int8"
    assert marker["per_channel"] is True
    assert marker["reduce_range"] is True  # 7-bit weights by default (no vpmaddubsw saturation)
    assert marker["method"] == "minmax"
    assert marker["calibration_images"] == len(quantised.calibration)
    seg = Segmenter.from_onnx(quantised.int8, providers=["CPUExecutionProvider"])
    assert seg.classes == ["_background_", "blob"]
    assert seg.mean == pytest.approx((0.4, 0.45, 0.5))
    assert seg.std == pytest.approx((0.25, 0.2, 0.3))


def test_calibration_matches_the_segmenter_preprocessing(tmp_path: Path) -> None:
    model = UNet(3, 1, init_features=4, depth=2).eval()
    model.describe(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    segmenter = Segmenter(
        model, classes=["_background_", "cat"], image_size=(24, 40), precision="fp32"
    )
    path = to_onnx(segmenter, tmp_path / "m.onnx")
    runner = OnnxRunner(path, providers=["CPUExecutionProvider"])
    images = [
        torch.randint(0, 256, (3, 37, 53), dtype=torch.uint8),
        torch.rand(3, 24, 40),
    ]
    reference = Segmenter.from_onnx(path, providers=["CPUExecutionProvider"])
    produced = list(_calibration_tensors(images, runner))
    assert [index for index, _ in produced] == [0, 1]
    for (_, got), image in zip(produced, images, strict=True):
        expected = reference._pipeline.prepare(image)
        assert got.shape == (1, 3, 24, 40)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_source_is_never_modified(quantised: Quantised, tmp_path: Path) -> None:
    before = hashlib.sha256(quantised.fp32.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="never overwrites src_onnx"):
        quantize_onnx(quantised.fp32, quantised.fp32, calibration_images=quantised.calibration)
    alias = tmp_path / "alias.onnx"
    alias.symlink_to(quantised.fp32)
    with pytest.raises(ConfigError, match="dst_onnx"):
        quantize_onnx(quantised.fp32, alias, calibration_images=quantised.calibration)
    assert hashlib.sha256(quantised.fp32.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"calibration_images": []}, "calibration_images must be a non-empty sequence"),
        ({"calibration_images": "photo.jpg"}, "calibration_images must be a non-empty"),
        ({"method": "mse"}, "method must be one of 'minmax', 'entropy', 'percentile'; got 'mse'"),
        ({"per_channel": 1}, "per_channel must be True or False, got 1"),
        ({"reduce_range": "no"}, "reduce_range must be True or False"),
        ({"preprocess": None}, "preprocess must be True or False"),
    ],
)
def test_bad_arguments_are_config_errors(
    quantised: Quantised, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    arguments: dict[str, object] = {"calibration_images": quantised.calibration, **kwargs}
    with pytest.raises(ConfigError, match=match):
        quantize_onnx(quantised.fp32, tmp_path / "out.onnx", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "out.onnx").exists()


def test_file_errors(quantised: Quantised, tmp_path: Path) -> None:
    images = quantised.calibration[:2]
    with pytest.raises(ConfigError, match=r"src_onnx must be a path \(str or os\.PathLike\)"):
        quantize_onnx(3, tmp_path / "o.onnx", calibration_images=images)  # type: ignore[arg-type]
    with pytest.raises(MissingFileError, match=r"missing\.onnx"):
        quantize_onnx(tmp_path / "missing.onnx", tmp_path / "o.onnx", calibration_images=images)
    with pytest.raises(CheckpointError, match="already quantised"):
        quantize_onnx(quantised.int8, tmp_path / "o.onnx", calibration_images=images)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match=r"calibration_images\[1\] cannot be read.*broken.jpg"):
        quantize_onnx(quantised.fp32, tmp_path / "o.onnx", calibration_images=[images[0], broken])
    assert not (tmp_path / "o.onnx").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_missing_extra_names_it(
    quantised: Quantised, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(OptionalDependencyError, match=r"pip install \"catseg\[onnx\]\""):
        quantize_onnx(quantised.fp32, tmp_path / "o.onnx", calibration_images=quantised.calibration)


_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from catseg.errors import CatsegError
    from catseg.export import quantize_onnx

    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30),) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (int(time.process_time()) + 60,) * 2)
    cpu = time.process_time()
    try:
        quantize_onnx(sys.argv[1], sys.argv[2], calibration_images=[torch.rand(3, 64, 64)])
        outcome = "written"
    except CatsegError as err:
        outcome = f"{type(err).__name__}: {err}"
    print(json.dumps({"outcome": outcome, "cpu": time.process_time() - cpu}))
    """
)


def test_int8_file_without_its_marker_is_refused_fast(quantised: Quantised, tmp_path: Path) -> None:
    # Before: with the `quantization` metadata entry removed, onnxruntime's quantiser
    # looped forever on the int8 graph. Now the graph itself is read: refused at once.
    model = onnx.load(str(quantised.int8))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != QUANTIZATION_KEY]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "stripped.onnx"))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "stripped.onnx"), str(tmp_path / "o.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(catseg.__file__).parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.splitlines()[-1])
    assert row["outcome"].startswith("CheckpointError: "), row
    assert (
        "stripped.onnx' is already quantised (it holds QuantizeLinear/DequantizeLinear"
        in (row["outcome"])
    )
    assert row["cpu"] < 2.0, row
    assert not (tmp_path / "o.onnx").exists()


def test_unwritable_destinations_are_named(quantised: Quantised, tmp_path: Path) -> None:
    images = quantised.calibration[:1]
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match=r"out is a folder; give a file name"):
        quantize_onnx(quantised.fp32, tmp_path / "out", calibration_images=images)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(ExportError, match=r"cannot write .*notes\.txt/o\.onnx: "):
        quantize_onnx(quantised.fp32, tmp_path / "notes.txt" / "o.onnx", calibration_images=images)
    if os.geteuid() != 0:  # root writes into read-only folders
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ExportError, match=r"cannot write .*ro/o\.onnx: Permission denied"):
            quantize_onnx(quantised.fp32, tmp_path / "ro" / "o.onnx", calibration_images=images)
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == ["notes.txt", "out", "ro"][: 3 if os.geteuid() != 0 else 2]
    )
