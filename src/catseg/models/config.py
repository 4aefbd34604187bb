"""The frozen, JSON-serialisable configuration of a :class:`~catseg.models.UNet`.

Examples:
    >>> from catseg.models.config import UNetConfig
    >>> UNetConfig(encoder="resnet18").to_dict()["encoder"]
    'resnet18'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catseg._bounds import short
from catseg._validation import (
    MODES,
    Mode,
    check_choice,
    check_class_names,
    check_finite_float,
    check_int,
    check_probability,
    check_size,
)
from catseg.errors import CatsegError, CheckpointError, ConfigError
from catseg.models.blocks import (
    ACTIVATIONS,
    NORMS,
    UPSAMPLES,
    ActivationName,
    NormName,
    UpsampleName,
)
from catseg.models.preprocessing import Preprocessing, check_preprocessing

__all__ = ["MODES", "Mode", "UNetConfig", "read_config"]

MAX_IMAGE_SIDE = 16384
"""The largest ``image_size`` side a record may ask for (a 16384² float batch is 3 GiB)."""
_CLASSIC_DEFAULTS = (32, 4)
_CLASSIC = "unet"
_PACKAGE = re.compile(r"[\w.-]{1,200}==[\w.+!-]{1,100}")  # a plugin's "dist==version"
RECORD_FIELDS = ("classes", "mode", "image_size", "threshold", "preprocessing")
"""The fields that describe a trained model's use rather than its architecture."""


