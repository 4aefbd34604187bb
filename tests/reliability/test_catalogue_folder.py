"""Bad-input catalogue rows for model folders (issue 19, "Sharing": hostile folders).

Same contract as ``test_catalogue.py``: each row either returns the documented result,
checked against hand-worked values, or raises the listed catseg error whose message
names the file, field and what is wrong. Every hostile folder is refused in milliseconds.
Issue 27: ``push_to_hub`` uploads only the regular files it checked and wraps the hub's
errors (point 3, point 8), the card escapes what it quotes (point 3), and a safetensors
header whose sizes overflow 64 bits is a ``CheckpointError`` (point 5).
"""

from __future__ import annotations

import ast
import html
import json
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from reliability_builders import (
    Row,
    check_rows,
    run_row,
    single_threaded_torch,  # noqa: F401  (autouse fixture)
)

import catseg
from catseg.errors import CheckpointError, ConfigError, MissingFileError
from catseg.hub import _remote, push_to_hub, save_pretrained
from catseg.models import UNet
from catseg.predict import Segmenter

CLASSES = ["_background_", "cat"]


def tiny() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, init_features=4, depth=2).eval()


def _folder(tmp: Path) -> Path:
    return save_pretrained(tmp / "downloaded", tiny().describe(classes=CLASSES, image_size=32))


def _config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Any]:
    """Save a good folder, rewrite its config.json with ``edit``, load it as a user would."""

    def call(tmp: Path) -> Any:
        folder = _folder(tmp)
        data = json.loads((folder / "config.json").read_text())
        edited = edit(data)
        text = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
        (folder / "config.json").write_bytes(text)
        return Segmenter.from_pretrained(folder, precision="fp32")

    return call


def _drop(name: str) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        folder = _folder(tmp)
        (folder / name).unlink()
        return Segmenter.from_pretrained(folder)

    return call


def _round_trip(tmp: Path) -> Any:
    seg = Segmenter(tiny(), classes=CLASSES, image_size=(32, 32), precision="fp32")
    again = Segmenter.from_pretrained(seg.save_pretrained(tmp / "m"), precision="fp32")
    x = torch.rand(3, 45, 61)
    return bool(torch.equal(seg.predict(x).mask, again.predict(x).mask)), again.image_size


def _foreign(tmp: Path) -> Any:
    (tmp / "photos").mkdir()
    (tmp / "photos" / "cat.jpg").write_bytes(b"not mine to replace")
    return save_pretrained(tmp / "photos", tiny().describe(classes=CLASSES))


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected

    return check


ROWS: list[Row] = [
    Row("folder-round-trip", _round_trip, "identical masks, the folder's image size",
        check=_equal((True, (32, 32)))),
    Row("folder-newer-format-version", _config(lambda d: {**d, "format_version": 7}),
        "CheckpointError naming the file and field", CheckpointError,
        r"downloaded/config\.json: field 'format_version' is 7 .* up to version 1"),
    Row("folder-missing-weights", _drop("model.safetensors"), "MissingFileError naming it",
        MissingFileError, r"model\.safetensors is missing"),
    Row("folder-missing-config", _drop("config.json"), "MissingFileError naming it",
        MissingFileError, r"config\.json is missing"),
    Row("folder-config-does-not-fit-weights",
        _config(lambda d: {**d, "model": {**d["model"], "depth": 3}}),
        "CheckpointError before any weight is read", CheckpointError,
        r"config\.json: field 'model': the weights in model\.safetensors do not match"),
    Row("folder-config-depth-1e6",
        _config(lambda d: {**d, "model": {**d["model"], "depth": 10**6}}),
        "CheckpointError before building", CheckpointError,
        r"config\.json: invalid model record: depth=1000000 is over the limit of 12"),
    Row("folder-deep-json", _config(lambda d: b"[" * 200_000),
        "CheckpointError in ms (no RecursionError traceback)", CheckpointError,
        r"config\.json is not valid JSON: it is nested too deeply"),
    Row("folder-huge-json", _config(lambda d: b" " * (3 << 20)),
        "CheckpointError before reading", CheckpointError, r"over the limit of 1048576 bytes"),
    Row("folder-classes-not-a-list",
        _config(lambda d: {**d, "model": {**d["model"], "classes": {"0": "bg"}}}),
        "CheckpointError naming the field", CheckpointError,
        r"config\.json: invalid model record: classes must be a list of class names, "
        r"got \{'0': 'bg'\}"),
    Row("folder-save-into-foreign-folder", _foreign, "ConfigError; nothing overwritten",
        ConfigError, r"photos is not empty and is not a catseg model folder"),
]  # fmt: skip


