from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from catseg.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from catseg.errors import CheckpointError, ConfigError, MissingFileError
from catseg.models import UNet

RECORD: dict[str, Any] = {
    "classes": ["_background_", "cat"],
    "image_size": (32, 48),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "threshold": 0.4,
}


def tiny(num_classes: int = 1) -> UNet:
    return UNet(3, num_classes, init_features=4, depth=2)


def trained_tiny() -> UNet:
    """A tiny UNet (its record described) whose BatchNorm statistics and weights moved."""
    model = tiny().describe(**RECORD)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        loss = model(torch.rand(2, 3, 16, 16)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    model = trained_tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 8, 8)).sum().backward()
    opt.step()
    training_state: dict[str, Any] = {
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "best": float("inf"),
    }
    out = save_checkpoint(
        tmp_path / "nested" / "ck.pt",
        model,
        extra={"notes": "hello", "scores": [0.5, 0.75], "t": torch.arange(3)},
        training_state=training_state,
    )
    assert out == tmp_path / "nested" / "ck.pt"
    assert [p.name for p in out.parent.iterdir()] == ["ck.pt"]  # no temp file left
    ckpt = load_checkpoint(out)
    assert ckpt.format_version == FORMAT_VERSION == 1
    assert ckpt.catseg_version == __import__("catseg").__version__
    assert ckpt.config.classes == ("_background_", "cat")
    assert ckpt.config.image_size == (32, 48)
    assert ckpt.config.threshold == 0.4
    assert ckpt.config.mode == "binary"
    assert ckpt.config.preprocessing is not None
    assert ckpt.config.preprocessing.mean == pytest.approx(RECORD["mean"])
    assert ckpt.config.preprocessing.std == pytest.approx(RECORD["std"])
    assert ckpt.config == model.config
    assert ckpt.extra["notes"] == "hello"
    assert torch.equal(ckpt.extra["t"], torch.arange(3))
    assert ckpt.training_state is not None
    assert ckpt.training_state["epoch"] == 3
    assert torch.equal(ckpt.training_state["torch_rng"], training_state["torch_rng"])
    assert ckpt.training_state["python_rng"] == random.getstate()
    restored_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    restored_opt.load_state_dict(ckpt.training_state["optimizer"])
    exp_avg = opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(restored_opt.state_dict()["state"][0]["exp_avg"], exp_avg)

    rebuilt = ckpt.build_model()
    assert not rebuilt.training
    assert rebuilt.config == model.config
    pairs = zip(rebuilt.state_dict().items(), model.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name
    x = torch.rand(2, 3, 21, 30)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_saving_does_not_touch_the_model(tmp_path: Path) -> None:
    model = trained_tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = model.config
    save_checkpoint(tmp_path / "a.pt", model)
    assert model.training
    assert model.config is config
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_default_model_and_multiclass(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", tiny(num_classes=3))  # nothing described
    ckpt = load_checkpoint(tmp_path / "m.pt", map_location="cpu")
    assert ckpt.config.image_size is None
    assert ckpt.config.classes is None
    assert ckpt.config.class_names == ("class_0", "class_1", "class_2")
    assert ckpt.config.mode == "multiclass"
    assert ckpt.config.preprocessing is None
    assert ckpt.extra == {}
    assert ckpt.training_state is None
    assert ckpt.build_model().num_classes == 3


def test_wrapped_models_are_unwrapped(tmp_path: Path) -> None:
    model = tiny()
    save_checkpoint(tmp_path / "dp.pt", nn.DataParallel(model))
    keys = list(load_checkpoint(tmp_path / "dp.pt").state_dict)
    assert keys == list(model.state_dict())
    assert not any(k.startswith("module.") for k in keys)


def test_fused_model_is_refused(tmp_path: Path) -> None:
    fused = trained_tiny().fuse_for_inference()
    with pytest.raises(CheckpointError, match=r"fuse_for_inference\(\).*save the\s+original"):
        save_checkpoint(tmp_path / "f.pt", fused)
    assert not (tmp_path / "f.pt").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": ["cat"]}, r"classes has 1 names but a binary \(1-logit\) model needs 2"),
        ({"classes": "cat"}, "classes must be a list of class names, got 'cat'"),
        ({"classes": ["bg", "bg"]}, "classes must be distinct, got 'bg' twice"),
        ({"mean": (0.5, 0.5, 0.5)}, r"give mean and std together"),
        (
            {"mean": (0.5, 0.5), "std": (1.0, 1.0)},
            r"preprocessing has 2 channels .* but the model has in_channels=3",
        ),
        (
            {"mean": (0.5,) * 3, "std": (1.0, 0.0, 1.0)},
            r"std\[1\] must be a finite number in \(0.0, inf\], got 0.0",
        ),
        ({"mean": (0.5, float("nan"), 0.5), "std": (1,) * 3}, r"mean\[1\] must be a finite"),
        ({"image_size": (32, 0)}, r"image_size must be an int or \(height, width\) of positive"),
        ({"threshold": 1.5}, r"threshold must be a finite number in \(0.0, 1.0\), got 1.5"),
        ({"mode": "multiclass"}, r"mode 'multiclass' needs >= 2 logits, but num_classes is 1"),
    ],
)
def test_bad_record_is_refused_where_it_is_stated(changes: dict[str, Any], message: str) -> None:
    model = tiny()
    with pytest.raises(ConfigError, match=message):
        model.describe(**changes)
    assert model.config == tiny().config  # nothing recorded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"extra": {"a": np.zeros(2)}}, r"extra\['a'\] is a numpy.ndarray"),
        ({"training_state": {"x": [1, object()]}}, r"training_state\['x'\]\[1\] is a builtins"),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        save_checkpoint(tmp_path / "x.pt", tiny(), **changes)
    assert list(tmp_path.iterdir()) == []


