"""Every ``python`` code block in the docs and the README runs against the current code.

Blocks of one page run in order in one namespace (like a notebook), in a temporary
working directory. A block preceded by the line ``<!-- docs-test: skip -->`` is shown
but not run (used only for commands that need a GPU, several processes or hours).
The environment variable ``CATSEG_SHARED_DATA`` is set for the blocks so that pages
can use the real cat photos.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

DOCS = REPO_ROOT / "docs"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
SKIP_MARK = "<!-- docs-test: skip -->"


def python_blocks(text: str) -> list[str]:
    """The runnable python blocks of a markdown text, in order."""
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip().split()
        if not info or info[0] not in {"python", "py"}:
            continue
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == SKIP_MARK:
            continue
        indent = match.group("indent")
        body = "\n".join(line.removeprefix(indent) for line in match.group("body").splitlines())
        blocks.append(body)
    return blocks


PAGES = sorted(
    p
    for p in [*DOCS.rglob("*.md"), REPO_ROOT / "README.md"]
    if python_blocks(p.read_text(encoding="utf-8"))
)


def test_fence_parser_finds_blocks_and_honours_skip() -> None:
    text = (
        "a\n```python\nx = 1\n```\n<!-- docs-test: skip -->\n"
        "```python\ny = 2\n```\n```bash\nls\n```\n"
    )
    assert python_blocks(text) == ["x = 1"]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO_ROOT)) for p in PAGES])
def test_docs_page_code_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATSEG_SHARED_DATA", str(shared_data))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(python_blocks(page.read_text(encoding="utf-8"))):
        code = compile(block, f"{page.relative_to(REPO_ROOT)} (block {index + 1})", "exec")
        exec(code, namespace)  # running our own docs is the point
    assert os.getcwd() == str(tmp_path)
