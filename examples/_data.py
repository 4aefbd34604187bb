"""Where the examples find the shared data and where they write their outputs.

The shared data (real cat photos in Pascal-VOC layout and two labelme examples; see the
README, "The cat data") is looked up with the same rules as the tests
(``tests/conftest.py``):

1. the folder named by ``--data`` on the command line (each example's own option);
2. else ``$CATSEG_SHARED_DATA`` (the folder that holds ``cats-voc/``);
3. else ``shared/data`` beside the checkout (``../shared/data`` from the repository
   root), or one level further up (a git worktree inside a folder beside the data).

Outputs go to ``outputs/<example>/`` in the repository (ignored by git) unless ``--out``
names another folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = "CATSEG_SHARED_DATA"
HOW_TO_GET = (
    f"set {ENV}=/path/to/data (the folder holding cats-voc/), or place the shared data "
    f"folder at {REPO.parent / 'shared' / 'data'} (../shared/data beside the checkout); "
    "see 'The cat data' in README.md"
)


def shared_data_root() -> Path | None:
    """The shared data folder by the rules above (without ``--data``), or ``None``.

    Raises:
        SystemExit: When ``$CATSEG_SHARED_DATA`` is set but is not a folder.
    """
    env = os.environ.get(ENV)
    if env:
        if not Path(env).is_dir():
            raise SystemExit(f"{ENV}={env} is not a folder; {HOW_TO_GET}")
        return Path(env)
    for candidate in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def default_data(name: str) -> Path | None:
    """``<shared data>/<name>`` when the shared data folder is found, else ``None``."""
    root = shared_data_root()
    return None if root is None else root / name


def require_data(path: Path | None, name: str) -> Path:
    """``path`` if it is a folder, else exit with a message that says how to fix it."""
    if path is None:
        raise SystemExit(f"the shared data ({name}) is not found: pass --data DIR, or {HOW_TO_GET}")
    if not path.is_dir():
        raise SystemExit(f"{path} is not a folder: pass --data DIR, or {HOW_TO_GET}")
    return path


def output_dir(name: str) -> Path:
    """The default output folder of an example: ``outputs/<name>`` in the repository."""
    return REPO / "outputs" / name


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows the module docstring and every default."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=_HelpFormatter, prog=None, allow_abbrev=False
    )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option texts (a ``None`` default is explained by the text itself)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)
