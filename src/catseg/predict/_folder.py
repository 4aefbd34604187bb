"""Folder-scale prediction (:meth:`Segmenter.predict_folder`): photos to palette PNGs.

DataLoader workers decode the next photos while the model runs; masks are written as
their batch is done (memory does not grow with the number of photos), each through
:func:`catseg._files.atomic_write`, never replacing a file unless ``overwrite=True``.
Under ``torchrun`` each process takes the shard ``paths[rank::world_size]``.
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
from torch.utils.data import DataLoader

from catseg._bounds import short
from catseg._files import atomic_write
from catseg._validation import check_choice, check_int
from catseg.data._inputs import Loaded, load_input
from catseg.errors import CatsegError, ConfigError, DataError, MissingFileError, OutputExistsError
from catseg.predict._pipeline import Pipeline
from catseg.predict._prediction import Prediction

OnError = Literal["skip", "raise"]
"""What :meth:`Segmenter.predict_folder` does with an unreadable photo."""
Outputs = tuple[bool, bool]  # (overlay, labelme): the optional outputs asked for

DEFAULT_PATTERNS = ("**/*.jpg", "**/*.jpeg", "**/*.png")
_GLOB = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
_OVERLAY = ".overlay.jpg"


@dataclass(frozen=True)
class FolderSummary:
    """What one :meth:`Segmenter.predict_folder` call did (one process's shard under torchrun).

    Attributes:
        written: Photos whose outputs this call wrote.
        skipped: Photos whose outputs all existed (left untouched).
        failed: ``(photo, reason)`` for each photo that was not segmented: unreadable
            files, symbolic links that leave ``src``, photos whose output another photo
            already claims (``a.jpg`` and ``a.png``), output names too long to write.
        rank: This process's rank (0 without torch.distributed).
        world_size: Number of processes sharing the folder (1 without torch.distributed).

    Examples:
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


def _regexes(pattern: str | Sequence[str] | None) -> list[re.Pattern[str]]:
    """Globs over ``/``-separated relative paths (``**/``: any folders), case-insensitive.

    Examples:
        >>> [bool(_regexes("**/*.jpg")[0].fullmatch(p)) for p in ("a.JPG", "d/a.jpg", "a.png")]
        [True, True, False]
    """
    patterns = (
        (pattern,) if isinstance(pattern, str) else DEFAULT_PATTERNS if pattern is None else pattern
    )
    if (
        not isinstance(patterns, Sequence)
        or not patterns
        or not all(isinstance(p, str) and p[:1] not in ("", "/") for p in patterns)
    ):
        raise ConfigError(
            "pattern must be a glob relative to src (e.g. '**/*.jpg') or a non-empty tuple "
            f"of them, got {pattern!r}"
        )
    parts = (re.split(r"(\*\*/|\*\*|\*|\?)", p) for p in patterns)
    return [re.compile("".join(_GLOB.get(t, re.escape(t)) for t in p), re.I) for p in parts]


def _matches(rel: str, regexes: Sequence[re.Pattern[str]]) -> bool:
    return any(rx.fullmatch(rel) for rx in regexes)


def list_photos(src: Path, pattern: str | Sequence[str] | None = None) -> list[Path]:
    """Files under ``src`` matching ``pattern``, sorted, relative to ``src`` (no links to folders).

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "sub").mkdir()
        >>> for name in ("b.JPG", "a.png", "sub/c.jpeg", "notes.txt"):
        ...     _ = (root / name).write_bytes(b"x")
        >>> [p.as_posix() for p in list_photos(root)]
        ['a.png', 'b.JPG', 'sub/c.jpeg']
    """
    regexes = _regexes(pattern)
    found = [
        Path(folder).relative_to(src) / name
        for folder, _, names in os.walk(src)
        for name in names
        if _matches((Path(folder).relative_to(src) / name).as_posix(), regexes)
    ]
    return sorted(found, key=lambda p: p.as_posix())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_folders(src: Path, dst: Path, regexes: list[re.Pattern[str]], out: Outputs) -> Path:
    """The resolved ``src``; refuses a missing src and a dst whose outputs would be inputs."""
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
        photos = (Path("x.jpg"), Path("d/x.jpg"))
        outputs = [prefix + o.as_posix() for p in photos for o in folder_outputs(p, *out)]
        if any(_matches(o, regexes) for o in outputs):
            raise ConfigError(
                f"dst {dst} is inside src {src} and pattern matches the files written there "
                "(masks are .png, overlays .overlay.jpg, labelme files .json), so a later run "
                "would read its own outputs as photos (or overwrite a photo); choose a dst "
                "outside src or a pattern that does not match them, e.g. '**/*.jpg'"
            )
    return real_src


def folder_outputs(rel: Path, overlay: bool, labelme: bool = False) -> tuple[Path, ...]:
    """The files written for the photo at relative path ``rel``: mask, overlay, labelme.

    Examples:
        >>> [p.as_posix() for p in folder_outputs(Path("sub/cat.JPG"), True, labelme=True)]
        ['sub/cat.png', 'sub/cat.overlay.jpg', 'sub/cat.json']
    """
    mask = rel.with_suffix(".png")
    extra = (rel.with_suffix(_OVERLAY),) * overlay + (rel.with_suffix(".json"),) * labelme
    return (mask, *extra)


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _relative(file: Path, src: Path, real_src: Path) -> Path:
    """``file`` (absolute, or relative to src) as a path relative to src; refuses outsiders."""
    absolute = (src / file).absolute()  # src / an absolute path is that path
    for base in (src.absolute(), real_src):
        try:
            rel = absolute.relative_to(base)
        except ValueError:
            continue
        if ".." not in rel.parts and rel.parts:
            return rel
    raise ConfigError(f"files must lie under src {src}, got {file}")


def _plan(
    src: Path, real_src: Path, dst: Path, rels: list[Path], out: Outputs, overwrite: bool
) -> tuple[list[tuple[Path, Path]], int, list[tuple[Path, str]]]:
    """This process's shard: ``(real file, rel)`` to do, the number skipped, the failures."""
    rank, world = _distributed()
    owner: dict[Path, Path] = {}
    todo: list[tuple[Path, Path]] = []
    failed: list[tuple[Path, str]] = []
    skipped = 0
    for index, rel in enumerate(rels):
        key = rel.with_suffix(".png")
        first = owner.setdefault(key, rel)  # the sorted list: the same owner on every rank
        if index % world != rank:
            continue
        real = (real_src / rel).resolve()
        if first != rel:
            failed.append(
                (src / rel, f"its output {key.as_posix()} is already the output of {first}")
            )
        elif not _inside(real, real_src):
            failed.append((src / rel, f"a symbolic link leading outside src, to {real}"))
        elif not overwrite and all((dst / out).exists() for out in folder_outputs(rel, *out)):
            skipped += 1
        else:
            todo.append((real, rel))
    return todo, skipped, failed


@dataclass(frozen=True)
class _Decoded:
    rel: Path
    loaded: Loaded | None
    error: CatsegError | None


def _decode(
    items: list[tuple[Path, Path]], in_channels: int, size: tuple[int, int] | None
) -> list[_Decoded]:
    """Decode photos (in a DataLoader worker) the way :meth:`Segmenter.predict` reads files."""
    decoded = []
    for real, rel in items:
        try:
            pixels, full, shown = load_input(real, in_channels, size)
            decoded.append(_Decoded(rel, Loaded(pixels.contiguous(), full, shown), None))
        except CatsegError as err:  # DataError, MissingFileError, ShapeError ...
            decoded.append(_Decoded(rel, None, err))
    return decoded


def _buckets(
    decoded: Iterable[list[_Decoded]], batch_size: int, by_size: bool
) -> Iterator[list[_Decoded]]:
    """Regroup decoded photos into same-size batches; at most ``4 * batch_size`` held back.

    A loader's worker that dies (killed, out of memory) is a DataError.
    """
    pending: dict[object, list[_Decoded]] = {}
    try:
        for item in (item for chunk in decoded for item in chunk):
            if item.loaded is None:
                yield [item]
                continue
            key = tuple(item.loaded.pixels.shape) if by_size else None
            pending.setdefault(key, []).append(item)
            if len(pending[key]) == batch_size:
                yield pending.pop(key)
            elif sum(map(len, pending.values())) >= 4 * batch_size:
                yield pending.pop(max(pending, key=lambda k: len(pending[k])))
    except RuntimeError as err:  # the loader's: "DataLoader worker (pid ...) is killed by ..."
        raise DataError(
            f"decoding the photos stopped: {err} The outputs written are whole: run again to "
            "resume (done photos are skipped), with num_workers=0 to decode in this process"
        ) from err
    yield from pending.values()


def _write(p: Prediction, rel: Path, src: Path, dst: Path, kinds: Outputs, overwrite: bool) -> str:
    """Write the photo's missing outputs (all of them with ``overwrite``); "" or why not."""
    for out in folder_outputs(rel, *kinds):
        try:
            if (dst / out).exists() and not overwrite:
                continue  # kept: catseg replaces no file unless asked
            if out.suffix == ".json":  # imagePath: the photo (src is resolved)
                p.to_labelme(dst / out, image_path=src / rel, overwrite=overwrite)
                continue
            if out.suffix == ".png":
                save = functools.partial(p.colorize().save, format="PNG")
            else:
                picture = p.overlay(alpha=0.3)
                save = functools.partial(picture.save, format="JPEG", quality=90)
            atomic_write(dst / out, save, replace=overwrite)
        except OutputExistsError as err:
            return str(err)
        except OSError as err:
            if err.errno != errno.ENAMETOOLONG:
                raise
            return f"its output name {out.name!r} is too long for the file system"
    return ""


def free_cores(device: torch.device) -> int:
    """Logical cores the forward pass leaves free (one busy on a GPU, else torch's threads).

    Examples:
        >>> free_cores(torch.device("cpu")) >= 0
        True
    """
    busy = 1 if device.type != "cpu" else torch.get_num_threads()
    return max(0, (os.cpu_count() or 1) - busy)


def default_workers(device: torch.device) -> int:
    """Decoding processes when ``num_workers=None``: the free cores, at most 4.

    When torch's threads fill every core, a decoding process slows the forward pass by
    more than it saves (2-core EPYC: 0.42× ``predict_batch`` with 2 workers, 0.96× with 0).

    Examples:
        >>> 0 <= default_workers(torch.device("cpu")) <= 4
        True
    """
    return min(4, free_cores(device))


def default_writers(device: torch.device) -> int:
    """Background threads encoding and writing the outputs: free cores, at most 2.

    Examples:
        >>> 0 <= default_writers(torch.device("cpu")) <= 2
        True
    """
    return min(2, free_cores(device))


class _Writer:
    """Writes outputs on ``threads`` background threads (0: at once, on the caller's thread).

    At most ``limit`` writes are pending; the first failed write is raised by the next
    :meth:`submit` or by :meth:`finish`; :attr:`results` holds ``(rel, reason)`` per
    photo written (``reason`` empty, or why it could not be).
    """

    def __init__(self, args: tuple[Path, Path, Outputs, bool], threads: int, limit: int) -> None:
        self.args, self.limit = args, limit
        self.pool = ThreadPoolExecutor(threads, "catseg-write") if threads else None
        self.pending: deque[tuple[Path, Future[str]]] = deque()
        self.results: list[tuple[Path, str]] = []

    def submit(self, prediction: Prediction, rel: Path) -> None:
        if self.pool is None:
            self.results.append((rel, _write(prediction, rel, *self.args)))
            return
        self.pending.append((rel, self.pool.submit(_write, prediction, rel, *self.args)))
        while len(self.pending) > self.limit or (self.pending and self.pending[0][1].done()):
            rel, future = self.pending.popleft()
            self.results.append((rel, future.result()))

    def finish(self, raise_errors: bool) -> None:
        """Wait for every pending write (a killed run still leaves only whole files)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.results += [(rel, f.result()) for rel, f in self.pending] if raise_errors else []


class _NoBar:
    def update(self, n: int) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar (``progress`` extra) when asked for and installed, else a silent one."""
    try:  # tqdm is an optional extra ("progress"): imported only here, lazily
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="predict_folder", unit="photo") if enabled else _NoBar()


