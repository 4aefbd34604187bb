"""Folder-scale prediction: every matching photo under a folder to a palette PNG.

:func:`predict_folder` (behind :meth:`Segmenter.predict_folder`) lists the photos,
decodes them in a :class:`torch.utils.data.DataLoader` whose worker processes read the
next files while the model runs, segments them ``batch_size`` at a time (grouped by
size), and writes each mask as soon as its batch is done, so memory does not grow with
the number of photos (only the sorted list of paths is kept). Outputs are written
atomically through :func:`catseg._files.atomic_write`: a killed run leaves no
half-written PNG. A file already in the output folder is never replaced unless
``overwrite=True``: the next run skips every photo whose outputs all exist and writes
only the missing outputs of the others.

Under ``torchrun`` (``torch.distributed`` initialised) each process takes the shard
``paths[rank::world_size]`` of the sorted list, so together the processes write every
output once; no collective call is made and each returns the summary of its own shard.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from catseg._files import atomic_write
from catseg._validation import check_choice, check_int
from catseg.data._inputs import load_input
from catseg.errors import CatsegError, ConfigError, DataError, MissingFileError, OutputExistsError
from catseg.predict._pipeline import Pipeline
from catseg.predict._prediction import Prediction

OnError = Literal["skip", "raise"]
"""What :meth:`Segmenter.predict_folder` does with an unreadable photo."""

DEFAULT_PATTERNS: tuple[str, ...] = ("**/*.jpg", "**/*.jpeg", "**/*.png")
"""Photos matched when no pattern is given: JPEG and PNG files at any depth."""

_OVERLAY_SUFFIX = ".overlay.jpg"
_OVERLAY_ALPHA = 0.3


@dataclass(frozen=True)
class FolderSummary:
    """What one :meth:`Segmenter.predict_folder` call did (one process's shard under torchrun).

    Attributes:
        written: Photos whose mask (and overlay) this call wrote.
        skipped: Photos whose outputs already existed (left untouched).
        failed: ``(photo, reason)`` for each photo that was not segmented: unreadable
            files, symbolic links that leave ``src``, photos whose output another photo
            already claims (``a.jpg`` and ``a.png`` in one folder).
        rank: This process's rank (0 without torch.distributed).
        world_size: Number of processes sharing the folder (1 without torch.distributed).

    Examples:
        >>> from pathlib import Path
        >>> summary = FolderSummary(written=3, skipped=1, failed=((Path("x.jpg"), "broken"),))
        >>> summary.total, summary.ok
        (5, False)
    """

    written: int
    skipped: int
    failed: tuple[tuple[Path, str], ...] = ()
    rank: int = 0
    world_size: int = 1

    @property
    def total(self) -> int:
        """Photos in this process's shard: written + skipped + failed."""
        return self.written + self.skipped + len(self.failed)

    @property
    def ok(self) -> bool:
        """``True`` when no photo failed."""
        return not self.failed


# ---------------------------------------------------------------------- listing
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A glob over ``/``-separated relative paths: ``**/`` any folders, ``*``/``?`` in a name.

    Examples:
        >>> rx = _pattern_regex("**/*.jpg")
        >>> [bool(rx.fullmatch(p)) for p in ("a.JPG", "d/e/a.jpg", "a.png")]
        [True, True, False]
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE)


def _check_patterns(pattern: str | Sequence[str] | None) -> list[re.Pattern[str]]:
    patterns = DEFAULT_PATTERNS if pattern is None else pattern
    if isinstance(patterns, str):
        patterns = (patterns,)
    if (
        not isinstance(patterns, Sequence)
        or not patterns
        or not all(isinstance(p, str) and p and not p.startswith("/") for p in patterns)
    ):
        raise ConfigError(
            "pattern must be a glob relative to src (e.g. '**/*.jpg') or a non-empty tuple "
            f"of them, got {pattern!r}"
        )
    return [_pattern_regex(p) for p in patterns]


def _matches(rel: str, regexes: Sequence[re.Pattern[str]]) -> bool:
    return any(rx.fullmatch(rel) for rx in regexes)


