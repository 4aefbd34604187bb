"""timm backbones as catseg encoders: ``UNet(encoder="timm:<model>")`` (extra ``catseg[timm]``).

This module is a plugin: catseg's ``pyproject.toml`` exposes :func:`resolve_timm` as the
family ``"timm:"`` of the ``catseg.encoders`` entry points, so timm is imported only when
a ``"timm:..."`` name is asked for. Any timm model that supports ``features_only=True``
works, with the options ``out_indices`` (timm's numbering) and ``drop_path_rate``.
``encoder_weights`` takes ``"timm"`` (timm's own pretrained loading and cache) or a
timm-format file of the classifier model (``.safetensors`` or ``.pth``), checked strictly,
then mapped onto the feature extractor by timm (``pretrained_cfg_overlay``). The stem rule
adapts the first convolution to ``in_channels``, as for the ResNets.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from catseg.errors import EncoderError, OptionalDependencyError
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.preprocessing import Preprocessing
from catseg.models.weights import check_state_keys, read_weights_file

__all__ = ["TimmEncoder", "resolve_timm"]

_PREFIX = "body."


def _timm() -> ModuleType:
    with foreign_errors(
        OptionalDependencyError,
        '"timm:..." encoders need timm',
        'install it with pip install "catseg[timm]"',
    ):  # ImportError, or torchvision's compiled ops failing to load
        return importlib.import_module("timm")


class TimmEncoder(nn.Module):
    """A timm ``features_only`` model following the :class:`~catseg.models.Encoder` protocol.

    Args:
        model_name: A timm model name, e.g. ``"convnext_atto"``.
        in_channels: Input channels (timm's ``in_chans``).
        out_indices: Feature levels to return (timm's numbering); ``None``: all.
        drop_path_rate: Stochastic depth rate, for models that have it.

    Attributes:
        out_channels: Channels of each returned map (timm's ``feature_info``).
        reductions: Stride of each returned map.
        weights_preprocessing: Mean/std of the pretrained config.
        weight_sources: ``("timm",)``.
        stem_weight: Key of the first convolution's weight.
        ignored_weights: Empty (classifier keys are dropped when a file is read).

    Raises:
        OptionalDependencyError: If timm is not installed.
        EncoderError: If timm does not know the model or cannot build its features.
    """

    def __init__(
        self,
        model_name: str,
        *,
        in_channels: int = 3,
        out_indices: Sequence[int] | None = None,
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self._create_args: dict[str, Any] = {"features_only": True}
        if out_indices is not None:
            self._create_args["out_indices"] = tuple(int(i) for i in out_indices)
        if drop_path_rate is not None:
            self._create_args["drop_path_rate"] = float(drop_path_rate)
        self.body = self._create(in_chans=in_channels, pretrained=False)
        info: Any = self.body.feature_info
        self.out_channels = tuple(int(c) for c in info.channels())
        self.reductions = tuple(int(r) for r in info.reduction())
        cfg: Mapping[str, Any] = getattr(self.body, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean"), cfg.get("std")
        self.weights_preprocessing = (
            Preprocessing(tuple(mean), tuple(std)) if mean is not None and std else None
        )
        self.weight_sources = ("timm",)
        first = next((n for n, p in self.body.named_parameters() if p.ndim == 4), None)
        self.stem_weight = None if first is None else _PREFIX + first
        self.ignored_weights: tuple[str, ...] = ()

    def _create(self, **overrides: Any) -> nn.Module:
        timm = _timm()
        with foreign_errors(
            EncoderError,
            f"timm cannot build {self.model_name!r} with features_only=True",
            "see timm.list_models()",
        ):
            model: nn.Module = timm.create_model(self.model_name, **self._create_args, **overrides)
        return model

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return timm's feature maps of ``x``, shallow → deep."""
        return list(self.body(x))

    def _features_state(self, classifier_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map a classifier-model state dict onto the RGB feature extractor, via timm."""
        overlay = {"state_dict": dict(classifier_state)}
        features = self._create(in_chans=3, pretrained=True, pretrained_cfg_overlay=overlay)
        return {_PREFIX + k: v for k, v in features.state_dict().items()}

    def load_weight_source(self, source: str) -> Mapping[str, Tensor]:
        """The RGB weights (keys ``body.*``) of ``"timm"``: timm's pretrained loading.

        Raises:
            EncoderError: If the source is unknown or timm cannot provide the weights.
        """
        if source != "timm":
            raise EncoderError(f"timm encoders have the weight source 'timm', got {source!r}")
        with foreign_errors(
            EncoderError,
            f"timm could not provide pretrained weights for {self.model_name!r}",
            "download them once, or pass a local file",
        ):
            full = _timm().create_model(self.model_name, pretrained=True)
        return self._features_state(full.state_dict())

    def read_weights_file(self, path: str | os.PathLike[str]) -> Mapping[str, Tensor]:
        """Read the RGB weights (keys ``body.*``) from a file, strictly.

        Args:
            path: A ``.safetensors`` or ``.pth`` state dict of the timm model (as on the
                Hugging Face hub), or a catseg checkpoint of a UNet with this encoder.

        Raises:
            CheckpointError: If the file does not fit the timm model (the first missing,
                unexpected and mismatched keys are named).
        """
        state, record = read_weights_file(path)
        if record is not None or all(k.startswith(_PREFIX) for k in state):
            return state  # already keyed like this encoder (a catseg checkpoint)
        full = _timm().create_model(self.model_name, pretrained=False)
        names = (getattr(full, "pretrained_cfg", None) or {}).get("classifier") or ()
        drop = tuple(f"{n}." for n in ((names,) if isinstance(names, str) else names))
        expected = {k: v for k, v in full.state_dict().items() if not k.startswith(drop)}
        kept = {k: v for k, v in state.items() if not (drop and k.startswith(drop))}
        check_state_keys(expected, kept, f"{Path(path)} (timm model {self.model_name!r})")
        return self._features_state(kept)


def resolve_timm(member: str) -> functools.partial[TimmEncoder]:
    """The family resolver behind ``"timm:<model>"``: the factory of one timm model.

    Raises:
        OptionalDependencyError: If timm is not installed.
        EncoderError: If timm does not know the model.
    """
    if not _timm().is_model(member):
        raise EncoderError(f"timm has no model {member!r}; see timm.list_models('pattern*')")
    return functools.partial(TimmEncoder, member)
