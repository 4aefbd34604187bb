"""Writing the split files of a dataset folder (one rule for every writer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_splits"]


def write_splits(
    split_dir: Path, ids: Sequence[str], shuffled: Sequence[str], val_fraction: float
) -> None:
    """Write ``train.txt``, ``val.txt`` and ``trainval.txt`` (sorted ids, one per line).

    The first ``round(n * val_fraction)`` ids of ``shuffled`` go to ``val`` (at least
    one, and at least one left for ``train``, when ``n ≥ 2`` and the fraction is
    positive); the others go to ``train``; ``trainval`` holds every id.

    Args:
        split_dir: The existing ``ImageSets/Segmentation`` folder.
        ids: Every sample id.
        shuffled: The same ids in random order (the caller's seeded shuffle).
        val_fraction: Share of the ids in ``val``, in [0, 1).

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_splits(folder, ["a", "b", "c"], ["c", "a", "b"], 0.2)
        >>> (folder / "val.txt").read_text().split(), (folder / "train.txt").read_text().split()
        (['c'], ['a', 'b'])
    """
    n_val = round(len(ids) * val_fraction)
    if val_fraction > 0.0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    subsets = (
        ("train", sorted(shuffled[n_val:])),
        ("val", sorted(shuffled[:n_val])),
        ("trainval", sorted(ids)),
    )
    for name, subset in subsets:
        (split_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in subset))