def list_photos(src: Path, pattern: str | Sequence[str] | None = None) -> list[Path]:
    """Files under ``src`` matching ``pattern``, as sorted paths relative to ``src``.

    Matching is case-insensitive (``*.jpg`` matches ``A.JPG``). Symbolic links to folders
    are not followed (no loops, nothing outside ``src``); symbolic links to files are
    listed and checked when read.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "sub").mkdir()
        >>> for name in ("b.JPG", "a.png", "sub/c.jpeg", "notes.txt"):
        ...     _ = (root / name).write_bytes(b"x")
        >>> [p.as_posix() for p in list_photos(root)]
        ['a.png', 'b.JPG', 'sub/c.jpeg']
    """
    regexes = _check_patterns(pattern)
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(src):
        dirnames.sort()
        base = Path(folder).relative_to(src)
        for name in filenames:
            rel = base / name
            if _matches(rel.as_posix(), regexes):
                found.append(rel)
    return sorted(found, key=lambda p: p.as_posix())


# ---------------------------------------------------------------------- checks
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_folders(
    src: Path, dst: Path, regexes: Sequence[re.Pattern[str]], overlay: bool
) -> tuple[Path, Path]:
    """Resolved ``(src, dst)``; refuses a missing src and a dst whose outputs would be inputs."""
    if not src.is_dir():
        if not src.exists():
            raise MissingFileError(f"src folder not found: {src}")
        raise ConfigError(f"src must be a folder of photos, got the file {src}")
    real_src, real_dst = src.resolve(), dst.resolve()
    if real_dst.exists() and not real_dst.is_dir():
        raise ConfigError(f"dst must be a folder (it is created if missing), got the file {dst}")
    if _inside(real_dst, real_src):
        rel = real_dst.relative_to(real_src).as_posix()
        prefix = "" if rel == "." else rel + "/"
        outputs = [prefix + "x.png", prefix + "d/x.png"]
        if overlay:
            outputs += [prefix + "x" + _OVERLAY_SUFFIX, prefix + "d/x" + _OVERLAY_SUFFIX]
        if any(_matches(o, regexes) for o in outputs):
            raise ConfigError(
                f"dst {dst} is inside src {src} and pattern matches the files written there "
                "(masks are .png, overlays .overlay.jpg), so a later run would read its own "
                "outputs as photos (or overwrite a photo); choose a dst outside src or a "
                "pattern that does not match them, e.g. '**/*.jpg'"
            )
    return real_src, real_dst


def folder_outputs(rel: Path, overlay: bool) -> tuple[Path, ...]:
    """The files written for the photo at relative path ``rel``: mask, then overlay.

    Examples:
        >>> [p.as_posix() for p in folder_outputs(Path("sub/cat.JPG"), overlay=True)]
        ['sub/cat.png', 'sub/cat.overlay.jpg']
    """
    mask = rel.with_suffix(".png")
    return (mask, rel.with_suffix(_OVERLAY_SUFFIX)) if overlay else (mask,)


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class _Plan:
    todo: list[tuple[Path, Path]]  # (real file, relative path)
    skipped: int
    failed: list[tuple[Path, str]]


def _relative(file: Path, src: Path, real_src: Path) -> Path:
    """``file`` (absolute, or relative to src) as a path relative to src; refuses outsiders."""
    absolute = file if file.is_absolute() else src / file
    for base in (src.absolute(), real_src):
        try:
            rel = absolute.relative_to(base)
        except ValueError:
            continue
        if ".." not in rel.parts and rel.parts:
            return rel
    raise ConfigError(f"files must lie under src {src}, got {file}")


def _plan(
    src: Path,
    real_src: Path,
    real_dst: Path,
    rels: list[Path],
    overlay: bool,
    overwrite: bool,
) -> _Plan:
    """This process's shard, minus outputs already written, links leaving src, collisions."""
    rank, world = _distributed()
    owner: dict[str, Path] = {}
    shard: list[tuple[Path, Path | str]] = []
    for index, rel in enumerate(rels):
        key = folder_outputs(rel, False)[0].as_posix()
        first = owner.setdefault(key, rel)  # the sorted list: the same owner on every rank
        if index % world != rank:
            continue
        if first != rel:
            shard.append((rel, f"its output {key} is already the output of {first}"))
        else:
            shard.append((rel, rel))
    plan = _Plan([], 0, [])
    for rel, outcome in shard:
        if isinstance(outcome, str):
            plan.failed.append((src / rel, outcome))
            continue
        real = (real_src / rel).resolve()
        if not _inside(real, real_src):
            plan.failed.append((src / rel, f"a symbolic link leading outside src, to {real}"))
        elif not overwrite and all((real_dst / o).exists() for o in folder_outputs(rel, overlay)):
            plan.skipped += 1
        else:
            plan.todo.append((real, rel))
    return plan


# ---------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class _Decoded:
    rel: Path
    pixels: torch.Tensor | None
    error: CatsegError | None


