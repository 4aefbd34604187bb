"""Segmenter.predict_folder: real cat photos, resume, failures, safety rules, sharding.

Run as a script under ``torch.distributed.run`` this file is the worker of
:func:`test_torchrun_two_processes_write_each_output_once`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catseg.data._inputs import Loaded
from catseg.errors import ConfigError, DataError
from catseg.models import UNet
from catseg.predict import FolderSummary, Segmenter, _folder


def _segmenter(image_size: tuple[int, int] | None = None) -> Segmenter:
    torch.manual_seed(0)
    model = UNet(3, 3, init_features=4, depth=2)
    return Segmenter(
        model, classes=["bg", "cat", "edge"], image_size=image_size, precision="fp32", batch_size=3
    )


def _photos(cats_voc: Path, root: Path) -> list[Path]:
    """6 real photos (2 in a subfolder, one with an upper-case extension) and a broken JPEG."""
    jpegs = sorted((cats_voc / "JPEGImages").glob("*.jpg"))[:6]
    (root / "sub").mkdir(parents=True)
    targets = [root / "a.jpg", root / "b.jpg", root / "c.JPG", root / "d.jpeg"]
    targets += [root / "sub" / "e.jpg", root / "sub" / "f.jpg"]
    for source, target in zip(jpegs, targets, strict=True):
        shutil.copyfile(source, target)
    (root / "broken.jpg").write_bytes(jpegs[0].read_bytes()[:3000])  # truncated
    (root / "notes.txt").write_text("not a photo")
    return targets


def _labels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "P"
        return np.asarray(image).copy()


@pytest.mark.parametrize("image_size", [None, (64, 64)])
def test_folder_masks_equal_predict_and_rerun_skips(
    cats_voc: Path, tmp_path: Path, image_size: tuple[int, int] | None
) -> None:
    src, dst = tmp_path / "photos", tmp_path / "masks"
    photos = _photos(cats_voc, src)
    seg = _segmenter(image_size)
    summary = seg.predict_folder(src, dst, num_workers=2)
    assert isinstance(summary, FolderSummary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.written = 0  # type: ignore[misc]
    assert (summary.written, summary.skipped, summary.total) == (6, 0, 7)
    assert [p.name for p, _ in summary.failed] == ["broken.jpg"]
    assert "broken.jpg" in summary.failed[0][1]
    assert "truncated" in summary.failed[0][1]
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert written == ["a.png", "b.png", "c.png", "d.png", "sub/e.png", "sub/f.png"]
    for photo in photos:
        expected = seg.predict(photo).mask.numpy()
        got = _labels(dst / photo.relative_to(src).with_suffix(".png"))
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert len({_labels(dst / w).tobytes() for w in written}) > 1  # not all one value
    mtimes = {w: (dst / w).stat().st_mtime_ns for w in written}

    again = seg.predict_folder(src, dst, num_workers=0)
    assert (again.written, again.skipped, len(again.failed)) == (0, 6, 1)
    assert {w: (dst / w).stat().st_mtime_ns for w in written} == mtimes


def test_on_error_raise_names_the_file(cats_voc: Path, tmp_path: Path) -> None:
    src = tmp_path / "photos"
    _photos(cats_voc, src)
    with pytest.raises(DataError, match=r"broken\.jpg"):
        _segmenter((32, 32)).predict_folder(src, tmp_path / "out", on_error="raise", num_workers=0)


def test_overlay_written_and_resumed(cats_voc: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "photos", tmp_path / "out"
    _photos(cats_voc, src)
    seg = _segmenter((32, 32))
    seg.predict_folder(src, dst, pattern="sub/*.jpg", num_workers=0)
    assert sorted(p.name for p in (dst / "sub").iterdir()) == ["e.png", "f.png"]
    (dst / "sub" / "e.png").unlink()
    kept = (dst / "sub" / "f.png").stat().st_mtime_ns
    summary = seg.predict_folder(src, dst, pattern="sub/*.jpg", overlay=True, num_workers=0)
    assert (summary.written, summary.skipped) == (2, 0)  # the overlays were missing
    assert (dst / "sub" / "f.png").stat().st_mtime_ns == kept  # an existing mask is kept
    names = sorted(p.name for p in (dst / "sub").iterdir())
    assert names == ["e.overlay.jpg", "e.png", "f.overlay.jpg", "f.png"]
    pred = seg.predict(src / "sub" / "f.jpg")
    with Image.open(dst / "sub" / "f.overlay.jpg") as image:
        assert image.size == pred.overlay().size
        diff = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(pred.overlay(), np.int16))
    assert diff.mean() < 3  # JPEG quality 90


def _tiny_folder(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20 + i, 16), (i * 40 % 255, 90, 30)).save(root / name)


@pytest.mark.parametrize("overlay", [False, True])
def test_files_catseg_did_not_write_are_kept_unless_overwrite(
    tmp_path: Path, overlay: bool
) -> None:
    """Issue 27: pointing dst at a folder of ground-truth masks replaced them with overlay=True."""
    src, dst = tmp_path / "s", tmp_path / "truth"
    _tiny_folder(src, ["a.jpg", "b.jpg"])
    dst.mkdir()
    (dst / "a.png").write_bytes(b"ground truth")
    seg = _segmenter((16, 16))
    summary = seg.predict_folder(src, dst, overlay=overlay, num_workers=0)
    assert (dst / "a.png").read_bytes() == b"ground truth"
    assert (summary.written, summary.skipped) == (2, 0) if overlay else (1, 1)
    assert (dst / "a.overlay.jpg").exists() == overlay
    again = seg.predict_folder(src, dst, overlay=overlay, num_workers=0)  # resumes: all done
    assert (again.written, again.skipped) == (0, 2)
    assert (dst / "a.png").read_bytes() == b"ground truth"
    redo = seg.predict_folder(src, dst, overlay=overlay, overwrite=True, num_workers=0)
    assert (redo.written, redo.skipped) == (2, 0)
    np.testing.assert_array_equal(_labels(dst / "a.png"), seg.predict(src / "a.jpg").mask.numpy())


def test_a_name_too_long_is_reported_and_the_others_written(tmp_path: Path) -> None:
    """Issue 27: a 251-character photo name stopped the whole run and wrote nothing."""
    src, dst = tmp_path / "s", tmp_path / "o"
    long = "x" * 247 + ".jpg"  # the mask name fits (251 bytes), the overlay's does not
    _tiny_folder(src, [long, "b.jpg"])
    summary = _segmenter((16, 16)).predict_folder(src, dst, overlay=True, num_workers=0)
    assert (summary.written, [p.name for p, _ in summary.failed]) == (1, [long])
    assert "too long" in summary.failed[0][1]
    assert sorted(p.name for p in dst.iterdir()) == ["b.overlay.jpg", "b.png", long[:-4] + ".png"]


def test_pattern_is_case_insensitive_and_tuple(tmp_path: Path) -> None:
    _tiny_folder(tmp_path / "s", ["A.PNG", "b.Jpg", "c.jpeg", "d/e.png", "d/f.jpg"])
    rels = _folder.list_photos(tmp_path / "s", ("*.png", "d/*.JPG"))
    assert [p.as_posix() for p in rels] == ["A.PNG", "d/f.jpg"]
    assert [p.as_posix() for p in _folder.list_photos(tmp_path / "s", "**/*.png")] == [
        "A.PNG",
        "d/e.png",
    ]


def test_dst_inside_src_refused_only_when_outputs_match(tmp_path: Path) -> None:
    src = tmp_path / "s"
    _tiny_folder(src, ["a.png", "b.jpg"])
    seg = _segmenter((16, 16))
    with pytest.raises(ConfigError, match="inside src"):
        seg.predict_folder(src, src / "masks", num_workers=0)  # default patterns match .png
    with pytest.raises(ConfigError, match="inside src"):
        seg.predict_folder(src, src, pattern="**/*.png", num_workers=0)
    with pytest.raises(ConfigError, match="inside src"):  # overlays are .jpg
        seg.predict_folder(src, src / "m", pattern="**/*.jpg", overlay=True, num_workers=0)
    summary = seg.predict_folder(src, src / "m", pattern="**/*.jpg", num_workers=0)
    assert (summary.written, summary.failed) == (1, ())
    again = seg.predict_folder(src, src / "m", pattern="**/*.jpg", num_workers=0)
    assert (again.written, again.skipped) == (0, 1)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links on this system")
def test_links_leaving_src_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tiny_folder(outside, ["secret.jpg", "deep/x.jpg"])
    src = tmp_path / "s"
    _tiny_folder(src, ["a.jpg", "inner/b.jpg"])
    (src / "link.jpg").symlink_to(outside / "secret.jpg")
    (src / "inside_link.jpg").symlink_to(src / "a.jpg")
    (src / "dirlink").symlink_to(outside / "deep", target_is_directory=True)
    summary = _segmenter((16, 16)).predict_folder(src, tmp_path / "out", num_workers=0)
    assert summary.written == 3  # a, inner/b and the link that stays inside
    assert [(p.name, "outside src" in r) for p, r in summary.failed] == [("link.jpg", True)]
    assert not (tmp_path / "out" / "link.png").exists()
    assert not (tmp_path / "out" / "dirlink").exists()  # folder links are not followed


def test_two_photos_one_output_is_a_failure(tmp_path: Path) -> None:
    src = tmp_path / "s"
    _tiny_folder(src, ["a.jpg", "a.png"])
    summary = _segmenter((16, 16)).predict_folder(src, tmp_path / "o", num_workers=0)
    assert summary.written == 1
    assert [(p.name, "already the output of a.jpg" in r) for p, r in summary.failed] == [
        ("a.png", True)
    ]


def test_files_variant(tmp_path: Path) -> None:
    src = tmp_path / "s"
    _tiny_folder(src, ["a.jpg", "b.jpg", "c/d.jpg"])
    seg = _segmenter((16, 16))
    summary = seg.predict_folder(
        src, tmp_path / "o", files=iter([src / "c" / "d.jpg", "a.jpg"]), num_workers=0
    )
    assert summary.written == 2
    assert sorted(p.name for p in (tmp_path / "o").rglob("*.png")) == ["a.png", "d.png"]
    for outside in (tmp_path / "x.jpg", "../x.jpg", "c/../../x.jpg"):
        with pytest.raises(ConfigError, match="under src"):
            seg.predict_folder(src, tmp_path / "o", files=[outside], num_workers=0)
    for files in (3, [src / "a.jpg", 3]):
        with pytest.raises(ConfigError, match=r"files must be None or an iterable of paths, got "):
            seg.predict_folder(src, tmp_path / "o", files=files, num_workers=0)  # type: ignore[arg-type]


def test_relative_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _tiny_folder(tmp_path / "s", ["a.jpg", "c/d.jpg"])
    seg = _segmenter((16, 16))
    assert seg.predict_folder("s", "o", num_workers=0).written == 2
    again = seg.predict_folder(Path("s"), "o2", files=["c/d.jpg"], num_workers=0)
    assert (again.written, (tmp_path / "o2" / "c" / "d.png").exists()) == (1, True)


def test_default_workers_use_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert _folder.default_workers(torch.device("cpu")) == 4
    assert _folder.default_workers(torch.device("cuda")) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert _folder.default_workers(torch.device("cpu")) == 0
    assert _folder.default_workers(torch.device("cuda")) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert _folder.default_workers(torch.device("cpu")) == 0


def test_default_writers_only_on_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert _folder.default_writers(torch.device("cpu")) == 0  # torch fills both cores
    assert _folder.default_writers(torch.device("cuda")) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert _folder.default_writers(torch.device("cpu")) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert _folder.default_writers(torch.device("cpu")) == 2
    assert _folder.free_cores(torch.device("cpu")) == 63


def test_background_writers_write_the_same_masks(
    cats_voc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_folder, "default_writers", lambda device: 2)
    src, dst = tmp_path / "photos", tmp_path / "masks"
    photos = _photos(cats_voc, src)
    seg = _segmenter((64, 64))
    summary = seg.predict_folder(src, dst, overlay=True, num_workers=0)
    assert (summary.written, len(summary.failed)) == (6, 1)
    for photo in photos:
        rel = photo.relative_to(src)
        np.testing.assert_array_equal(
            _labels(dst / rel.with_suffix(".png")), seg.predict(photo).mask.numpy()
        )
        with Image.open(dst / rel.with_suffix(".overlay.jpg")) as overlay:
            assert overlay.size == seg.predict(photo).image.size
    assert not [p for p in dst.rglob(".*.tmp")]
    assert seg.predict_folder(src, dst, overlay=True, num_workers=0).skipped == 6


def test_background_write_error_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_folder, "default_writers", lambda device: 2)
    src, dst = tmp_path / "s", tmp_path / "o"
    _tiny_folder(src, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])

    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _segmenter((16, 16)).predict_folder(src, dst, num_workers=0)
    assert [p for p in dst.rglob("*") if p.is_file()] == []  # no partial or temporary file


def test_progress_bar_runs(tmp_path: Path) -> None:
    src = tmp_path / "s"
    _tiny_folder(src, ["a.jpg", "b.jpg"])
    summary = _segmenter((16, 16)).predict_folder(src, tmp_path / "o", progress=True, num_workers=0)
    assert summary.written == 2


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "s", tmp_path / "o"
    _tiny_folder(src, ["a.jpg"])
    real_save = Image.Image.save

    def dying_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt  # the run is killed mid-write

    monkeypatch.setattr(Image.Image, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        _segmenter((16, 16)).predict_folder(src, dst, num_workers=0)
    assert list(dst.iterdir()) == []  # neither the PNG nor the temporary file
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert _segmenter((16, 16)).predict_folder(src, dst, num_workers=0).written == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"on_error": "ignore"}, "on_error"),
        ({"num_workers": -1}, "num_workers"),
        ({"pattern": 5}, "pattern"),
        ({"pattern": ()}, "pattern"),
        ({"overlay": "yes"}, "overlay"),
        ({"overwrite": 1}, "overwrite"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _segmenter().predict_folder(tmp_path, tmp_path / "o", **kwargs)  # type: ignore[arg-type]


def test_missing_src(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _segmenter().predict_folder(tmp_path / "nowhere", tmp_path / "o")


def test_buckets_group_sizes_and_bound_memory() -> None:
    sizes = [(3, 5, 5), (3, 6, 6)] * 20 + [(3, 7, 7)]
    items = [_folder._Decoded(Path(str(i)), Loaded(torch.zeros(s, dtype=torch.uint8), s[1:], None),
                              None) for i, s in enumerate(sizes)]  # fmt: skip
    chunks = [items[i : i + 4] for i in range(0, len(items), 4)]
    seen: list[str] = []
    consumed = 0

    def feed() -> object:
        nonlocal consumed
        for chunk in chunks:
            consumed += len(chunk)
            yield chunk

    for batch in _folder._buckets(feed(), 4, by_size=True):  # type: ignore[arg-type]
        assert len(batch) <= 4
        assert len({tuple(b.loaded.pixels.shape) for b in batch}) == 1  # type: ignore[union-attr]
        seen += [b.rel.name for b in batch]
        assert consumed - len(seen) <= 4 * 4  # never more than 4 batches held back
    assert sorted(seen, key=int) == [str(i) for i in range(len(sizes))]


def test_shards_are_disjoint_and_cover_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "s", tmp_path / "o"
    _tiny_folder(src, [f"{i:02d}.jpg" for i in range(7)] + ["z/broken.jpg"])
    (src / "z" / "broken.jpg").write_bytes(b"nope")
    seg = _segmenter((16, 16))
    summaries = []
    for rank in (0, 1):
        monkeypatch.setattr(_folder, "_distributed", lambda rank=rank: (rank, 2))
        summaries.append(seg.predict_folder(src, dst, num_workers=0))
    assert [(s.written, len(s.failed), s.rank, s.world_size) for s in summaries] == [
        (4, 0, 0, 2),
        (3, 1, 1, 2),
    ]
    assert len(list(dst.rglob("*.png"))) == 7


def _worker(src: Path, dst: Path, log: Path) -> None:
    """One torchrun process: predict the folder, logging every file it writes."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    writes: list[str] = []
    real = _folder.atomic_write

    def logging_write(target: Path, write: Callable[[Path], object], *, replace: bool) -> Path:
        writes.append(target.relative_to(dst.resolve()).as_posix())
        return real(target, write, replace=replace)

    _folder.atomic_write = logging_write  # type: ignore[assignment]
    summary = _segmenter((32, 32)).predict_folder(src, dst, num_workers=1)
    record = {"writes": writes, "written": summary.written, "skipped": summary.skipped,
              "failed": [p.name for p, _ in summary.failed], "rank": summary.rank,
              "world_size": summary.world_size}  # fmt: skip
    (log / f"rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    dist.barrier()  # every process here first: gloo aborts a peer still connected
    dist.destroy_process_group()


@pytest.mark.slow
def test_torchrun_two_processes_write_each_output_once(cats_voc: Path, tmp_path: Path) -> None:
    src, dst, log = tmp_path / "photos", tmp_path / "masks", tmp_path / "log"
    log.mkdir()
    _photos(cats_voc, src)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        str(Path(__file__).resolve()), str(src), str(dst), str(log),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((log / f"rank{r}.json").read_text()) for r in (0, 1)]
    writes = ranks[0]["writes"] + ranks[1]["writes"]
    expected = ["a.png", "b.png", "c.png", "d.png", "sub/e.png", "sub/f.png"]
    assert sorted(writes) == expected  # every output, each exactly once
    assert not set(ranks[0]["writes"]) & set(ranks[1]["writes"])
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert sum(r["written"] for r in ranks) == 6
    assert ranks[0]["failed"] + ranks[1]["failed"] == ["broken.jpg"]
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png")) == expected
    seg = _segmenter((32, 32))
    for name in expected:  # the sharded masks equal predict()
        photo = next(src.glob(str(Path(name).with_suffix(".*"))))
        np.testing.assert_array_equal(_labels(dst / name), seg.predict(photo).mask.numpy())


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
