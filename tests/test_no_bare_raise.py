"""Nothing in ``src/catseg`` raises a bare builtin exception (issue 20, one error tree).

Every ``raise`` in the package is read with :mod:`ast`. A raise of a builtin exception
class (``ValueError``, ``IndexError``, ``NotImplementedError`` ...) fails the test: where a
Python protocol needs a builtin type, the catseg error derives from it (see
``docs/contributing.md``, "Exceptions that a Python protocol requires"). Doctest examples
are text, not code, and are not read.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "catseg"

BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc
    if isinstance(exc, ast.Call):
        exc = exc.func
    return exc.id if isinstance(exc, ast.Name) else None


def bare_raises(root: Path) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise):
                name = _raised_name(node)
                if name in BUILTIN_EXCEPTIONS:
                    found.append((path.relative_to(root).as_posix(), node.lineno, name))
    return sorted(found)


def test_no_bare_builtin_raise() -> None:
    found = [f"{file}:{line}: raise {name}" for file, line, name in bare_raises(SRC)]
    assert not found, "raise a catseg error (catseg.errors) instead:\n" + "\n".join(found)


def test_the_guard_sees_a_bare_raise(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "def f(x):\n    if x:\n        raise ValueError(x)\n    raise NotImplementedError\n"
        "def g():\n    raise ConfigError('fine')\n"
    )
    assert bare_raises(tmp_path) == [("m.py", 3, "ValueError"), ("m.py", 4, "NotImplementedError")]
