"""Pretrained encoder weights in one call: ``UNet(..., encoder_weights=...)``.

``encoder_weights`` is a **file path** (a torchvision ``.pth`` state dict, a
``.safetensors`` file, or a catseg checkpoint whose ``encoder.*`` weights and recorded
preprocessing are reused; read with ``torch.load(weights_only=True)``), a **state dict**
keyed like the encoder, or a **named source** the encoder declares in ``weight_sources``
(``"torchvision"``, ``"timm"``), fetched by its ``load_weight_source(name)``. Then:

1. keys starting with one of the encoder's ``ignored_weights`` are dropped (``fc.*``);
2. **the stem rule** adapts the first convolution (``stem_weight``) when the model's
   ``in_channels`` differs from the weights' (see :func:`adapt_stem_weight`: ``k`` equal
   channels give the stem output of that grey image repeated to RGB);
3. keys are matched strictly: a missing, unexpected or mismatched-shape key raises
   :class:`~catseg.errors.CheckpointError` naming the first of each and the source
   (BatchNorm ``num_batches_tracked`` counters, absent from old files, start at 0);
4. the weights are copied in (the caller's tensors are untouched), and the
   preprocessing they expect (the checkpoint's record, else the encoder's
   ``weights_preprocessing``) is returned, adapted to ``in_channels`` by the same rule.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn

from catseg._bounds import Budget, check_archive, short, walk_plain, weight_problem
from catseg._validation import check_positive_int
from catseg.errors import CheckpointError, ConfigError, MissingFileError, OptionalDependencyError
from catseg.models.config import read_config
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.preprocessing import Preprocessing

__all__ = [
    "EncoderWeights",
    "adapt_stem_weight",
    "check_state_keys",
    "load_encoder_weights",
    "read_weights_file",
]

EncoderWeights = Union[str, "os.PathLike[str]", Mapping[str, Tensor]]
"""What ``UNet(encoder_weights=...)`` accepts: a path, a named source or a state dict."""

_CHECKPOINT_TAG = "catseg.checkpoint"


def adapt_stem_weight(weight: Tensor, in_channels: int) -> Tensor:
    """A new first-convolution weight ``(out, c, kh, kw)`` for ``in_channels`` inputs.

    The stem rule, with ``S`` the sum of the ``c`` filters and ``k = in_channels``: for
    ``k < c`` every channel's filter is ``S / k``; for ``k > c`` the ``c`` filters are kept,
    times ``c / k``, and each new channel's filter is ``S / k``. So for every ``k`` an input
    whose ``k`` channels all equal ``g`` gives the output of ``(g, g, g)`` in the RGB model.

    Raises:
        ConfigError: If ``weight`` is not a non-empty 4-d float tensor or ``in_channels``
            is not a positive int.

    Examples:
        >>> import torch
        >>> w = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
        >>> adapt_stem_weight(w, 2).flatten().tolist(), adapt_stem_weight(w, 4).flatten().tolist()
        ([3.0, 3.0], [0.75, 1.5, 2.25, 1.5])
    """
    in_channels = check_positive_int("in_channels", in_channels)
    if not (isinstance(weight, Tensor) and weight.dim() == 4 and weight.is_floating_point()):
        got = f"{weight.dtype} of shape {tuple(weight.shape)}" if torch.is_tensor(weight) else ""
        raise ConfigError(f"weight must be a 4-d float tensor, got {got or short(weight)}")
    if not weight.numel():
        raise ConfigError(f"weight must not be empty, got shape {tuple(weight.shape)}")
    channels = weight.shape[1]
    if in_channels == channels:
        return weight.clone()
    kept = weight[:, : channels if in_channels > channels else 0] * channels
    added = weight.sum(dim=1, keepdim=True).repeat(1, in_channels - kept.shape[1], 1, 1)
    return torch.cat([kept, added], dim=1) / in_channels


def _check_tensors(data: Mapping[Any, Any], where: str) -> dict[str, Tensor]:
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"{where} is not a state dict (names → tensors): entries {short(bad)} are "
            f"not; top-level keys: {short(list(data))}"
        )
    return dict(data)


def read_weights_file(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], Preprocessing | None]:
    """Read a state dict, a ``.safetensors`` file or a catseg checkpoint safely.

    A ``torch.save`` file is read as :func:`~catseg.checkpoint.load_checkpoint` reads one.

    Returns:
        ``(state_dict, preprocessing)``, the preprocessing recorded by a catseg
        checkpoint (``None`` for other files).

    Raises:
        MissingFileError: If the file does not exist.
        OptionalDependencyError: For a ``.safetensors`` file without ``safetensors``.
        CheckpointError: If the file is unreadable, over the bounds, holds pickled objects
            outside ``torch.load(weights_only=True)``'s safe set, or is not a state dict.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "w.pth"
        >>> torch.save({"conv1.weight": torch.zeros(1)}, path)
        >>> state, record = read_weights_file(path)
        >>> list(state), record
        (['conv1.weight'], None)
    """
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"encoder weights file {file} does not exist")
    if file.suffix == ".safetensors":
        with foreign_errors(
            OptionalDependencyError,
            f"reading {file} needs the safetensors package",
            "pip install safetensors",
        ):
            load_file = importlib.import_module("safetensors.torch").load_file
        with foreign_errors(CheckpointError, f"{file} is not a readable safetensors file"):
            tensors = load_file(str(file), device="cpu")
        return _check_tensors(tensors, str(file)), None
    check_archive(file)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, BadZipFile, KeyError ...
        raise CheckpointError(
            f"{file} cannot be read safely as encoder weights (torch.load with "
            f"weights_only=True): {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from err
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{file} holds a {type(data).__name__}, expected a state dict")
    walk_plain(data, str(file), Budget(), CheckpointError)
    if data.get("format") != _CHECKPOINT_TAG:
        return _check_tensors(data, str(file)), None
    state, config = data.get("state_dict"), read_config(data.get("model_config"), file)
    state = state if isinstance(state, Mapping) else {}
    encoder = {k[8:]: v for k, v in state.items() if str(k).startswith("encoder.")}
    if not encoder:
        raise CheckpointError(f"{file} is a catseg checkpoint with no encoder.* weights")
    return _check_tensors(encoder, str(file)), config.preprocessing


def _resolve(
    encoder: nn.Module, weights: object
) -> tuple[dict[str, Tensor], Preprocessing | None, str]:
    """The raw state dict of ``weights``, its recorded preprocessing and a description."""
    sources: tuple[str, ...] = tuple(getattr(encoder, "weight_sources", ()))
    name = type(encoder).__name__
    if isinstance(weights, Mapping):
        return _check_tensors(weights, "encoder_weights"), None, "the given state dict"
    if isinstance(weights, str) and weights in sources:
        loaded = encoder.load_weight_source(weights)  # type: ignore[operator]
        return _check_tensors(loaded, f"source {weights!r}"), None, f"source {weights!r}"
    if not isinstance(weights, str | os.PathLike):
        raise ConfigError(
            "encoder_weights must be a file path, a state dict or a named source "
            f"({list(sources)} for {name}), got {type(weights).__name__}"
        )
    file = Path(weights)
    if not file.is_file():
        raise MissingFileError(
            f"encoder_weights {os.fspath(weights)!r} is neither a file nor a weight source of "
            f"{name} (sources: {list(sources)})"
        )
    reader = getattr(encoder, "read_weights_file", None)
    if callable(reader):  # encoders whose files differ from their module tree (timm)
        custom = reader(file)
        if custom is not None:
            return _check_tensors(custom, str(file)), None, str(file)
    return (*read_weights_file(file), str(file))


def check_state_keys(
    expected: Mapping[str, Tensor], state: Mapping[str, Tensor], where: str
) -> None:
    """Raise unless ``state`` has exactly the keys and shapes of ``expected``.

    Raises:
        CheckpointError: Naming the first missing, unexpected and mismatched-shape keys
            (at most five of each) and ``where``.

    Examples:
        >>> import torch
        >>> check_state_keys({"a": torch.zeros(2)}, {"a": torch.zeros(3), "b": torch.zeros(1)},
        ...                  "w.pth")
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: the weights from w.pth do not fit: unexpected keys: b; \
shape mismatches (weights vs model): a (3,) vs (2,)
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = [
        f"{label}: {', '.join(keys[:5])}" + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (weights vs model)", mismatched),
        )
        if keys
    ]
    if parts:
        raise CheckpointError(f"the weights from {where} do not fit: " + "; ".join(parts))


