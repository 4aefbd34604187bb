"""timm backbones as catseg encoders: ``UNet(encoder="timm:<model>")`` (extra ``catseg[timm]``).

This module is the plugin: catseg's own ``pyproject.toml`` registers
:func:`resolve_timm` under the name ``"timm:"`` in the ``catseg.encoders`` entry-point
group, so the family is discovered the same way as any third-party encoder, and timm
is imported only when a ``"timm:..."`` name is asked for.

Any timm model that supports ``features_only=True`` works. Options
(``encoder_options``): ``out_indices`` (which feature levels, timm's numbering) and
``drop_path_rate``. The encoder declares:

* the mean/std of the model's pretrained config as ``weights_preprocessing``;
* the weight source ``"timm"``: timm's own pretrained loading (its Hugging Face hub or
  URL cache; catseg downloads nothing itself);
* a file path: a timm-format state dict of the classifier model (``.safetensors`` or
  ``.pth``), checked strictly against that model (the classifier dropped), then mapped
  onto the feature extractor by timm's own loading
  (``pretrained_cfg_overlay=dict(state_dict=...)``).

The stem rule of :mod:`catseg.models.weights` adapts the first convolution to
``in_channels``, as for the ResNets.

Examples:
    >>> from catseg.models.encoders.registry import encoder_options
    >>> factory = TimmFactory("convnext_atto")  # what resolve_timm returns; timm not imported
    >>> factory, encoder_options(factory)
    (TimmFactory('convnext_atto'), ['drop_path_rate', 'out_indices'])
"""

from __future__ import annotations

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

__all__ = ["TimmEncoder", "TimmFactory", "resolve_timm"]

_PREFIX = "body."


def _timm() -> ModuleType:
    with foreign_errors(
        OptionalDependencyError,
        '"timm:..." encoders need timm',
        'install it with pip install "catseg[timm]"',
    ):  # ImportError, or torchvision's compiled ops failing to load
        timm = importlib.import_module("timm")  # optional dependency, imported on first use
    return timm


def _classifier_keys(model: nn.Module) -> tuple[str, ...]:
    cfg: Mapping[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return tuple(f"{n}." for n in ((names,) if isinstance(names, str) else names))


class TimmEncoder(nn.Module):
    """A timm ``features_only`` model following the :class:`~catseg.models.Encoder` protocol.

    Args:
        model_name: A timm model name, e.g. ``"convnext_atto"``.
        in_channels: Input channels (timm's ``in_chans``).
        out_indices: Feature levels to return (timm's numbering); ``None`` = timm's
            default (all levels).
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
        self.out_channels: tuple[int, ...] = tuple(int(c) for c in info.channels())
        self.reductions: tuple[int, ...] = tuple(int(r) for r in info.reduction())
        cfg: Mapping[str, Any] = getattr(self.body, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean"), cfg.get("std")
        self.weights_preprocessing = (
            Preprocessing(tuple(mean), tuple(std)) if mean is not None and std else None
        )
        self.weight_sources: tuple[str, ...] = ("timm",)
        first = next(
            (name for name, p in self.body.named_parameters() if p.ndim == 4),
            None,
        )
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
        """Return timm's feature maps, shallow → deep.

        Args:
            x: Input batch ``(N, in_channels, H, W)``.

        Returns:
            One map per ``out_channels`` entry.
        """
        return list(self.body(x))

    def _features_state(self, classifier_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map a classifier-model state dict onto the RGB feature extractor, via timm."""
        features = self._create(
            in_chans=3,
            pretrained=True,
            pretrained_cfg_overlay={"state_dict": dict(classifier_state)},
        )
        return {_PREFIX + k: v for k, v in features.state_dict().items()}

    def load_weight_source(self, source: str) -> Mapping[str, Tensor]:
        """Return the pretrained weights of ``source`` (``"timm"``) for RGB input.

        Args:
            source: ``"timm"``: timm's own pretrained loading and cache.

        Returns:
            The feature extractor's state dict (keys prefixed ``body.``).

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
        """Read a timm-format file of the classifier model, strictly, for RGB input.

        Args:
            path: A ``.safetensors`` or ``.pth`` state dict of the timm model (as on
                the Hugging Face hub), or a catseg checkpoint of a UNet with this encoder.

        Returns:
            The feature extractor's state dict (keys prefixed ``body.``).

        Raises:
            CheckpointError: If the file does not fit the timm model (the first missing,
                unexpected and mismatched keys are named).
        """
        from catseg.models.weights import check_state_keys, read_weights_file

        state, record = read_weights_file(path)
        if record is not None or all(k.startswith(_PREFIX) for k in state):
            return state  # already keyed like this encoder (a catseg checkpoint)
        full = _timm().create_model(self.model_name, pretrained=False)
        drop = _classifier_keys(full)
        expected = {k: v for k, v in full.state_dict().items() if not k.startswith(drop)}
        kept = {k: v for k, v in state.items() if not (drop and k.startswith(drop))}
        check_state_keys(expected, kept, f"{Path(path)} (timm model {self.model_name!r})")
        return self._features_state(kept)


class TimmFactory:
    """The encoder factory of one timm model: ``factory(in_channels=..., **options)``.

    Args:
        model_name: The timm model name.
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def __call__(
        self,
        *,
        in_channels: int = 3,
        out_indices: Sequence[int] | None = None,
        drop_path_rate: float | None = None,
    ) -> TimmEncoder:
        """Build the encoder (random weights; load with ``UNet(encoder_weights=...)``).

        Args:
            in_channels: Input channels.
            out_indices: Feature levels to return (timm's numbering).
            drop_path_rate: Stochastic depth rate.

        Returns:
            The encoder.
        """
        return TimmEncoder(
            self.model_name,
            in_channels=in_channels,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate,
        )

    def __repr__(self) -> str:
        return f"TimmFactory({self.model_name!r})"


def resolve_timm(member: str) -> TimmFactory:
    """The family resolver behind ``"timm:<model>"`` (the ``catseg.encoders`` entry point).

    Args:
        member: A timm model name.

    Returns:
        Its factory.

    Raises:
        OptionalDependencyError: If timm is not installed.
        EncoderError: If timm does not know the model.
    """
    timm = _timm()
    if not timm.is_model(member):
        raise EncoderError(
            f"timm has no model {member!r}; list them with timm.list_models('pattern*')"
        )
    return TimmFactory(member)