class _PhotoDataset(Dataset[_Decoded]):
    """Decodes one photo per index the way :meth:`Segmenter.predict` reads a file."""

    def __init__(self, items: list[tuple[Path, Path]], in_channels: int) -> None:
        self.items = items
        self.in_channels = in_channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Decoded:
        real, rel = self.items[index]
        try:
            pixels, _ = load_input(real, self.in_channels)
        except CatsegError as err:  # DataError, MissingFileError, ShapeError ...
            return _Decoded(rel, None, err)
        return _Decoded(rel, pixels.contiguous(), None)


def _as_list(batch: list[_Decoded]) -> list[_Decoded]:
    return batch


def _buckets(
    decoded: Iterable[list[_Decoded]], batch_size: int, by_size: bool
) -> Iterator[list[_Decoded]]:
    """Regroup decoded photos into same-size batches; at most ``4 * batch_size`` held back."""
    pending: dict[object, list[_Decoded]] = {}
    held = 0
    for chunk in decoded:
        for item in chunk:
            if item.pixels is None:
                yield [item]
                continue
            key = tuple(item.pixels.shape) if by_size else None
            pending.setdefault(key, []).append(item)
            held += 1
            if len(pending[key]) == batch_size:
                held -= batch_size
                yield pending.pop(key)
            elif held >= 4 * batch_size:
                largest = max(pending, key=lambda k: len(pending[k]))
                held -= len(pending[largest])
                yield pending.pop(largest)
    yield from pending.values()


