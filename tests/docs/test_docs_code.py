"""Every ``python`` code block in the docs and the README runs against the current code.

Blocks of one page run in order in one namespace (like a notebook), in a temporary
working directory. A block preceded by the line ``<!-- docs-test: skip -->`` is shown
but not run (used only for commands that need a GPU, several processes or hours).
Pages that use the real cat photos (their code names ``CATSEG_SHARED_DATA``) run as a
new user runs them, by the README's rule without that variable: from a folder beside
``shared/data`` (a link to the folder found by ``tests/conftest.py``); they skip (saying
how to get the data) without it. Every other page runs without the data.
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


def test_pages_that_use_the_shared_data_say_so() -> None:
    assert needs_shared_data('```python\nos.environ.get("CATSEG_SHARED_DATA")\n```\n')
    assert not needs_shared_data("CATSEG_SHARED_DATA in prose\n```python\nx = 1\n```\n")
    assert needs_shared_data((REPO_ROOT / "README.md").read_text(encoding="utf-8"))


def test_pages_find_the_shared_data_by_the_readme_rule() -> None:
    # os.environ["CATSEG_SHARED_DATA"] fails with KeyError under ../shared/data
    for page in PAGES:
        for block in python_blocks(page.read_text(encoding="utf-8")):
            for use in re.findall(r'environ\S*"CATSEG_SHARED_DATA"[^)\]]*', block):
                assert use == 'environ.get("CATSEG_SHARED_DATA", "../shared/data"', page.name


def needs_shared_data(text: str) -> bool:
    """Whether a page's code uses the shared data (it names ``CATSEG_SHARED_DATA``)."""
    return any("CATSEG_SHARED_DATA" in block for block in python_blocks(text))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO_ROOT)) for p in PAGES])
def test_docs_page_code_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    text = page.read_text(encoding="utf-8")
    work = tmp_path / "catseg"  # the checkout's place: the data is ../shared/data
    work.mkdir()
    if needs_shared_data(text):
        shared_data = request.getfixturevalue("shared_data")  # skips, saying how to get it
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(shared_data, target_is_directory=True)
    monkeypatch.delenv("CATSEG_SHARED_DATA", raising=False)
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(python_blocks(text)):
        code = compile(block, f"{page.relative_to(REPO_ROOT)} (block {index + 1})", "exec")
        exec(code, namespace)  # running our own docs is the point
    assert os.getcwd() == str(work)
