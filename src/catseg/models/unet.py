"""The UNet: an encoder, a decoder that adapts to it, and a 1×1 head returning logits.

With the defaults, ``UNet(3, 1)`` is the tutorial's network (widths 32 → 512, four
2×2 max-poolings, two 3×3 conv-BatchNorm-ReLU per block, 2×2 transposed-convolution
upsampling, 1×1 head) with 7,765,985 parameters, but it returns logits (no sigmoid)
and accepts any input size: the input is zero-padded at the bottom and right to a
multiple of the total stride (16 for the default, 32 for ResNets) and the logits are
cropped back to ``H × W``.

Examples:
    >>> import torch
    >>> from catseg.models.unet import UNet
    >>> model = UNet(3, 2, init_features=4, depth=2).eval()
    >>> model(torch.zeros(1, 3, 250, 333)).shape
    torch.Size([1, 2, 250, 333])
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from catseg._validation import check_mean_std
from catseg.errors import ConfigError, DTypeError, EncoderError, ShapeError
from catseg.models._fuse import fold_batchnorms
from catseg.models.blocks import ActivationName, DecoderStage, NormName, UpsampleName
from catseg.models.config import RECORD_FIELDS, Mode, UNetConfig
from catseg.models.encoders.base import Encoder, validate_encoder
from catseg.models.encoders.registry import build_encoder
from catseg.models.preprocessing import Preprocessing
from catseg.models.weights import EncoderWeights, load_encoder_weights

__all__ = ["UNet", "UNetConfig", "count_parameters"]

_LOGITS = "no output activation: models return logits (activation= is the decoder's)"
_SMP = {  # segmentation_models_pytorch's arguments → what catseg calls them
    "encoder_name": "encoder=",
    "classes": "num_classes=",
    "encoder_weights='imagenet'": 'encoder_weights="torchvision" or "timm"',
    "activation='sigmoid'": _LOGITS,
    "activation='softmax'": _LOGITS,
    "activation='softmax2d'": _LOGITS,
}


class UNet(nn.Module):
    """UNet for semantic segmentation with a pluggable encoder; returns logits.

    The decoder has one stage per encoder skip connection (deepest first), each
    upsampling by the ratio of the two strides, concatenating the skip and applying
    a :class:`~catseg.models.blocks.ConvBlock`; if the shallowest feature is below
    full resolution (ResNets: stride 2) a last stage upsamples to full size. Default
    stage widths: the skip widths for ``"unet"`` (the paper), ``min(skip width, 256)``
    for other encoders, and half the previous width (>= 16) for the last stage.

    Args:
        in_channels: Input channels.
        num_classes: Logit maps; 1 = binary (sigmoid), >= 2 = multiclass (softmax).
        encoder: A registered name (:func:`~catseg.models.list_encoders`; a family
            member such as ``"timm:convnext_atto"``) or an ``nn.Module`` following
            :class:`~catseg.models.Encoder` (then ``config.to_dict()`` raises; register
            it by name to checkpoint it).
        encoder_options: Keyword options of the encoder factory (recorded in the
            config with the factory's defaults, so :meth:`from_config` and checkpoints
            rebuild the same encoder); an unknown option raises
            :class:`~catseg.errors.ConfigError` listing the accepted ones.
        encoder_weights: Pretrained encoder weights, loaded strictly once the encoder
            is built: a file path (torchvision ``.pth``, ``.safetensors``, or a catseg
            checkpoint whose encoder is reused), a state dict, or a named source of the
            encoder (``"torchvision"`` for the ResNets, ``"timm"`` for timm backbones).
            ``in_channels != 3`` adapts the first convolution by the stem rule, and the
            mean/std the weights expect are recorded in ``config.preprocessing`` (see
            :mod:`catseg.models.weights`). Not recorded in the config: a checkpoint
            holds the weights themselves.
        init_features: Width of the first classic-encoder block (``"unet"`` only; an
            option of that encoder).
        depth: Number of poolings of the classic encoder (``"unet"`` only).
        decoder_channels: Width of each decoder stage, deepest first.
        norm: Normalisation in the decoder and the classic encoder.
        activation: Activation in the decoder and the classic encoder.
        upsample: ``"transpose"`` (learned) or ``"bilinear"`` (+ 1×1 conv).
        dropout: ``Dropout2d`` probability after each decoder/classic block.

    Attributes:
        in_channels: Input channels.
        num_classes: Output channels.
        config: The :class:`UNetConfig` that rebuilds this model.
        stride: Total stride; inputs are padded to a multiple of it.

    Raises:
        ConfigError: On an unknown argument (segmentation_models_pytorch's spellings are
            translated), invalid options (named), an option the encoder does not accept,
            a ``decoder_channels`` of the wrong length, or ``encoder_options`` with an
            encoder instance.
        EncoderError: If the encoder name is unknown, the plugin is broken, or the
            encoder breaks the protocol (a dummy forward, :func:`~catseg.models.validate_encoder`).
        CheckpointError: If ``encoder_weights`` cannot be read or does not fit the
            encoder (the first missing, unexpected and mismatched keys are named).
        MissingFileError: If ``encoder_weights`` is neither a file nor a named source.

    Shape:
        ``(N, in_channels, H, W)`` float, any ``H, W >= 1`` → ``(N, num_classes, H, W)``.

    Examples:
        >>> import torch
        >>> model = UNet()
        >>> sum(p.numel() for p in model.parameters())
        7765985
        >>> small = UNet(1, 3, encoder="resnet18").eval()
        >>> small(torch.rand(2, 1, 31, 45)).shape
        torch.Size([2, 3, 31, 45])
        >>> UNet(encoder="unet", encoder_options={"init_features": 4, "depth": 2}).stride
        4
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> UNet:
        """Refuse what ``__init__`` does not take by a ConfigError naming smp's spellings."""
        said = [*kwargs, *(f"{k}={v!r}" for k, v in kwargs.items() if isinstance(v, str))]
        hints = "".join(f"; {s}: catseg says {_SMP[s]}" for s in said if s in _SMP)
        try:
            inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError as err:
            hints = f": {str(err)[:200]}{hints}"
        if hints:
            raise ConfigError(f"UNet arguments not understood{hints}")
        return super().__new__(cls)

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        *,
        encoder: str | Encoder = "unet",
        encoder_options: Mapping[str, Any] | None = None,
        encoder_weights: EncoderWeights | None = None,
        init_features: int = 32,
        depth: int = 4,
        decoder_channels: Sequence[int] | None = None,
        norm: NormName = "batch",
        activation: ActivationName = "relu",
        upsample: UpsampleName = "transpose",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        is_named = isinstance(encoder, str)
        self.config = UNetConfig(
            in_channels=in_channels,
            num_classes=num_classes,
            encoder=encoder if isinstance(encoder, str) else type(encoder).__name__,
            init_features=init_features,
            depth=depth,
            decoder_channels=cast(Any, decoder_channels),  # UNetConfig checks and converts
            norm=norm,
            activation=activation,
            upsample=upsample,
            dropout=dropout,
            encoder_options=cast(Any, {} if encoder_options is None else encoder_options),
            encoder_instance=None if is_named else type(encoder).__name__,
        )
        cfg = self.config
        self.in_channels, self.num_classes = in_channels, num_classes
        self._encoder_frozen = False
        built: object = encoder
        if isinstance(encoder, str):
            built, options, package = build_encoder(
                cfg.encoder, in_channels=in_channels, options=cfg.factory_options()
            )
            if cfg.encoder != "unet":  # the classic encoder's options are config fields
                self.config = cfg = dataclasses.replace(
                    cfg, encoder_options=options, encoder_package=package
                )
        elif cfg.encoder_options:
            raise ConfigError(
                "encoder_options apply to encoders given by name; configure the "
                f"{type(encoder).__name__} instance before passing it"
            )
        try:  # the contract, with one dummy forward at the smallest size forward feeds it
            channels, reductions = validate_encoder(built, in_channels=in_channels)
        except EncoderError as err:
            via = f" from {cfg.encoder_package}" if cfg.encoder_package else ""
            raise EncoderError(f"encoder {cfg.encoder!r}{via} breaks the contract: {err}") from err
        self.encoder = cast(nn.Module, built)
        self.stride = reductions[-1]
        if encoder_weights is not None:
            record = load_encoder_weights(self.encoder, encoder_weights, in_channels=in_channels)
            self.config = dataclasses.replace(self.config, preprocessing=record)
        n_skip = len(channels) - 1  # the decoder has a stage per skip, then one to full size
        n_stages = n_skip + (reductions[0] > 1)
        widths = cfg.decoder_channels
        if widths is None:  # the skip widths (capped at 256 but for "unet"), then half the last
            classic = is_named and cfg.encoder == "unet"
            skips = [c if classic else min(c, 256) for c in channels[-2::-1]]
            widths = (*skips, max((skips[-1] if skips else channels[-1]) // 2, 16))[:n_stages]
        elif len(widths) != n_stages:
            raise ConfigError(
                f"decoder_channels must have {n_stages} entries (one per decoder stage, "
                f"deepest first) for encoder {cfg.encoder!r} with reductions "
                f"{reductions}, got {len(widths)}: {list(widths)}"
            )
        stage = functools.partial(
            DecoderStage,
            upsample=cfg.upsample,
            norm=cfg.norm,
            activation=cfg.activation,
            dropout=cfg.dropout,
        )
        stages, previous = [], channels[-1]
        for width, level in zip(widths, range(n_skip - 1, n_skip - 1 - n_stages, -1), strict=True):
            # up to the skip of ``level``; level -1 is the input itself (no skip)
            skip, below = (channels[level], reductions[level]) if level >= 0 else (0, 1)
            stages.append(stage(previous, skip, width, factor=reductions[level + 1] // below))
            previous = width
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(previous, num_classes, 1)
        self._fused = False
        modules = list(self.modules())
        self._spatial_norm = any(isinstance(m, nn.GroupNorm | nn.InstanceNorm2d) for m in modules)
        self._batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)

    __new__.__signature__ = inspect.signature(__init__)  # type: ignore[attr-defined]

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The mean/std this model expects on ``[0, 1]`` pixels (``config.preprocessing``)."""
        return self.config.preprocessing

    def describe(
        self,
        *,
        classes: Sequence[str] | None = None,
        mode: Mode | None = None,
        image_size: int | tuple[int, int] | None = None,
        threshold: float | Sequence[float] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> UNet:
        """Record what using the trained model needs, in its config (the one record).

        Checkpoints, model folders, ONNX files and the
        :class:`~catseg.predict.Segmenter` read these facts back from ``config``;
        :func:`~catseg.training.fit` records the ones its training data states. Only
        the arguments given change; the others keep their recorded values.

        Args:
            classes: Class names, label 0 first (two for a binary model).
            mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
            image_size: ``(height, width)`` the model was trained at (an int for a square).
            threshold: Foreground probability threshold in ``(0, 1)`` (one per label
                allowed for a multilabel model).
            mean: Per-channel mean subtracted from ``[0, 1]`` pixels (give ``std`` too).
            std: Per-channel standard deviation the pixels are divided by.

        Returns:
            The model itself.

        Raises:
            ConfigError: If a value is invalid or does not fit the model (the message
                names it), e.g. a class count that is not the model's.

        Examples:
            >>> model = UNet(3, 1, init_features=4, depth=2)
            >>> model.describe(classes=["_background_", "cat"], image_size=64).config.image_size
            (64, 64)
            >>> model.describe(mean=(0.5,) * 3, std=(0.25,) * 3).preprocessing
            Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
            >>> model.describe(classes=["bg", "cat", "dog"])
            Traceback (most recent call last):
            ...
            catseg.errors.ConfigError: classes has 3 names but a binary (1-logit) model needs 2...
        """
        given = dict(classes=classes, mode=mode, image_size=image_size, threshold=threshold)
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if (mean is None) != (std is None):
            raise ConfigError("give mean and std together (both or neither)")
        if mean is not None and std is not None:
            record = Preprocessing(*check_mean_std(mean, std))
            changes["preprocessing"] = None if record.is_identity else record  # checked by config
        self.config = dataclasses.replace(self.config, **changes)
        return self

    @property
    def encoder_frozen(self) -> bool:
        """True after :func:`~catseg.models.freeze_encoder` (until unfrozen)."""
        return self._encoder_frozen

    def train(self, mode: bool = True) -> UNet:
        """Set training mode and return the model; a frozen encoder stays in eval mode."""
        super().train(mode)
        if mode and self._encoder_frozen:
            self.encoder.eval()
        return self

    @property
    def is_fused(self) -> bool:
        """True for a model returned by :meth:`fuse_for_inference` (inference only)."""
        return self._fused

    @classmethod
    def from_config(cls, cfg: UNetConfig | Mapping[str, Any]) -> UNet:
        """A new, untrained UNet of the architecture of ``cfg`` (a config or its ``to_dict()``).

        Raises:
            ConfigError: On unknown keys (named) or invalid values, or a config that
                records an encoder instance.
            EncoderError: If the encoder is not registered (a recorded plugin is named).

        Examples:
            >>> model = UNet(1, 2, init_features=4, depth=2).describe(mean=(0.5,), std=(0.2,))
            >>> clone = UNet.from_config(model.config.to_dict())
            >>> clone.config == model.config
            True
        """
        config = UNetConfig.from_dict(cfg) if not isinstance(cfg, UNetConfig) else cfg
        data = config.to_dict()  # raises for encoder instances
        package = data.pop("encoder_package")
        try:
            model = cls(**{k: v for k, v in data.items() if k not in RECORD_FIELDS})
        except (ConfigError, EncoderError) as err:  # a missing plugin says what to install
            hint = f"; the model was saved with {package}: pip install {package}" if package else ""
            raise type(err)(f"{err}{hint}") from err
        built = model.config.encoder_package
        if package and built != package:  # the recorded options are replayed: say so, once
            warnings.warn(
                f"plugin version mismatch: encoder {config.encoder!r} was saved with {package}, "
                f"this environment has {built or 'another version'}; the recorded options are "
                f"used (pip install {package} for the very same encoder)",
                UserWarning,
                stacklevel=2,
            )
        # the architecture as built here (plugin version, its options), the record's use facts
        use = {k: getattr(config, k) for k in RECORD_FIELDS}
        model.config = dataclasses.replace(model.config, **use)
        return model

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise DTypeError(f"UNet expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            hint = "; add a batch dimension with x.unsqueeze(0)" if x.ndim == 3 else ""
            raise ShapeError(
                f"UNet expects a 4-D batch (N, {self.in_channels}, H, W), got shape "
                f"{tuple(x.shape)}{hint}"
            )
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"UNet expects {self.in_channels} input channels, got shape {tuple(x.shape)} "
                f"(expected (N, {self.in_channels}, H, W))"
            )
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ShapeError(f"UNet input must have H, W >= 1, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise DTypeError(
                f"UNet expects a floating-point input, got {x.dtype}; convert uint8 images "
                "with x.float() / 255"
            )
        weight = next(self.parameters(), x)  # a model without parameters takes any dtype
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise DTypeError(
                f"UNet got a {x.dtype} input but its parameters are {weight.dtype}; convert "
                f"the input with x.to({weight.dtype}) (or the model with model.to({x.dtype})), "
                "or run it under torch.autocast"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of the same height and width as ``x``.

        When the padded input would leave a single pixel at the deepest level and the
        model normalises over space (GroupNorm, InstanceNorm, or BatchNorm in training on
        a batch of one image), the width is padded by one more stride, so that tiny inputs
        such as 1 × 1 work too.

        Args:
            x: Float batch ``(N, in_channels, H, W)``, any ``H, W >= 1``.

        Returns:
            Logits ``(N, num_classes, H, W)`` (a view, cropped back to ``H × W``).

        Raises:
            ShapeError: If ``x`` is not 4-D with ``in_channels`` channels and ``H, W >= 1``.
            DTypeError: If ``x`` is not a float tensor, or (outside autocast) not in the
                parameters' dtype (e.g. a float64 batch into a float32 model).

        Shape:
            - x: ``(N, in_channels, H, W)``, any ``H, W >= 1``.
            - output: ``(N, num_classes, H, W)``.
        """
        self._check_input(x)
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if (
            (self._spatial_norm or (self._batch_norm and self.training and x.shape[0] == 1))
            and height + pad_h == self.stride
            and width + pad_w == self.stride
        ):
            pad_w += self.stride
        # Pad and crop unconditionally (both are no-ops for multiples of the stride): a
        # Python branch on the size would be traced once by torch.export / ONNX export and
        # bake "no padding" into a graph meant to take any height and width.
        x = F.pad(x, (0, pad_w, 0, pad_h))
        features: list[Tensor] = self.encoder(x)
        y, skips = features[-1], features[-2::-1]  # skips deepest first, as the stages
        for i, stage in enumerate(self.decoder):
            y = stage(y, skips[i] if i < len(skips) else None)
        logits: Tensor = self.head(y)
        return logits[:, :, :height, :width]

    def fuse_for_inference(self) -> UNet:
        """Return a new eval-mode copy with every BatchNorm folded into its convolution.

        The original model is untouched. Outputs match the original's eval-mode
        outputs within 1e-4 (the fold is computed in float64). Memory format
        (``channels_last``), device and dtype are kept; parameters of the copy do not
        require gradients. The copy is for inference only: checkpoint the original.

        Returns:
            The fused model (``is_fused`` is True).

        Examples:
            >>> import torch
            >>> model = UNet(3, 1, init_features=4, depth=2).eval()
            >>> fused = model.fuse_for_inference()
            >>> x = torch.rand(1, 3, 20, 20)
            >>> torch.allclose(model(x), fused(x), atol=1e-4), model.is_fused, fused.is_fused
            (True, False, True)
        """
        fused = copy.deepcopy(self).eval()
        fold_batchnorms(fused)
        fused.requires_grad_(False)
        fused._fused = True
        return fused

    def extra_repr(self) -> str:
        """One line naming the encoder, channels and stride (shown by ``repr``)."""
        return (
            f"encoder={self.config.encoder!r}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, stride={self.stride}"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (buffers excluded).

    Examples:
        >>> count_parameters(UNet(3, 1))
        7765985
    """
    return sum(p.numel() for p in model.parameters())