def _match(
    encoder: nn.Module, state: dict[str, Tensor], in_channels: int, where: str
) -> dict[str, Tensor]:
    expected = encoder.state_dict()
    ignored = tuple(getattr(encoder, "ignored_weights", ()))
    state = {k: v for k, v in state.items() if not (ignored and k.startswith(ignored))}
    for key, value in state.items():
        if (problem := weight_problem(value, expected.get(key))) is not None:
            raise CheckpointError(f"{where}: weight {key!r} {problem}")
    stem = getattr(encoder, "stem_weight", None)
    if isinstance(stem, str) and stem in state and stem in expected:
        have, want = state[stem], expected[stem]
        if have.ndim == 4 and have.shape[1] != want.shape[1] == in_channels:
            state[stem] = adapt_stem_weight(have, in_channels)
    counters = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    state.update({k: torch.zeros_like(expected[k]) for k in counters})
    check_state_keys(
        expected, state, f"{where} into {type(encoder).__name__} (in_channels={in_channels})"
    )
    return state


def load_encoder_weights(
    encoder: nn.Module, weights: EncoderWeights, *, in_channels: int
) -> Preprocessing | None:
    """Load ``weights`` into ``encoder`` strictly; return the preprocessing they expect.

    See the module documentation for the sources and the rules.

    Args:
        encoder: The encoder (its parameters and buffers are overwritten).
        weights: A file path, a state dict or a named source of the encoder.
        in_channels: Input channels of the model (for the stem rule).

    Returns:
        The preprocessing for ``in_channels`` channels, or ``None``.

    Raises:
        ConfigError: If ``weights`` has an unsupported type.
        MissingFileError: If a path does not exist and is not a named source.
        CheckpointError: If the file is unreadable or its keys do not match (the first
            missing, unexpected and mismatched keys are named, with the file).
        OptionalDependencyError: If the source needs a library that is not installed.

    Examples:
        >>> from catseg.models.encoders import get_encoder
        >>> source = get_encoder("resnet18").state_dict()
        >>> encoder = get_encoder("resnet18", in_channels=1)
        >>> load_encoder_weights(encoder, source, in_channels=1)
        Preprocessing(mean=(0.449,), std=(0.226,))
        >>> load_encoder_weights(encoder, {"conv1.weight": source["conv1.weight"]},
        ...                      in_channels=1)
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: the weights from the given state dict into \
ResNetEncoder (in_channels=1) do not fit: missing keys: bn1.weight, ...
    """
    raw, record, where = _resolve(encoder, weights)
    state = _match(encoder, raw, in_channels, where)
    with torch.no_grad():
        encoder.load_state_dict(state, strict=True)
    if record is None:
        declared = getattr(encoder, "weights_preprocessing", None)
        record = declared if isinstance(declared, Preprocessing) else None
    return None if record is None else record.for_channels(in_channels)