def plain(name: str, value: object) -> Any:
    """``value`` as JSON-like data (tuples become lists), or a ConfigError naming ``name``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [plain(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: plain(f"{name}[{k!r}]", v) for k, v in value.items()}
    raise ConfigError(
        f"{name} must be JSON-like (str, int, float, bool, None, lists, dicts with str keys) "
        f"so that the config can be saved, got {type(value).__name__}: {value!r}"
    )


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a :class:`UNet` (frozen, JSON-serialisable).

    Attributes:
        in_channels: Input channels.
        num_classes: Output logit maps (1 = binary).
        encoder: Registered encoder name (``"prefix:member"`` for a family).
        encoder_options: Keyword options of the encoder factory (JSON-like values); a
            ``UNet`` records every one, defaults included (``"unet"``'s are its fields:
            ``init_features`` and ``depth`` given here move there).
        encoder_package: ``"distribution==version"`` of the plugin that provided the
            encoder (an entry point), or ``None`` (catseg's own or registered in-process).
        init_features: Width of the first classic-encoder block (``"unet"`` only).
        depth: Number of poolings of the classic encoder (``"unet"`` only).
        decoder_channels: Width of each decoder stage, deepest first; None = default.
        norm: Normalisation of the decoder (and of the classic encoder).
        activation: Activation of the decoder (and of the classic encoder).
        upsample: Decoder upsampling kind.
        dropout: ``Dropout2d`` probability after each decoder (and classic) block.
        preprocessing: The per-channel mean/std the model expects on ``[0, 1]`` pixels
            (:class:`~catseg.models.Preprocessing`), or ``None`` (identity): set from
            pretrained weights, by :func:`~catseg.training.fit` from the dataset's
            ``Normalize``, or by hand.
        classes: Class names, label 0 first: two (background, foreground) for a binary
            model, ``num_classes`` otherwise (a multilabel model's K labels, no
            background); ``None`` until known (:attr:`class_names` then gives defaults).
        mode: ``"binary"`` (``num_classes == 1``, sigmoid), ``"multiclass"`` (softmax)
            or ``"multilabel"`` (K independent sigmoid maps); ``None`` resolves to the
            first two from ``num_classes``.
        image_size: ``(height, width)`` the model was trained at (an int for a square;
            each side at most 16384), or ``None`` (any size).
        threshold: Foreground probability threshold of a binary or multilabel model, in
            ``(0, 1)`` (a multilabel model may give one per label).
        encoder_instance: Class name of an encoder passed as an instance (then the
            config cannot rebuild the model); None for named encoders.

    Raises:
        ConfigError: On construction, naming the first invalid field.

    Examples:
        >>> cfg = UNetConfig(num_classes=3, decoder_channels=[64, 32, 16, 8])
        >>> cfg.decoder_channels
        (64, 32, 16, 8)
        >>> UNetConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    in_channels: int = 3
    num_classes: int = 1
    encoder: str = "unet"
    init_features: int = 32
    depth: int = 4
    decoder_channels: tuple[int, ...] | None = None
    norm: NormName = "batch"
    activation: ActivationName = "relu"
    upsample: UpsampleName = "transpose"
    dropout: float = 0.0
    encoder_options: dict[str, Any] = field(default_factory=dict, hash=False)
    encoder_package: str | None = None
    preprocessing: Preprocessing | None = None
    classes: tuple[str, ...] | None = None
    mode: Mode | None = None
    image_size: tuple[int, int] | None = None
    threshold: float | tuple[float, ...] = 0.5
    encoder_instance: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_int("in_channels", self.in_channels, minimum=1)
        check_int("num_classes", self.num_classes, minimum=1)
        self._check_record()
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ConfigError(f"encoder must be a non-empty name, got {self.encoder!r}")
        self._normalise_options()
        check_int("init_features", self.init_features, minimum=1)
        check_int("depth", self.depth, minimum=1)
        if self.encoder != _CLASSIC and (self.init_features, self.depth) != _CLASSIC_DEFAULTS:
            raise ConfigError(
                "init_features and depth configure the classic 'unet' encoder only; got "
                f"init_features={self.init_features}, depth={self.depth} with encoder "
                f"{self.encoder!r}"
            )
        if not isinstance(self.encoder_instance, str | None):
            raise ConfigError(
                f"encoder_instance must be a class name or None, got {self.encoder_instance!r}"
            )
        widths: object = self.decoder_channels
        if widths is not None:
            if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or not widths:
                raise ConfigError(f"decoder_channels must be ints, one per stage, got {widths!r}")
            checked = tuple(check_int("each decoder_channels entry", w, minimum=1) for w in widths)
            object.__setattr__(self, "decoder_channels", checked)
        check_choice("norm", self.norm, NORMS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("upsample", self.upsample, UPSAMPLES)
        check_finite_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        object.__setattr__(
            self, "preprocessing", check_preprocessing(self.preprocessing, self.in_channels)
        )

    def _check_record(self) -> None:
        """Validate classes, mode, image size and threshold (the one validator of each)."""
        k = self.num_classes
        mode = self.mode if self.mode is not None else ("binary" if k == 1 else "multiclass")
        check_choice("mode", mode, MODES)
        if (mode == "binary") != (k == 1) and mode != "multilabel":
            raise ConfigError(
                f"mode {mode!r} needs {'1 logit' if mode == 'binary' else '>= 2 logits'}, "
                f"but num_classes is {k}"
            )
        object.__setattr__(self, "mode", mode)
        if self.classes is not None:
            expected = 2 if mode == "binary" else k
            names = check_class_names("classes", self.classes)
            if len(names) != expected or any(len(n) > 256 for n in names):
                kind = {"binary": "a binary (1-logit)", "multiclass": f"a {k}-class"}.get(
                    mode, f"a {k}-label multilabel"
                )
                raise ConfigError(
                    f"classes has {len(names)} names but {kind} model needs {expected} "
                    "names of at most 256 characters"
                    + (" (background first, e.g. ['_background_', 'cat'])" if k == 1 else "")
                )
            object.__setattr__(self, "classes", tuple(names))
        if self.image_size is not None:
            size = check_size("image_size", self.image_size)
            if max(size) > MAX_IMAGE_SIDE:
                raise ConfigError(
                    f"image_size {size} has a side over {MAX_IMAGE_SIDE} pixels; resize to the "
                    "size the model was trained at"
                )
            object.__setattr__(self, "image_size", size)
        threshold: object = self.threshold
        if isinstance(threshold, Sequence) and not isinstance(threshold, str):
            if mode != "multilabel" or len(threshold) != k:
                raise ConfigError(
                    f"threshold holds {len(threshold)} values; give one, or one per label of a "
                    f"multilabel model ({k})"
                )
            values = tuple(check_probability(f"threshold[{i}]", t) for i, t in enumerate(threshold))
            object.__setattr__(self, "threshold", values)
        else:
            object.__setattr__(self, "threshold", check_probability("threshold", threshold))

    @property
    def class_names(self) -> tuple[str, ...]:
        """:attr:`classes`, or default names when none are recorded.

        The defaults are ``("_background_", "foreground")`` for a binary model,
        ``label_0 ...`` for a multilabel one and ``class_0 ...`` otherwise.

        Examples:
            >>> UNetConfig(num_classes=3).class_names
            ('class_0', 'class_1', 'class_2')
        """
        if self.classes is not None:
            return self.classes
        if self.mode == "binary":
            return ("_background_", "foreground")
        prefix = "label" if self.mode == "multilabel" else "class"
        return tuple(f"{prefix}_{i}" for i in range(self.num_classes))

    def _normalise_options(self) -> None:
        options = self.encoder_options
        if not isinstance(options, Mapping):
            raise ConfigError(f"encoder_options must be a mapping, got {short(options)}")
        given: dict[str, Any] = plain("encoder_options", dict(options))
        if self.encoder == _CLASSIC:
            for key, default in zip(("init_features", "depth"), _CLASSIC_DEFAULTS, strict=True):
                current = getattr(self, key)
                value = given.pop(key, current)  # not given: the field stays
                if current not in (default, value):
                    raise ConfigError(
                        f"{key} is given twice: {key}={current} and encoder_options[{key!r}]"
                        f"={value!r}; give it once"
                    )
                object.__setattr__(self, key, value)
        object.__setattr__(self, "encoder_options", given)
        package = self.encoder_package
        if package is not None and not _PACKAGE.fullmatch(str(package)):
            raise ConfigError(
                f"encoder_package must be 'dist==version' or None, got {short(package)}"
            )

    def factory_options(self) -> dict[str, Any]:
        """The keyword options passed to the encoder factory.

        For ``"unet"`` they are ``init_features``, ``depth``, ``norm``, ``activation``
        and ``dropout`` (the UNet's convenient arguments), updated by
        ``encoder_options``; for other encoders, ``encoder_options`` alone.

        Returns:
            A new dict.

        Examples:
            >>> UNetConfig(init_features=8, depth=2).factory_options()["depth"]
            2
            >>> UNetConfig(encoder="resnet18").factory_options()
            {}
        """
        if self.encoder != _CLASSIC:
            return dict(self.encoder_options)
        classic = ("init_features", "depth", "norm", "activation", "dropout")
        return {**{key: getattr(self, key) for key in classic}, **self.encoder_options}

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict (tuples become lists).

        Returns:
            ``{field: value}`` for every field except ``encoder_instance``.

        Raises:
            ConfigError: If the model was built from an encoder instance.

        Examples:
            >>> UNetConfig().to_dict()["encoder"]
            'unet'
        """
        if self.encoder_instance is not None:
            raise ConfigError(
                f"this UNet was built from an encoder instance ({self.encoder_instance}), so its "
                "config cannot rebuild it; register the encoder by name with "
                "@catseg.models.register_encoder('name') (or a 'catseg.encoders' entry point) "
                "and build UNet(encoder='name')"
            )
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["encoder_instance"]
        if self.preprocessing is not None:
            data["preprocessing"] = self.preprocessing.to_dict()
        return {key: plain(key, value) for key, value in data.items()}  # tuples become lists

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        """Build a config from a mapping such as :meth:`to_dict`'s output (defaults for the rest).

        Raises:
            ConfigError: If ``data`` is not a mapping, has unknown keys (all named), or
                an invalid value.

        Examples:
            >>> UNetConfig.from_dict({"num_classes": 2, "depht": 3})
            Traceback (most recent call last):
            ...
            catseg.errors.ConfigError: unknown UNet config key(s) ['depht']; expected ...
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a UNet config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"encoder_instance"}
        unknown = sorted(str(k)[:64] for k in data if k not in known)
        if unknown:
            raise ConfigError(
                f"unknown UNet config key(s) {unknown[:5]}; expected keys {sorted(known)}"
            )
        return cls(**data)


MAX_CHANNELS = 1024
"""Most input channels a stored record may ask for."""
MAX_CLASSES = 65_536
"""Most classes (output maps) a stored record may ask for."""
MAX_DEPTH_STAGES = 12
"""Deepest classic encoder (number of poolings) a checkpoint's config may ask for."""
MAX_WIDTH = 65_536
"""Widest layer (channels) a checkpoint's config may ask for."""
_MAX_DECODER_STAGES = 32


def _check_bounds(config: Mapping[str, Any], fail: Callable[[str], CatsegError]) -> None:
    """Refuse a model config that would build an absurdly large model, before building it.

    Only the sizes are checked here (ints of the known fields); :class:`UNetConfig`
    checks everything else.
    """

    def bounded(name: str, value: object, limit: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if value > limit:
            raise fail(f"{name}={short(value)} is over the limit of {limit}")
        return value

    bounded("in_channels", config.get("in_channels"), MAX_CHANNELS)
    bounded("num_classes", config.get("num_classes"), MAX_CLASSES)
    depth = bounded("depth", config.get("depth"), MAX_DEPTH_STAGES)
    features = bounded("init_features", config.get("init_features"), MAX_WIDTH)
    if depth is not None and features is not None and features * 2**depth > MAX_WIDTH:
        raise fail(
            f"init_features={features}, depth={depth} gives a deepest layer of "
            f"{features * 2**depth} channels, over the limit of {MAX_WIDTH}"
        )
    widths = config.get("decoder_channels")
    if isinstance(widths, list | tuple):
        bounded("len(decoder_channels)", len(widths), _MAX_DECODER_STAGES)
        for width in widths:
            bounded("a decoder_channels entry", width, MAX_WIDTH)


def plugin_change(saved: UNetConfig, built: UNetConfig) -> str:
    """A note for a weights mismatch when the encoder's plugin version changed, else ``""``."""
    old, new = saved.encoder_package, built.encoder_package
    if old in (None, new):
        return ""
    return (
        f" (plugin version mismatch: encoder {saved.encoder!r} was saved with {old}, this "
        f"environment has {new or 'another'}; pip install {old})"
    )


def read_config(data: object, source: object) -> UNetConfig:
    """The record stored in a file (checkpoint, model folder or ONNX metadata), checked.

    Every reader of a file goes through here, so one tampered value gives the same
    message, after the file's name, whichever kind of file holds it.

    Args:
        data: The stored ``UNetConfig.to_dict()`` (already parsed, bounded plain data).
        source: The file, named first in the message.

    Raises:
        CheckpointError: If the record is not a valid config (the message names the file
            and the field).

    Examples:
        >>> read_config({"num_classes": 1, "threshold": 1.5}, "cat.pt")
        Traceback (most recent call last):
        ...
        catseg.errors.CheckpointError: cat.pt: invalid model record: threshold must be ...
    """

    def fail(message: str) -> CheckpointError:
        return CheckpointError(f"{source}: invalid model record: {message}")

    if not isinstance(data, Mapping):
        raise fail(f"expected an object of config fields, got {type(data).__name__}")
    _check_bounds(data, fail)
    try:
        return UNetConfig.from_dict(data)
    except ConfigError as err:
        raise fail(str(err)) from None
