"""The examples as a new user runs them: data found like the tests, outputs in one folder.

Short runs (a few epochs at a small size) are marked slow; the data-path rules, the
``--help`` texts and the resume guard of ``examples/cats.py`` are checked in-process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO_ROOT, shared_data_root

EXAMPLES = REPO_ROOT / "examples"
SCRIPTS = ["quickstart.py", "cats.py", "labelme_workflow.py"]


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``examples/<name>.py`` (with ``examples/`` on the path, as ``python`` puts it)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run an example as ``python examples/<script> ...``; its output, or a failure."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_examples_find_the_data_like_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load("_data", monkeypatch)
    monkeypatch.setenv("CATSEG_SHARED_DATA", str(tmp_path))
    assert data.shared_data_root() == shared_data_root() == tmp_path
    assert data.default_data("cats-voc") == tmp_path / "cats-voc"

    monkeypatch.setenv("CATSEG_SHARED_DATA", str(tmp_path / "missing"))
    assert shared_data_root() is None
    with pytest.raises(SystemExit, match=r"CATSEG_SHARED_DATA=.*missing is not a folder"):
        data.shared_data_root()

    monkeypatch.delenv("CATSEG_SHARED_DATA")
    assert data.shared_data_root() == shared_data_root()  # ../shared/data or None in both


def test_missing_data_tells_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load("_data", monkeypatch)
    for path in (None, tmp_path / "nowhere"):
        with pytest.raises(SystemExit) as exc:
            data.require_data(path, "cats-voc")
        message = str(exc.value)
        assert "--data DIR" in message
        assert "CATSEG_SHARED_DATA=" in message
        assert "../shared/data" in message
        assert "README.md" in message


def test_outputs_default_to_the_ignored_outputs_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load("_data", monkeypatch)
    assert data.output_dir("cats") == REPO_ROOT / "outputs" / "cats"
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/outputs/" in ignored


@pytest.mark.parametrize("name", ["quickstart", "cats", "labelme_workflow", "ddp_train"])
def test_help_shows_the_docstring_and_every_default(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(name, monkeypatch)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exc:
        module.main()
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert module.__doc__.splitlines()[0] in text
    options = [line for line in text.splitlines() if line.strip().startswith("--")]
    assert "--out OUT" in text
    assert "--data" in text
    assert "outputs" in text  # the default output folder is shown
    assert len(options) >= 3
    assert "(default: None)" not in text


def test_cats_refuses_to_continue_a_run_with_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cats = load("cats", monkeypatch)
    settings = {"data": "/data/cats-voc", "epochs": 80}
    assert cats.check_resume(tmp_path, settings, fresh=False) is False  # nothing to resume
    assert json.loads((tmp_path / "run.json").read_text()) == settings
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"a finished epoch")

    assert cats.check_resume(tmp_path, settings, fresh=False) is True  # same settings
    with pytest.raises(SystemExit, match=r"epochs 80 -> 5.*--fresh") as exc:
        cats.check_resume(tmp_path, {**settings, "epochs": 5}, fresh=False)
    assert "another --out" in str(exc.value)
    assert (tmp_path / "checkpoints" / "last.pt").is_file()  # nothing deleted

    assert cats.check_resume(tmp_path, {**settings, "epochs": 5}, fresh=True) is False
    assert not (tmp_path / "checkpoints").exists()
    assert json.loads((tmp_path / "run.json").read_text())["epochs"] == 5
    assert "--fresh: deleted" in capsys.readouterr().out


@pytest.mark.slow
def test_quickstart_writes_only_into_its_output_folder(tmp_path: Path) -> None:
    work, temp, out = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "out"
    work.mkdir()
    temp.mkdir()
    text = run(
        "quickstart.py", "--epochs", "2", "--out", str(out), cwd=work, env={"TMPDIR": str(temp)}
    )
    assert "val mIoU" in text
    assert {p.name for p in out.iterdir()} == {"checkpoints", "mask.png", "overlay.png"}
    assert list(work.iterdir()) == []  # nothing in the current folder
    # the synthetic data folder was removed (torch may keep its own inductor cache there)
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor")] == []
    assert text.count("epoch 1/2") == 1  # one line per epoch, no table repeating it


@pytest.mark.slow
def test_labelme_workflow_learns_the_annotations(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "out"
    text = run(
        "labelme_workflow.py",
        *("--epochs", "3", "--size", "32", "--out", str(out)),
        cwd=tmp_path,
        env={"CATSEG_SHARED_DATA": str(shared_data)},
    )
    assert "measured on the same photos" in text
    assert "mIoU on the training photos at their own size" in text
    ids = ["2011_000003", "2011_000006", "2011_000025"]
    assert {p.name for p in out.glob("overlay_*.png")} == {f"overlay_{i}.png" for i in ids}
