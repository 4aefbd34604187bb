"""Model folders: share a trained model as safetensors weights, a JSON config and a card.

A model folder holds three files:

``config.json``
    ``format`` (``"catseg.model"``), ``format_version`` (1), ``catseg_version``,
    ``model`` (``UNetConfig.to_dict()``, the model's one record: architecture, classes,
    mode, threshold, input size, normalisation), ``fused``, ``palette`` (``[r, g, b]``
    per class or ``null``) and ``training`` (a summary or ``null``).
``model.safetensors``
    The weights only, readable by ``safetensors.torch.load_file`` alone.
``README.md``
    A model card with YAML front matter for the Hugging Face Hub.

:func:`save_pretrained` writes one (``Segmenter.save_pretrained`` is the short form);
:func:`load_pretrained` (``Segmenter.from_pretrained``) reads one from a folder or,
with the ``hub`` extra, from a Hugging Face Hub repo id; :func:`push_to_hub` uploads one.
Loading never runs code from the folder: the JSON is parsed with bounds on size,
nesting and items, the safetensors header is checked against a model built on the
``meta`` device before any weight is read, and every problem is a catseg error naming
the file and the field. Weights need the ``safetensors`` extra
(``pip install "catseg[safetensors]"``).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from catseg.models import UNet
    >>> net = UNet(3, 2, init_features=4, depth=2).describe(classes=["bg", "cat"])
    >>> folder = save_pretrained(Path(tempfile.mkdtemp()) / "pets", net)
    >>> record = load_pretrained(folder).model.config
    >>> record.classes, record.mode, record.num_classes
    (('bg', 'cat'), 'multiclass', 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catseg._validation import check_bool, check_path
from catseg.errors import ConfigError
from catseg.hub._format import FORMAT_VERSION
from catseg.hub._read import read_folder, read_weights
from catseg.hub._remote import locate, upload
from catseg.hub._write import save_pretrained
from catseg.models import UNet

__all__ = ["FORMAT_VERSION", "PretrainedModel", "load_pretrained", "push_to_hub", "save_pretrained"]


@dataclass(frozen=True)
class PretrainedModel:
    """A model folder as read by :func:`load_pretrained`.

    Attributes:
        model: The rebuilt :class:`~catseg.models.UNet` in eval mode on the CPU (fused
            if it was saved fused); its ``config`` is the model's record (classes, mode,
            threshold, input size, normalisation).
        folder: The local folder read (a snapshot in the hub cache for a repo id).
        palette: Flat ``r0, g0, b0, ...`` colours of the classes, or ``None``.
        training: The training summary of ``config.json``, or ``None``.
        catseg_version: Version of catseg that wrote the folder.
        format_version: Layout version of the folder.
    """

    model: UNet
    folder: Path
    palette: tuple[int, ...] | None
    training: dict[str, Any] | None
    catseg_version: str
    format_version: int


def load_pretrained(
    source: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PretrainedModel:
    """Read a model folder written by :func:`save_pretrained`, or download one from the hub.

    Args:
        source: A model folder, or a Hugging Face Hub repo id ``"user/name"`` (when no
            such local path exists), downloaded into the hub's cache with
            ``huggingface_hub.snapshot_download`` (which honours ``HF_HUB_OFFLINE=1``
            and ``HF_HOME``).
        revision: Hub branch, tag or commit (default ``main``); ignored for a folder.
        cache_dir: Hub cache folder (default: the hub's own); ignored for a folder.

    Returns:
        The model and its metadata.

    Raises:
        MissingFileError: If the folder does not exist, or ``config.json`` or
            ``model.safetensors`` is missing from it.
        CheckpointError: If a file is malformed, over catseg's bounds, written with a
            newer format version, or the config does not match the weights (the message
            names the file and the field); or the hub download fails.
        OptionalDependencyError: If safetensors (extra ``safetensors``) or, for a repo
            id, huggingface_hub (extra ``hub``) is not installed.
        ConfigError: If ``source`` is a file or not a path, or ``revision`` or
            ``cache_dir`` is of the wrong type.

    Examples:
        >>> import tempfile
        >>> load_pretrained(Path(tempfile.mkdtemp()) / "missing")
        Traceback (most recent call last):
        ...
        catseg.errors.MissingFileError: model folder .../missing does not exist ...
    """
    check_path("source", source)
    if revision is not None and not isinstance(revision, str):
        raise ConfigError(f"revision must be a str or None, got {type(revision).__name__}")
    cache = None if cache_dir is None else check_path("cache_dir", cache_dir)
    folder = locate(source, revision=revision, cache_dir=cache)
    config = read_folder(folder)
    model = read_weights(folder, config)
    palette = None if config.palette is None else tuple(v for c in config.palette for v in c)
    return PretrainedModel(
        model, folder, palette, config.training, config.catseg_version, config.format_version
    )


def push_to_hub(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload catseg model",
    revision: str | None = None,
) -> str:
    """Upload a model folder to the Hugging Face Hub (the repo is created if needed).

    Each of the three files is read once and checked (as :func:`load_pretrained`
    would); those bytes are what ``HfApi.create_commit`` sends, so a file replaced in
    between is not uploaded unchecked, and other files in the folder are not sent. A
    symbolic link anywhere in the folder is refused, and the card must be UTF-8 of at
    most 1 MiB.

    Args:
        folder: A folder written by :func:`save_pretrained`.
        repo_id: ``"user/name"`` of the model repo.
        token: Hub token (default: the one ``huggingface-cli login`` stored).
        private: Make a newly created repo private (``None``: the hub's default).
        commit_message: Message of the upload commit.
        revision: Branch to commit to (default ``main``).

    Returns:
        The URL of the commit.

    Raises:
        ConfigError: If ``repo_id`` is not ``"user/name"``.
        MissingFileError: If the folder or one of its files is missing.
        CheckpointError: If the folder is not a valid model folder or holds a symbolic
            link, or the hub refuses or cannot be reached (the hub's error is chained).
        OptionalDependencyError: If huggingface_hub is not installed (extra ``hub``).
    """
    if private is not None:
        check_bool("private", private)
    return upload(
        check_path("folder", folder),
        repo_id,
        token=token,
        private=private,
        commit_message=commit_message,
        revision=revision,
    )
