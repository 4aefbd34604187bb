"""Griffe extension for the docs build: render Sphinx roles of catseg docstrings as links.

catseg's docstrings cross-reference with Sphinx roles (``:class:`Segmenter```,
``:func:`~catseg.metrics.mean_iou```, ``:meth:`compute```), which read well in
``help()`` and IDEs. mkdocstrings renders Markdown, where such a role would show up
verbatim. This extension rewrites each role, before rendering, into an *optional*
mkdocs-autorefs reference: a link to the object's anchor in the reference when it is
documented there, plain code otherwise (never a build warning).

Candidates tried for a role target ``T`` in a docstring of object ``O``:

* ``T`` starting with ``catseg.``: ``T`` itself, then ``T`` with private (``_x``) path
  parts removed (``catseg.data._io.open_image`` → ``catseg.data.open_image``).
* a member of the class whose docstring it is: that member, then the name in the
  top-level catseg module (``catseg.data`` for ``catseg.data.voc``);
* a name imported into the module: the public path of what it was imported from;
* otherwise: ``T`` in ``O``'s module (private parts removed), then in the top-level
  catseg module. Targets in other libraries (``torch.load``) stay plain code.

A leading ``~`` shows only the last path component, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

EXTERNAL = {"torch", "numpy", "np", "PIL", "pathlib", "os", "typing", "collections", "onnx"}
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")


def public(path: str) -> str:
    """``path`` without its private components (``catseg.x._y.Z`` → ``catseg.x.Z``)."""
    return ".".join(part for part in path.split(".") if not part.startswith("_"))


def class_members(cls: griffe.Object) -> set[str]:
    """Names of the members of ``cls``, inherited ones included when they resolve."""
    try:
        return set(cls.all_members)
    except griffe.AliasResolutionError:
        return set(cls.members)


def candidates(target: str, obj: griffe.Object) -> tuple[str, str]:
    """Two identifiers to try for ``target`` written in the docstring of ``obj``."""
    if target.startswith("catseg."):
        return target, public(target)
    module = public(obj.module.path)
    top = ".".join(module.split(".")[:2])  # catseg.data for catseg.data.voc
    cls = obj if obj.is_class else (obj.parent if obj.parent and obj.parent.is_class else None)
    if cls is not None and target.split(".")[0] in class_members(cls):
        return f"{module}.{cls.name}.{target}", f"{top}.{target}"
    member = obj.module.members.get(target.split(".")[0])
    if isinstance(member, griffe.Alias):  # a re-export, e.g. in catseg/__init__.py
        return public(f"{member.target_path}{target[len(member.name) :]}"), f"{top}.{target}"
    return f"{module}.{target}", f"{top}.{target}"


def rewrite(text: str, obj: griffe.Object) -> str:
    """``text`` with every Sphinx role replaced by an optional autorefs reference."""

    def replace(match: re.Match[str]) -> str:
        raw = " ".join(match.group("target").split()).lstrip("!")
        explicit = re.fullmatch(r"(?P<title>.*?)\s*<(?P<target>[^>]+)>", raw)
        if explicit:  # Sphinx's "title <target>" form
            target = explicit.group("target").lstrip("~").removesuffix("()")
            shown = explicit.group("title")
        else:
            short = raw.startswith("~")
            target = raw.lstrip("~").removesuffix("()")
            shown = target.rsplit(".", 1)[-1] if short else target
            if match.group(0).startswith((":func:", ":meth:", ":py:func:", ":py:meth:")):
                shown += "()"
        if not target.startswith("catseg.") and target.split(".")[0] in EXTERNAL:
            return f"<code>{shown}</code>"
        first, second = candidates(target, obj)
        slug = f' slug="{second}"' if second != first else ""
        return f'<autoref identifier="{first}"{slug} optional><code>{shown}</code></autoref>'

    return ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is fully loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
            stack.extend(m for m in obj.members.values() if not isinstance(m, griffe.Alias))
