"""The rooms of ``src/catseg`` import one way: a lower room never imports a higher one.

The graph below is the design (``docs/contributing.md``, "Rooms and layers"). Every import
in ``src/catseg`` is read with :mod:`ast`, lazy imports inside functions and
``TYPE_CHECKING`` blocks included, and each must point at a room allowed here. A new edge
is a design decision: add it to :data:`ALLOWED` (and to the contributing page) only if it
points downward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "catseg"

# Layer of each room; a room may import only rooms of a strictly lower layer, and of those
# only the ones listed in ALLOWED.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_version": 0,
    "_bounds": 1,
    "_files": 1,
    "_validation": 2,
    "_runtime": 2,
    "_modules": 2,
    "visualize": 3,
    "losses": 3,
    "metrics": 3,
    "models": 3,
    "data": 4,
    "checkpoint": 5,
    "export": 5,
    "training": 6,
    "hub": 7,
    "predict": 8,
    "__init__": 9,
}

_CORE = {"errors", "_validation"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "_validation": {"errors", "_bounds"},
    "_runtime": {"errors"},
    "_modules": {"errors"},
    "_bounds": {"errors"},
    "_files": {"errors"},
    "visualize": _CORE,
    "losses": _CORE,
    "metrics": _CORE,
    "models": _CORE | {"_bounds"},
    "data": _CORE | {"_bounds", "visualize"},
    "checkpoint": _CORE | {"_bounds", "_files", "_modules", "_runtime", "_version", "models"},
    "export": _CORE | {"_bounds", "_files", "_runtime", "_version", "data", "models"},
    # predict -> hub: lazy, in Segmenter.from_pretrained / save_pretrained only
    "predict": _CORE
    | {"_bounds", "_files", "_modules", "_runtime", "checkpoint", "data", "export", "hub"}
    | {"models", "visualize"},
    "hub": _CORE
    | {"_bounds", "_files", "_modules", "_runtime", "_version", "checkpoint", "metrics"}
    | {"models"}
    | {"training", "visualize"},
    "training": _CORE | {"_modules", "_runtime", "checkpoint", "data", "metrics", "models"},
    "__init__": set(LAYERS) - {"__init__"},
}


def _room(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _type_only_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks: imports there exist for annotations only."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imported_rooms(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, room)`` for every run-time ``catseg`` import; ``"catseg"`` for the root."""
    found: list[tuple[int, str]] = []
    type_only = _type_only_lines(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "catseg":
                    found.append((node.lineno, parts[1] if len(parts) > 1 else "catseg"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "catseg":
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # from catseg import _validation (a room) or Segmenter (the root)
                for alias in node.names:
                    name = alias.name if alias.name in LAYERS else "catseg"
                    found.append((node.lineno, name))
    return found


def _edges() -> list[tuple[str, str, str]]:
    """``(room, imported room, "file:line")`` for every import between two rooms."""
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        room = _room(path)
        for line, target in _imported_rooms(ast.parse(path.read_text(encoding="utf-8"))):
            if target != room:
                edges.append((room, target, f"{path.relative_to(SRC.parent)}:{line}"))
    return edges


def test_every_room_has_a_layer() -> None:
    rooms = {_room(path) for path in SRC.rglob("*.py")}
    assert rooms <= set(LAYERS), f"rooms without a layer: {sorted(rooms - set(LAYERS))}"


def test_allowed_graph_points_downward() -> None:
    for room, targets in ALLOWED.items():
        for target in targets:
            assert LAYERS[target] < LAYERS[room], f"{room} -> {target} points upward"


def test_imports_point_down_the_allowed_graph() -> None:
    wrong = [
        f"{where}: {room} (layer {LAYERS.get(room)}) imports {target}"
        for room, target, where in _edges()
        if target not in ALLOWED.get(room, set())
    ]
    assert not wrong, "imports against the layers (docs/contributing.md):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from catseg.training import fit", ["training"]),
        ("import catseg.predict._segmenter", ["predict"]),
        ("from catseg import _validation as check", ["_validation"]),
        ("from catseg import Segmenter", ["catseg"]),
        ("def f():\n    from catseg.export import to_onnx", ["export"]),
        ("from .x import y\nimport torch", []),
    ],
)
def test_import_reader(source: str, expected: list[str]) -> None:
    assert [room for _, room in _imported_rooms(ast.parse(source))] == expected


def test_a_model_importing_training_is_caught() -> None:
    # the check itself: an upward import in a lower room is reported
    tree = ast.parse("from catseg.training import fit\n")
    targets = [room for _, room in _imported_rooms(tree)]
    assert [t for t in targets if t not in ALLOWED["models"]] == ["training"]