def test_non_unet_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"saves catseg\.models\.UNet models, got Conv2d"):
        save_checkpoint(tmp_path / "x.pt", nn.Conv2d(3, 1, 1))


class _Payload:
    """Unpickling this would run code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    good = tmp_path / "good.pt"
    save_checkpoint(good, tiny())
    payload = torch.load(good, weights_only=True)
    payload["extra"] = {"x": _Payload(marker)}
    torch.save(payload, evil)
    with pytest.raises(CheckpointError, match=r"refused by the safe loader \(nothing in it"):
        load_checkpoint(evil)
    assert not marker.exists()
    # The payload is real: an unsafe load does run it.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_whole_model_pickle_is_refused(tmp_path: Path) -> None:
    # The tutorial's torch.save(model): a pickle of classes, not a catseg checkpoint.
    torch.save(tiny(), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="refused by the safe loader"):
        load_checkpoint(tmp_path / "model.pt")


def test_newer_format_version(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", tiny())
    payload = torch.load(tmp_path / "ck.pt", weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    payload["catseg_version"] = "9.0.0"
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(
        CheckpointError, match=r"format version 2 \(written by catseg 9.0.0\).*up to 1: upgrade"
    ):
        load_checkpoint(tmp_path / "new.pt")


def test_truncated_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", tiny())
    data = (tmp_path / "ck.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_non_catseg_files(tmp_path: Path) -> None:
    (tmp_path / "random.bin").write_bytes(os.urandom(64) + b"x")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(tiny().state_dict(), tmp_path / "sd.pt")
    torch.save({"epoch": 1}, tmp_path / "dict.pt")
    with pytest.raises(CheckpointError, match=r"random.bin is not a catseg checkpoint: .*zip"):
        load_checkpoint(tmp_path / "random.bin")
    with pytest.raises(CheckpointError, match=r"empty.pt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match=r"holds a plain state_dict \(\d+ tensors"):
        load_checkpoint(tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match=r"dict with keys \['epoch'\] but no 'format'"):
        load_checkpoint(tmp_path / "dict.pt")
    with pytest.raises(MissingFileError, match=r"checkpoint not found: .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_mismatched_weights_name_keys_and_shapes(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", tiny())
    payload = torch.load(tmp_path / "ck.pt", weights_only=True)
    state = payload["state_dict"]
    dropped = next(iter(state))
    del state[dropped]
    resized = next(k for k in state if k.endswith("weight") and state[k].ndim == 4)
    state[resized] = torch.zeros(1, 1, 1, 1)
    state["bogus.weight"] = torch.zeros(1)
    torch.save(payload, tmp_path / "bad.pt")
    ckpt = load_checkpoint(tmp_path / "bad.pt")  # reading works; rebuilding does not
    pattern = (
        rf"1 missing \(first: {dropped}\), 1 unexpected \(first: bogus.weight\), "
        rf"1 with other shapes \(first: {resized}: file \(1, 1, 1, 1\) vs model"
    )
    with pytest.raises(CheckpointError, match=pattern):
        ckpt.build_model()


def test_config_that_cannot_be_rebuilt(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck.pt", tiny())
    payload = torch.load(tmp_path / "ck.pt", weights_only=True)
    payload["model_config"].update(encoder="no_such_encoder", init_features=32, depth=4)
    torch.save(payload, tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match=r"cannot be rebuilt.*no_such_encoder"):
        load_checkpoint(tmp_path / "enc.pt").build_model()


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ck.pt"
    old = trained_tiny()
    save_checkpoint(target, old)
    old_bytes = target.read_bytes()
    real_save = torch.save

    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, tiny())
    monkeypatch.setattr(torch, "save", real_save)
    assert target.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # temp file removed
    load_checkpoint(target).build_model()


_KILL_WRITER = textwrap.dedent(
    """
    import sys, torch
    from catseg.checkpoint import save_checkpoint
    from catseg.models import UNet
    model = UNet(3, 1, init_features=4, depth=2)
    big = {"blob": torch.rand(48 * 1024 * 1024 // 4)}  # 48 MB of training state
    print("ready", flush=True)
    while True:
        save_checkpoint(sys.argv[1], model, training_state=big)
    """
)


def _partial_temp_file(folder: Path) -> bool:
    """Whether *folder* holds a temp file with over 1 MB written (it may vanish meanwhile)."""
    for path in folder.iterdir():
        if path.name.endswith(".tmp"):
            try:
                if path.stat().st_size > 1_000_000:
                    return True
            except FileNotFoundError:  # renamed into place between iterdir() and stat()
                pass
    return False


@pytest.mark.slow
def test_killed_writer_leaves_the_old_file_loadable(tmp_path: Path) -> None:
    target = tmp_path / "ck.pt"
    save_checkpoint(target, trained_tiny())
    old_bytes = target.read_bytes()
    with subprocess.Popen(
        [sys.executable, "-c", _KILL_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            # Kill as soon as the temp file holds part of the 48 MB: mid-write.
            while not _partial_temp_file(tmp_path):
                assert time.monotonic() < deadline, "the writer never started a save"
                time.sleep(0.001)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Either the old checkpoint or a complete new one; never a broken file.
    ckpt = load_checkpoint(target)
    ckpt.build_model()
    if ckpt.training_state is None:
        assert target.read_bytes() == old_bytes
    else:
        assert ckpt.training_state["blob"].numel() == 12 * 1024 * 1024