def predict_folder(
    pipeline: Pipeline,
    src: Path,
    dst: Path,
    *,
    pattern: str | Sequence[str] | None,
    files: Iterable[str | os.PathLike[str]] | None,
    overlay: bool,
    labelme: bool,
    overwrite: bool,
    on_error: OnError,
    num_workers: int | None,
    progress: bool,
) -> FolderSummary:
    """The work of :meth:`Segmenter.predict_folder` (see there) for one pipeline."""
    check_choice("on_error", on_error, ("skip", "raise"))
    device = pipeline.backend.device
    workers = default_workers(device) if num_workers is None else num_workers
    check_int("num_workers", workers, minimum=0)
    real_src = _check_folders(src, dst, _regexes(pattern), (overlay, labelme))
    if isinstance(files, str | os.PathLike):
        raise ConfigError(f"files must be an iterable of paths, got the one path {files!r}")
    given = list(files) if isinstance(files, Iterable) else [files]
    listed = list_photos(src, pattern) if files is None else given
    paths = [Path(f) for f in listed if isinstance(f, str | os.PathLike)]
    if len(paths) != len(listed):
        raise ConfigError(f"files must be None or an iterable of paths, got {short(files)}")
    rels = sorted({_relative(f, src, real_src) for f in paths}, key=lambda p: p.as_posix())
    todo, skipped, failed = _plan(src, real_src, dst.resolve(), rels, (overlay, labelme), overwrite)
    if on_error == "raise" and failed:
        raise DataError(f"{failed[0][0]}: {failed[0][1]}")
    rank, world = _distributed()
    args = (real_src, dst.resolve(), (overlay, labelme), overwrite)
    writer = _Writer(args, default_writers(device), 2 * pipeline.batch_size)
    bar = _progress_bar(len(todo), progress and rank == 0)
    loader: DataLoader[tuple[Path, Path]] = DataLoader(
        todo,  # type: ignore[arg-type]  # a list is a map-style dataset
        pipeline.batch_size,
        collate_fn=functools.partial(
            _decode, in_channels=pipeline.in_channels, size=pipeline.record.image_size
        ),
        num_workers=min(workers, len(todo)),
    )
    done = False
    try:
        with torch.inference_mode():
            by_size = pipeline.record.image_size is None
            for batch in _buckets(loader, pipeline.batch_size, by_size):
                errors = [item for item in batch if item.error is not None]
                if errors and on_error == "raise":
                    raise errors[0].error  # type: ignore[misc]
                failed += [(src / item.rel, str(item.error)) for item in errors]
                good = [item for item in batch if item.loaded is not None]
                predictions = pipeline.run([item.loaded for item in good], False)
                for item, prediction in zip(good, predictions, strict=True):
                    writer.submit(prediction, item.rel)
                bar.update(len(batch))
        done = True
    finally:
        writer.finish(raise_errors=done)
        bar.close()
    failed += [(src / rel, reason) for rel, reason in writer.results if reason]
    written = sum(not reason for _, reason in writer.results)
    return FolderSummary(written, skipped, tuple(failed), rank, world)