# --- push_to_hub through an offline fake HfApi (issue 27, points 3 and 8) ------------

REPO = "catlab/cat-unet"


def _push(
    prepare: Callable[[Path, Path], object],
    fail: BaseException | None = None,
    after_check: Callable[[Path], object] | None = None,
) -> Callable[[Path], Any]:
    """Save a good folder, ``prepare(folder, tmp)`` it, push it through a fake HfApi.

    The fake raises ``fail`` (a hub or network error) from ``create_repo``; otherwise it
    returns the commit URL, the bytes of each file it was sent and the bytes the folder
    held before the push (tests/hub checks that the hub's error is chained).
    ``after_check(folder)`` runs once the weights are checked (a file swapped then).
    """

    def call(tmp: Path) -> Any:
        folder = _folder(tmp)
        prepare(folder, tmp)
        before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        sent: dict[str, bytes] = {}

        class FakeApi:
            def __init__(self, token: str | None = None) -> None:
                pass

            def create_repo(self, **kwargs: Any) -> None:
                if fail is not None:
                    raise fail

            def create_commit(self, **kwargs: Any) -> Any:
                sent.update({op.path_in_repo: op.path_or_fileobj for op in kwargs["operations"]})
                return types.SimpleNamespace(commit_url="https://hub/commit/1")

            def upload_folder(self, **kwargs: Any) -> Any:  # by path (before issue 27's fix)
                root = Path(kwargs["folder_path"])
                sent.update({name: (root / name).read_bytes() for name in kwargs["allow_patterns"]})
                return types.SimpleNamespace(commit_url="https://hub/commit/1")

        def read_weights(*args: Any) -> Any:
            model = checked_weights(*args)
            if after_check is not None:
                after_check(folder)
            return model

        checked_weights = _remote.read_weights
        hub = types.SimpleNamespace(HfApi=FakeApi, CommitOperationAdd=types.SimpleNamespace)
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "huggingface_hub", hub)
            patch.setattr(_remote, "read_weights", read_weights)
            return push_to_hub(folder, REPO), sent, before

    return call


def _swap(folder: Path) -> None:
    """Replace the card and the weights once checked: another model's, an unchecked card."""
    other = save_pretrained(folder.parent / "other", UNet(3, 1, init_features=8, depth=2))
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    (folder / "README.md").write_bytes(b"\xff not checked")


def _link(name: str, target: str = "secret.txt") -> Callable[[Path, Path], object]:
    """Replace (or add) ``folder/name`` by a symbolic link to ``tmp/target``."""

    def prepare(folder: Path, tmp: Path) -> None:
        (tmp / "secret.txt").write_text("AWS_SECRET_ACCESS_KEY=do-not-upload\n")
        (tmp / "secrets").mkdir()
        link = folder / name
        link.parent.mkdir(exist_ok=True)
        if link.exists():
            link.replace(tmp / target)  # the real file, moved out of the folder
        link.symlink_to(tmp / target)

    return prepare


def _card(data: bytes | None) -> Callable[[Path, Path], object]:
    def prepare(folder: Path, tmp: Path) -> None:
        (folder / "README.md").unlink()
        if data is None:
            (folder / "README.md").mkdir()
        else:
            (folder / "README.md").write_bytes(data)

    return prepare


def _sent_the_three_files(result: Any) -> None:
    url, sent, before = result
    assert url == "https://hub/commit/1"
    assert sorted(sent) == ["README.md", "config.json", "model.safetensors"]
    assert sent == {name: before[name] for name in sent}  # the bytes that were checked