# ---------------------------------------------------------------------- writing
def _write(
    prediction: Prediction, rel: Path, real_dst: Path, overlay: bool, overwrite: bool
) -> str:
    """Write the photo's missing outputs (all of them with ``overwrite``); "" or why not."""
    for out in folder_outputs(rel, overlay):
        target = real_dst / out
        try:
            if target.exists() and not overwrite:
                continue  # kept: catseg replaces no file unless asked
            if out.suffix == ".png":
                save = functools.partial(prediction.colorize().save, format="PNG")
            else:
                overlay_image = prediction.overlay(alpha=_OVERLAY_ALPHA)
                save = functools.partial(overlay_image.save, format="JPEG", quality=90)
            atomic_write(target, save, replace=overwrite)
        except OutputExistsError as err:
            return str(err)
        except OSError as err:
            if err.errno != errno.ENAMETOOLONG:
                raise
            return f"its output name {out.name!r} is too long for the file system"
    return ""


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar (``progress`` extra) when asked for and installed, else ``None``."""
    if not enabled:
        return None
    try:  # tqdm is an optional extra ("progress"): imported only here, lazily
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="predict_folder", unit="photo")


# ---------------------------------------------------------------------- the run
def free_cores(device: torch.device) -> int:
    """Logical cores the forward pass leaves free: ``cpu_count`` minus what it keeps busy.

    On a GPU the forward pass keeps one core busy (the host thread); on the CPU it keeps
    ``torch.get_num_threads()`` cores busy.

    Examples:
        >>> free_cores(torch.device("cpu")) >= 0
        True
    """
    cores = os.cpu_count() or 1
    busy = 1 if device.type != "cpu" else torch.get_num_threads()
    return max(0, cores - busy)


def default_workers(device: torch.device) -> int:
    """Decoding processes when ``num_workers=None``: the free cores, at most 4.

    Decoding and writing overlap the forward pass only on cores it does not use. When
    torch's intra-op threads fill every core (the CPU default), a busy decoding process
    takes a core from one of them and the whole parallel region waits for the slowest
    thread, so the forward pass slows down by far more than the decoding it hides
    (measured on a 2-core AMD EPYC: 0.42× ``predict_batch`` with 2 workers, 0.96× with
    none); decoding in between forward passes is then faster. DataLoader workers run
    with one torch thread each (PyTorch sets it).

    Examples:
        >>> 0 <= default_workers(torch.device("cpu")) <= 4
        True
    """
    return min(4, free_cores(device))


def default_writers(device: torch.device) -> int:
    """Background threads encoding and writing the PNGs: free cores, at most 2, else 0.

    Pillow releases the GIL while it compresses, so on a GPU (or a CPU with cores torch
    does not use) writing overlaps the next forward pass; with no free core the masks are
    written in between forward passes, for the reason given in :func:`default_workers`.

    Examples:
        >>> 0 <= default_writers(torch.device("cpu")) <= 2
        True
    """
    return min(2, free_cores(device))


def _loader(
    todo: list[tuple[Path, Path]], pipeline: Pipeline, workers: int
) -> DataLoader[_Decoded]:
    workers = min(workers, len(todo))
    return DataLoader(
        _PhotoDataset(todo, pipeline.in_channels),
        batch_size=pipeline.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_list,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


class _Writer:
    """Writes outputs on ``threads`` background threads (0: at once, on the caller's thread).

    At most ``limit`` writes are pending, so memory stays bounded; the first failed write
    is raised by the next :meth:`submit` or by :meth:`finish`; photos whose outputs
    could not be written for a reason of their own are collected in :attr:`failed`.
    """

    def __init__(self, real_dst: Path, overlay: bool, overwrite: bool, threads: int, limit: int):
        self.args, self.limit = (real_dst, overlay, overwrite), limit
        self.pool = ThreadPoolExecutor(threads, "catseg-write") if threads else None
        self.pending: deque[tuple[Path, Future[str]]] = deque()
        self.failed: list[tuple[Path, str]] = []

    def _done(self, rel: Path, reason: str) -> None:
        if reason:
            self.failed.append((rel, reason))

    def submit(self, prediction: Prediction, rel: Path) -> None:
        if self.pool is None:
            self._done(rel, _write(prediction, rel, *self.args))
            return
        self.pending.append((rel, self.pool.submit(_write, prediction, rel, *self.args)))
        while len(self.pending) > self.limit or (self.pending and self.pending[0][1].done()):
            rel, future = self.pending.popleft()
            self._done(rel, future.result())

    def finish(self, raise_errors: bool) -> None:
        """Wait for every pending write (a killed run still leaves only whole files)."""
        if self.pool is None:
            return
        self.pool.shutdown(wait=True)
        pending, self.pending = self.pending, deque()
        for rel, future in pending:
            if raise_errors:
                self._done(rel, future.result())


def _selection(
    src: Path,
    real_src: Path,
    pattern: str | Sequence[str] | None,
    files: Iterable[str | os.PathLike[str]] | None,
) -> list[Path]:
    """The photos to segment, relative to src: the listing, or the given ``files``."""
    if files is None:
        return list_photos(src, pattern)
    if isinstance(files, str | os.PathLike):
        raise ConfigError(f"files must be an iterable of paths, got the one path {files!r}")
    rels = {_relative(Path(f), src, real_src) for f in files}
    return sorted(rels, key=lambda p: p.as_posix())


def predict_folder(
    pipeline: Pipeline,
    src: Path,
    dst: Path,
    *,
    pattern: str | Sequence[str] | None,
    files: Iterable[str | os.PathLike[str]] | None,
    overlay: bool,
    overwrite: bool,
    on_error: OnError,
    num_workers: int | None,
    progress: bool,
) -> FolderSummary:
    """The work of :meth:`Segmenter.predict_folder` (see there) for one pipeline."""
    check_choice("on_error", on_error, ("skip", "raise"))
    device = pipeline.backend.device
    workers = (
        default_workers(device)
        if num_workers is None
        else check_int("num_workers", num_workers, minimum=0)
    )
    real_src, real_dst = _check_folders(src, dst, _check_patterns(pattern), overlay)
    plan = _plan(
        src, real_src, real_dst, _selection(src, real_src, pattern, files), overlay, overwrite
    )
    if on_error == "raise" and plan.failed:
        path, reason = plan.failed[0]
        raise DataError(f"{path}: {reason}")
    rank, world = _distributed()
    batch_size = pipeline.batch_size
    writer = _Writer(real_dst, overlay, overwrite, default_writers(device), 2 * batch_size)
    bar = _progress_bar(len(plan.todo), progress and rank == 0)
    done, failed, good_count = False, list(plan.failed), 0
    try:
        with torch.inference_mode():
            by_size = pipeline.record.image_size is None
            for batch in _buckets(_loader(plan.todo, pipeline, workers), batch_size, by_size):
                good = [item for item in batch if item.pixels is not None]
                for item in batch:
                    if item.error is not None:
                        if on_error == "raise":
                            raise item.error
                        failed.append((src / item.rel, str(item.error)))
                if good:
                    predictions = pipeline.run([item.pixels for item in good], False)
                    for item, prediction in zip(good, predictions, strict=True):
                        writer.submit(prediction, item.rel)
                    good_count += len(good)
                if bar is not None:
                    bar.update(len(batch))
        done = True
    finally:
        writer.finish(raise_errors=done)
        if bar is not None:
            bar.close()
    failed += [(src / rel, reason) for rel, reason in writer.failed]
    return FolderSummary(
        written=good_count - len(writer.failed),
        skipped=plan.skipped,
        failed=tuple(failed),
        rank=rank,
        world_size=world,
    )
