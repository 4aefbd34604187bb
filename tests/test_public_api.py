"""Guard on the public API: names, docstrings, and a light import."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import catseg

API_LIST = Path(__file__).with_name("public_api.txt")


def _checked_in_names() -> list[str]:
    lines = API_LIST.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_all_equals_checked_in_list() -> None:
    expected = _checked_in_names()
    assert len(expected) == len(set(expected)), "duplicate name in public_api.txt"
    assert sorted(catseg.__all__) == sorted(expected)


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in catseg.__all__:
        obj = getattr(catseg, name)
        if name == "__version__" or not (inspect.isclass(obj) or callable(obj)):
            continue
        doc = inspect.getdoc(obj)
        assert doc, f"catseg.{name} has no docstring"
        assert "Examples:" in doc, f"catseg.{name} docstring has no Examples: section"


def test_import_pulls_in_no_optional_dependency() -> None:
    # `import torch` itself imports tqdm (through torch.hub), so what matters is what
    # `import catseg` adds on top of torch.
    code = (
        "import sys, time\n"
        "import torch\n"
        "before = set(sys.modules)\n"
        "t0 = time.perf_counter()\n"
        "import catseg\n"
        "dt = time.perf_counter() - t0\n"
        "added = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "optional = {'tqdm', 'onnx', 'onnxruntime', 'onnxscript', 'torchmetrics',"
        " 'torchvision', 'hypothesis', 'mkdocs', 'timm', 'matplotlib', 'cv2'}\n"
        "print(sorted(added & optional)); print(dt)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert out[0] == "[]", f"optional modules imported by `import catseg`: {out[0]}"
    # Acceptance of the foundation issue: < 1 s beyond `import torch` (usually ~0.05 s).
    assert float(out[1]) < 1.0, f"import catseg took {out[1]} s beyond import torch"


def test_version_matches_distribution_metadata() -> None:
    from importlib.metadata import version

    assert version("catseg") == catseg.__version__