def _hub_errors() -> list[tuple[str, BaseException]]:
    """The errors the hub client raises offline, without a token, or refused."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    httpx = sys.modules[HfHubHTTPError.__mro__[1].__module__]  # httpx (or the hub's fork)
    request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
    return [
        ("ConnectError", httpx.ConnectError("[Errno -3] name resolution failed", request=request)),
        ("HfHubHTTPError", HfHubHTTPError(
            "401 Unauthorized", response=httpx.Response(401, request=request))),
        ("LocalTokenNotFoundError", LocalTokenNotFoundError("no token: huggingface-cli login")),
        ("OSError", OSError(101, "Network is unreachable")),
    ]  # fmt: skip


PUSH_ROWS: list[Row] = [
    Row("push-good-folder", _push(lambda folder, tmp: None), "the three files, nothing else",
        check=_sent_the_three_files),
    Row("push-files-swapped-after-the-check", _push(lambda folder, tmp: None, after_check=_swap),
        "the bytes that were checked, not the swapped files (was: the swapped files)",
        check=_sent_the_three_files),
    Row("push-card-symlink-to-a-secret", _push(_link("README.md")),
        "CheckpointError naming the link; nothing uploaded", CheckpointError,
        r"downloaded/README\.md is a symbolic link; push_to_hub uploads only regular files"),
    Row("push-weights-symlink", _push(_link("model.safetensors", "weights")),
        "CheckpointError naming the link", CheckpointError,
        r"downloaded/model\.safetensors is a symbolic link"),
    Row("push-symlink-in-a-subfolder", _push(_link("notes/keys.txt")),
        "CheckpointError naming the link", CheckpointError,
        r"downloaded/notes/keys\.txt is a symbolic link"),
    Row("push-linked-subfolder", _push(_link("data", "secrets")),
        "CheckpointError naming the link", CheckpointError,
        r"downloaded/data is a symbolic link"),
    Row("push-card-not-utf8", _push(_card(b"# cat\n\xff\xfe\x00")),
        "CheckpointError naming the card", CheckpointError,
        r"README\.md is not UTF-8 text \(byte 6\)"),
    Row("push-card-over-1-mib", _push(_card(b"#" * ((1 << 20) + 1))),
        "CheckpointError before reading it all", CheckpointError,
        r"README\.md is over the limit of 1048576 bytes"),
    Row("push-card-is-a-folder", _push(_card(None)), "CheckpointError naming the card",
        CheckpointError, r"README\.md is not a readable regular file"),
    *(
        Row(f"push-offline-{name}", _push(lambda folder, tmp: None, err),
            "CheckpointError naming the hub's error, which is chained", CheckpointError,
            rf"cannot upload .*downloaded to 'catlab/cat-unet' on the Hugging Face Hub: {name}")
        for name, err in _hub_errors()
    ),
]  # fmt: skip


# --- the card quotes names safely (issue 27, point 3) --------------------------------

HOSTILE_NAMES = (
    "bg\n---\nlicense: evil\n",
    "a | b",
    "`code` and \\| and \\",
    "<script>alert(1)</script> *x* _y_ [l](http://e) &amp; ~s~ $m$",
)
HOSTILE_FOLDER = 'it\'s "my"\\cat\nunet'


def _hostile_card(tmp: Path) -> str:
    net = UNet(3, 4, init_features=4, depth=2).describe(classes=list(HOSTILE_NAMES))
    return (save_pretrained(tmp / HOSTILE_FOLDER, net) / "README.md").read_text()


def _card_is_intact(card: str) -> None:
    from markdown_it import MarkdownIt

    front, body = card.split("---\n")[1:3]
    assert yaml.safe_load(front) == {
        "library_name": "catseg",
        "pipeline_tag": "image-segmentation",
        "tags": ["image-segmentation", "semantic-segmentation", "catseg", "unet", "pytorch",
                 "safetensors"],
    }  # fmt: skip
    assert [line for line in card.splitlines() if line == "---"] == ["---", "---"]
    snippet = re.search(r"Segmenter\.from_pretrained\((.*)\)  # a folder", body)
    assert snippet is not None
    assert ast.literal_eval(snippet.group(1)) == HOSTILE_FOLDER
    rendered = MarkdownIt("commonmark").enable("table").render(body)
    rows = re.findall(r"<tr>\n<td[^>]*>(\d+)</td>\n<td>(.*?)</td>\n<td>", rendered, re.S)
    shown = ["".join(c if c.isprintable() else ascii(c)[1:-1] for c in n) for n in HOSTILE_NAMES]
    assert [(label, html.unescape(cell)) for label, cell in rows] == [
        (str(i), name) for i, name in enumerate(shown)
    ]
    assert "<script>" not in rendered
    title = re.search(r"<h1>(.*)</h1>", rendered)
    assert title is not None
    assert html.unescape(title.group(1)) == HOSTILE_FOLDER.replace("\n", "\\n")


CARD_ROWS: list[Row] = [
    Row("card-hostile-class-and-folder-names", _hostile_card,
        "front matter, snippet, title and class table intact", check=_card_is_intact),
]  # fmt: skip


# --- safetensors headers whose sizes overflow 64 bits (issue 27, point 5) -------------


def _header_folder(tmp: Path, entry: dict[str, Any]) -> Path:
    """A good folder whose weights are replaced by a header holding one tensor ``w``."""
    folder = _folder(tmp)
    header = json.dumps({"w": entry}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    return folder


def _header(entry: dict[str, Any]) -> Callable[[Path], Any]:
    return lambda tmp: Segmenter.from_pretrained(_header_folder(tmp, entry))


SHAPE_2_63 = {"dtype": "F32", "shape": [0, 2**63], "data_offsets": [0, 0]}
STRIDES_OVER_INT64 = {"dtype": "F32", "shape": [0, 2**62, 4], "data_offsets": [0, 0]}
HEADER_ROWS: list[Row] = [
    Row("weights-shape-0-by-2**63", _header(SHAPE_2_63),
        "CheckpointError naming the file and tensor (was TypeError)",
        CheckpointError, r"model\.safetensors: tensor 'w' \(F32 \[0, 9223372036854775808\], "
        r"data offsets \[0, 0\]\) does not fit .* 64-bit sizes"),
    Row("weights-strides-over-int64", _header(STRIDES_OVER_INT64),
        "CheckpointError (was RuntimeError: stride overflow)",
        CheckpointError, r"model\.safetensors: tensor 'w' \(F32 \[0, 4611686018427387904, 4\]"),
    Row("weights-dtype-a-list", _header({"dtype": ["F32"], "shape": [1],
        "data_offsets": [0, 4]}), "CheckpointError (was TypeError: unhashable)",
        CheckpointError, r"model\.safetensors: tensor 'w' has a malformed entry"),
    Row("weights-shape-true", _header({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}),
        "CheckpointError: a bool is not a size", CheckpointError, r"tensor 'w' has a malformed"),
]  # fmt: skip

ALL_ROWS = [*ROWS, *PUSH_ROWS, *CARD_ROWS, *HEADER_ROWS]


def test_rows_are_distinct_and_complete() -> None:
    check_rows(ALL_ROWS)


@pytest.mark.parametrize("row", ALL_ROWS, ids=[row.id for row in ALL_ROWS])
def test_catalogue_folder(row: Row, tmp_path: Path) -> None:
    run_row(row, tmp_path)


_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    torch.set_num_threads(1)
    from catseg.errors import CatsegError
    from catseg.hub import load_pretrained

    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), vm + (1 << 30)))
    for folder in sys.argv[1:]:
        cpu = time.process_time()
        try:
            load_pretrained(folder)
            outcome = "loaded"
        except CatsegError as err:
            outcome = type(err).__name__
        except BaseException as err:  # MemoryError, a bare torch error ...: a failure
            outcome = "escaped " + type(err).__name__
        print(json.dumps({"outcome": outcome, "cpu": time.process_time() - cpu}), flush=True)
    """
)


def test_hostile_headers_are_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    """The header rows again in a child process held to 1 GiB more memory; each < 2 s CPU."""
    folders = [
        _header_folder(tmp_path / str(i), entry)
        for i, entry in enumerate([SHAPE_2_63, STRIDES_OVER_INT64])
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, folders)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(catseg.__file__).resolve().parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["outcome"] for r in results] == ["CheckpointError", "CheckpointError"]
    assert all(r["cpu"] < 2.0 for r in results), results
