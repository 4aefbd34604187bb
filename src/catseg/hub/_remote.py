"""The Hugging Face Hub: a repo id downloads into the hub's cache; a folder uploads."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from catseg._bounds import MAX_JSON_BYTES, short
from catseg._runtime import require
from catseg.errors import CheckpointError, ConfigError, MissingFileError
from catseg.hub._format import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from catseg.hub._read import read_folder, read_weights

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_FILES = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
MAX_CARD_BYTES = 1 << 20  # the largest README.md push_to_hub uploads (catseg writes 2-5 kB)


def is_repo_id(value: str) -> bool:
    """True for ``"user/name"`` (one slash, hub-safe characters, no ``..``).

    Examples:
        >>> is_repo_id("catseg/cat-unet"), is_repo_id("./cat-unet"), is_repo_id("a/b/c")
        (True, False, False)
    """
    return _REPO_ID.fullmatch(value) is not None and ".." not in value


def locate(
    source: str | os.PathLike[str],
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
) -> Path:
    """The local folder of ``source``: the folder itself, or a hub snapshot in the cache.

    An existing path is always a folder; a string that is not one and looks like
    ``"user/name"`` is a hub repo id, downloaded (or found in the cache, also offline
    with ``HF_HUB_OFFLINE=1``) by ``huggingface_hub.snapshot_download``.
    """
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(
                f"{path} is a file; from_pretrained takes a model folder (written by "
                "save_pretrained) or a hub repo id 'user/name'"
            )
        return path
    text = os.fspath(source)
    if not isinstance(source, str) or not is_repo_id(text):
        raise MissingFileError(
            f"model folder {text} does not exist (and is not a hub repo id 'user/name')"
        )
    hub = require("huggingface_hub", "hub")
    try:
        snapshot = hub.snapshot_download(
            repo_id=text,
            revision=revision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            allow_patterns=_FILES,
        )
    except Exception as err:  # network, missing repo, offline without a cached copy
        raise CheckpointError(
            f"cannot get the model {text!r} from the Hugging Face Hub "
            f"(revision {revision or 'main'}): {type(err).__name__}: {str(err)[:500]}"
        ) from err
    return Path(snapshot)


def _read_file(path: Path, limit: int | None) -> bytes:
    """The bytes of a regular file (not a link), at most ``limit`` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise MissingFileError(f"{path} is missing (save_pretrained writes it)") from None
    except OSError as err:  # a link (ELOOP), no permission
        raise CheckpointError(f"{path} is not a readable regular file: {err}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(f"{path} is not a readable regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise CheckpointError(f"{path} is over the limit of {limit} bytes")
    return data


def _checked_files(folder: Path) -> dict[str, bytes]:
    """The three files' bytes, read once and checked: what is checked is what is uploaded.

    A symbolic link anywhere in ``folder`` is refused.
    """
    link = next((path for path in folder.rglob("*") if path.is_symlink()), None)
    if link is not None:  # rglob does not follow linked folders
        raise CheckpointError(
            f"{link} is a symbolic link; push_to_hub uploads only regular files inside the "
            "folder (replace the link by the file it points to)"
        )
    limits = {CONFIG_NAME: MAX_JSON_BYTES, WEIGHTS_NAME: None, CARD_NAME: MAX_CARD_BYTES}
    files = {name: _read_file(folder / name, limit) for name, limit in limits.items()}
    read_weights(folder, read_folder(folder, files[CONFIG_NAME]), files[WEIGHTS_NAME])
    try:
        files[CARD_NAME].decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"{folder / CARD_NAME} is not UTF-8 text (byte {err.start})"
        ) from None
    return files


def upload(
    folder: Path,
    repo_id: str,
    *,
    token: str | None,
    private: bool | None,
    commit_message: str,
    revision: str | None,
) -> str:
    """Check the folder, create the repo if needed, upload the three files; the commit's URL.

    The bytes checked are the bytes uploaded: a file replaced in between is not sent.
    """
    if not isinstance(repo_id, str) or not is_repo_id(repo_id):
        raise ConfigError(f"repo_id must look like 'user/name', got {short(repo_id)}")
    files = _checked_files(folder)
    hub = require("huggingface_hub", "hub")
    try:
        api = hub.HfApi(token=token)
        api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.create_commit(
            repo_id=repo_id,
            repo_type="model",
            operations=[
                hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=data)
                for name, data in files.items()
            ],
            commit_message=commit_message,
            revision=revision,
        )
    except Exception as err:  # network, token, permissions: httpx and huggingface_hub errors
        raise CheckpointError(
            f"cannot upload {folder} to {repo_id!r} on the Hugging Face Hub: "
            f"{type(err).__name__}: {str(err)[:500]}"
        ) from err
    return str(getattr(info, "commit_url", info))
