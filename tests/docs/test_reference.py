"""The documentation site builds strictly and documents the whole public API.

The site is built once per session with ``mkdocs build --strict`` into a temporary
folder. The tests then check that every name of ``catseg.__all__`` has its anchor on a
reference page (mkdocstrings gives each documented object ``id="<module>.<name>"``, the
module being the public one that defines it), that the API overview page links every
name, that each page of the nav exists and was rendered, that every image a page
shows exists (and is small), and that the search index was written.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

import catseg

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
MAX_IMAGE_BYTES = 300_000
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]*\bsrc=\"([^\"]+)\"")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with ``mkdocs build --strict`` (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    if proc.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return out


def public_modules() -> list[ModuleType]:
    """catseg's public modules (no leading underscore), one level deep, plus their public
    submodules listed in their ``__all__`` (e.g. ``catseg.data.transforms``)."""
    modules = []
    for info in pkgutil.iter_modules(catseg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"catseg.{info.name}")
        modules.append(module)
        for name in getattr(module, "__all__", ()):
            child = getattr(module, name, None)
            if isinstance(child, ModuleType):
                modules.append(child)
    return modules


def defining_path(name: str) -> str:
    """``module.name`` of the public module that exports ``catseg.<name>``.

    The module must list the name in its ``__all__`` and hold the very same object; when
    several do, the deepest (most specific) module wins.
    """
    obj = getattr(catseg, name)
    owners = [
        m.__name__
        for m in public_modules()
        if name in getattr(m, "__all__", ()) and getattr(m, name, None) is obj
    ]
    if not owners:
        raise AssertionError(f"catseg.{name} is not exported by any public catseg module")
    return f"{max(owners, key=lambda m: m.count('.'))}.{name}"


def top_level_names() -> list[str]:
    return [n for n in catseg.__all__ if n != "__version__"]


def nav_pages(nav: Any) -> Iterator[str]:
    """Every markdown path in an mkdocs nav (nested lists of single-key dicts)."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from nav_pages(value)


def load_nav() -> list[Any]:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = config.get("nav")
    assert isinstance(nav, list), "mkdocs.yml has no nav"
    return nav


def html_page(site: Path, page: str) -> Path:
    """Where mkdocs (use_directory_urls) writes a markdown page."""
    stem = page.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        return site / f"{stem}.html"
    return site / stem / "index.html"


def reference_html(site: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((site / "reference").rglob("*.html"))
    )


def test_defining_path_resolves_to_the_public_module() -> None:
    assert defining_path("DiceLoss") == "catseg.losses.DiceLoss"
    assert defining_path("ConfigError") == "catseg.errors.ConfigError"


@pytest.mark.slow
def test_every_public_name_is_rendered_on_a_reference_page(site: Path) -> None:
    html = reference_html(site)
    missing = [
        f"catseg.{name} (expected id={defining_path(name)!r})"
        for name in top_level_names()
        if f'id="{defining_path(name)}"' not in html
    ]
    assert not missing, "not rendered on any reference page:\n" + "\n".join(missing)


@pytest.mark.slow
def test_every_public_name_is_linked_from_the_api_overview(site: Path) -> None:
    overview = html_page(site, "reference/index.md").read_text(encoding="utf-8")
    missing = [name for name in top_level_names() if f'#{defining_path(name)}"' not in overview]
    assert not missing, f"docs/reference/index.md does not link: {missing}"


@pytest.mark.slow
def test_every_nav_page_exists_and_is_rendered(site: Path) -> None:
    pages = list(nav_pages(load_nav()))
    assert "index.md" in pages
    assert "reference/index.md" in pages
    assert len(pages) == len(set(pages)), "a page appears twice in the nav"
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"nav pages missing from docs/: {missing}"
    unrendered = [p for p in pages if not html_page(site, p).is_file()]
    assert not unrendered, f"nav pages not rendered: {unrendered}"


def test_every_reference_page_is_in_the_nav() -> None:
    pages = set(nav_pages(load_nav()))
    outside = sorted(str(p.relative_to(DOCS)) for p in (DOCS / "reference").glob("*.md"))
    assert [p for p in outside if p not in pages] == []


@pytest.mark.slow
def test_images_referenced_by_pages_exist_and_are_small(site: Path) -> None:
    problems = []
    found = 0
    for page in sorted(DOCS.rglob("*.md")):
        for match in IMAGE.finditer(page.read_text(encoding="utf-8")):
            target = match.group(1) or match.group(2)
            if re.match(r"^[a-z]+://", target):
                problems.append(f"{page.relative_to(DOCS)}: remote image {target}")
                continue
            found += 1
            path = (page.parent / target).resolve()
            if not path.is_file():
                problems.append(f"{page.relative_to(DOCS)}: {target} does not exist")
            elif path.stat().st_size > MAX_IMAGE_BYTES:
                problems.append(f"{target}: {path.stat().st_size} bytes > {MAX_IMAGE_BYTES}")
            elif not (site / path.relative_to(DOCS)).is_file():
                problems.append(f"{target} was not copied into the site")
    assert not problems, "\n".join(problems)
    assert found >= 1, "no page shows a picture (the home page should)"


@pytest.mark.slow
def test_search_index_is_built(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert "" in locations  # the home page
    assert any(loc.startswith("reference/") for loc in locations)
    assert any("DiceLoss" in doc.get("title", "") for doc in index["docs"])


@pytest.mark.slow
def test_no_sphinx_role_is_left_verbatim(site: Path) -> None:
    """docs/griffe_sphinx_roles.py turns ``:class:`X``` in docstrings into links or code."""
    role = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):")
    pages = [
        str(p.relative_to(site))
        for p in sorted((site / "reference").rglob("*.html"))
        if role.search(p.read_text(encoding="utf-8"))
    ]
    assert pages == []
    linked = html_page(site, "reference/models.md").read_text(encoding="utf-8")
    assert 'href="#catseg.models.Encoder"' in linked or "#catseg.models.Encoder" in linked


@pytest.mark.slow
def test_every_internal_link_and_image_of_the_site_resolves(site: Path) -> None:
    """What a browser follows: href/src of every page point at files that exist."""
    attr = re.compile(r'\b(?:href|src)="([^"#?]*)(?:[#?][^"]*)?"')
    broken = set()
    for page in site.rglob("*.html"):
        if page.name == "404.html":
            continue  # served from any depth, so its links are absolute
        for target in attr.findall(page.read_text(encoding="utf-8")):
            if not target or re.match(r"^(?:[a-z]+:|//)", target):
                continue  # same-page anchor, external or data: URL
            path = (page.parent / target).resolve()
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                broken.add(f"{page.relative_to(site)} -> {target}")
    assert sorted(broken) == []
