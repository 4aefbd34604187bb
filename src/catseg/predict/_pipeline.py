"""The machinery behind Segmenter: configuration checks, pre/post-processing, batching."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import nn

from catseg._runtime import autocast
from catseg.errors import ConfigError, NonFiniteError, ShapeError
from catseg.predict._inputs import load_input
from catseg.predict._prediction import Prediction
from catseg.predict._tiling import tiled_scores

__all__ = ["Pipeline", "Postprocess"]

Postprocess = Callable[[torch.Tensor], torch.Tensor]
"""Hook on the class probabilities ``(K, H, W)`` returning new ones of the same shape."""


def _check_classes(classes: Sequence[str], num_outputs: int | None) -> list[str]:
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ConfigError(f"classes must be a sequence of non-empty strings, got {classes!r}")
    names = list(classes)
    if not 2 <= len(names) <= 256:
        raise ConfigError(
            f"classes must name between 2 and 256 labels (background first; a binary model "
            f"has two, e.g. ['_background_', 'cat']), got {len(names)}: {names!r}"
        )
    if num_outputs is not None:
        wanted = 2 if num_outputs == 1 else num_outputs
        if len(names) != wanted:
            raise ConfigError(
                f"the model has {num_outputs} output channel(s), so classes must have "
                f"{wanted} names, got {len(names)}: {names!r}"
            )
    return names


def _check_norm(
    values: Sequence[float] | None, default: float, channels: int, name: str
) -> tuple[float, ...]:
    if values is None:
        return (default,) * channels
    floats = tuple(float(v) for v in values)
    if len(floats) != channels or not all(math.isfinite(v) for v in floats):
        raise ConfigError(
            f"{name} must hold {channels} finite numbers (one per input channel), got "
            f"{tuple(values)!r}"
        )
    if name == "std" and not all(v > 0 for v in floats):
        raise ConfigError(f"std values must be > 0, got {floats!r}")
    return floats


def _check_pair(value: object, name: str, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"{name} must be None or {what} as two ints, got {value!r}")
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"{name} must be None or {what} as two ints, got {value!r}")
    return int(pair[0]), int(pair[1])


class Pipeline:
    """Shared state and steps of a Segmenter (PyTorch or ONNX forward pass)."""

    _module: nn.Module | None
    _forward: Callable[[torch.Tensor], torch.Tensor]
    _autocast_dtype: torch.dtype | None
    _channels_last: bool

    def _configure(
        self,
        *,
        in_channels: int,
        num_outputs: int | None,
        classes: Sequence[str],
        image_size: Sequence[int] | None,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        threshold: float,
        device: torch.device,
        tta: bool,
        tile: Sequence[int] | None,
        postprocess: Postprocess | None,
        batch_size: int,
    ) -> None:
        self._classes = _check_classes(classes, num_outputs)
        self._num_outputs = num_outputs
        self._in_channels = in_channels
        size = _check_pair(image_size, "image_size", "(height, width)")
        if size is not None and min(size) < 1:
            raise ConfigError(f"image_size must be positive, got {image_size!r}")
        self._image_size = size
        self._mean = _check_norm(mean, 0.0, in_channels, "mean")
        self._std = _check_norm(std, 1.0, in_channels, "std")
        if isinstance(threshold, bool) or not 0.0 < float(threshold) < 1.0:
            raise ConfigError(f"threshold must be a probability in (0, 1), got {threshold!r}")
        self._threshold = float(threshold)
        self._device = device
        self._tta = bool(tta)
        pair = _check_pair(tile, "tile", "(size, overlap)")
        if pair is not None and not (pair[0] >= 1 and 0 <= pair[1] < pair[0]):
            raise ConfigError(
                f"tile must be (size, overlap) with size >= 1 and 0 <= overlap < size, got {tile!r}"
            )
        self._tile = pair
        self._tile_align = 1
        if postprocess is not None and not callable(postprocess):
            raise ConfigError(f"postprocess must be callable, got {type(postprocess).__qualname__}")
        self._postprocess = postprocess
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        self._batch_size = batch_size
        shape = (in_channels, 1, 1)
        self._mean_t = torch.tensor(self._mean, dtype=torch.float32, device=device).view(shape)
        self._std_t = torch.tensor(self._std, dtype=torch.float32, device=device).view(shape)

    # ------------------------------------------------------------------ properties
    @property
    def classes(self) -> list[str]:
        """Class names, label 0 first (a copy)."""
        return list(self._classes)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` images are resized to before the model, or ``None``."""
        return self._image_size

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel normalisation mean."""
        return self._mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel normalisation standard deviation."""
        return self._std

    @property
    def threshold(self) -> float:
        """Foreground probability threshold of a binary model."""
        return self._threshold

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return self._device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype ``precision`` resolved to, ``None`` for plain fp32."""
        return self._autocast_dtype

    @property
    def model(self) -> nn.Module | None:
        """The Segmenter's own (possibly fused) copy of the model; ``None`` for ONNX."""
        return self._module

    def __repr__(self) -> str:
        precision = "fp32" if self._autocast_dtype is None else str(self._autocast_dtype)[6:]
        return (
            f"Segmenter(classes={self._classes!r}, image_size={self._image_size}, "
            f"device={str(self._device)!r}, precision={precision!r}, tta={self._tta}, "
            f"tile={self._tile})"
        )

    # ------------------------------------------------------------------ forward pass
    def _torch_forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self._module is not None  # set whenever this forward is used
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self._device, self._autocast_dtype):
            logits = self._module(x)
        if not isinstance(logits, torch.Tensor):
            raise ShapeError(f"the model must return a logits tensor, got {type(logits)}")
        return logits.float()

    def _scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Per-pixel probabilities ``(N, K', h, w)`` of the model's K' outputs, in fp32."""
        n = batch.shape[0]
        inputs = torch.cat([batch, batch.flip(-1)]) if self._tta else batch
        logits = self._forward(inputs)
        if (
            logits.ndim != 4
            or logits.shape[0] != inputs.shape[0]
            or logits.shape[2:] != (inputs.shape[2:])
        ):
            raise ShapeError(
                f"the model returned shape {tuple(logits.shape)} for input "
                f"{tuple(inputs.shape)}; expected (N, K, H, W) logits of the input's size"
            )
        if self._num_outputs is None:
            _check_classes(self._classes, logits.shape[1])
            self._num_outputs = int(logits.shape[1])
        elif logits.shape[1] != self._num_outputs:
            raise ShapeError(
                f"the model returned {logits.shape[1]} channels, expected {self._num_outputs}"
            )
        if not bool(torch.isfinite(logits).all()):
            hint = "" if self._autocast_dtype is None else "; try precision='fp32'"
            raise NonFiniteError(f"the model output contains NaN or infinite logits{hint}")
        probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
        if self._tta:
            probs = (probs[:n] + probs[n:].flip(-1)) / 2
        return probs

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) uint8/float -> normalised float32 (C, h, w) on the device."""
        x = image.to(self._device, non_blocking=True)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if self._image_size is not None and tuple(x.shape[1:]) != self._image_size:
            x = F.interpolate(
                x[None],
                size=self._image_size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
        return (x - self._mean_t) / self._std_t

    def _finish(
        self,
        probs: torch.Tensor,
        size: tuple[int, int],
        image: Image.Image | None,
        return_probabilities: bool,
    ) -> Prediction:
        """Model-size probabilities (K', h, w) -> Prediction at the original size."""
        if tuple(probs.shape[1:]) != size:
            probs = F.interpolate(
                probs[None], size=size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp(0.0, 1.0)
        if probs.shape[0] == 1:
            probs = torch.cat([1.0 - probs, probs])
        if self._postprocess is not None:
            out = self._postprocess(probs)
            if not isinstance(out, torch.Tensor) or out.shape != probs.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ShapeError(
                    f"postprocess must return a tensor of shape {tuple(probs.shape)}, got {got}"
                )
            if not bool(torch.isfinite(out).all()):
                raise NonFiniteError("postprocess returned NaN or infinite probabilities")
            probs = out.float()
        if len(self._classes) == 2 and self._num_outputs == 1:
            mask = probs[1] > self._threshold
        else:
            mask = probs.argmax(dim=0)
        return Prediction(
            mask=mask.to(device="cpu", dtype=torch.uint8),
            probabilities=probs.cpu() if return_probabilities else None,
            classes=list(self._classes),
            image=image,
        )

    def _run_group(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Probabilities at model size for preprocessed images of one common size."""
        if self._tile is not None:
            size, overlap = self._tile
            return [
                tiled_scores(
                    self._scores,
                    t,
                    size=size,
                    overlap=overlap,
                    batch_size=self._batch_size,
                    align=self._tile_align,
                )
                for t in tensors
            ]
        return list(self._scores(torch.stack(tensors)))

    def _predict_chunk(self, images: list[Any], return_probabilities: bool) -> list[Prediction]:
        loaded = [load_input(image, self._in_channels) for image in images]
        prepared = [self._prepare(tensor) for tensor, _ in loaded]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, x in enumerate(prepared):
            groups.setdefault(tuple(x.shape), []).append(index)
        scores: list[torch.Tensor | None] = [None] * len(images)
        for indices in groups.values():
            for index, probs in zip(
                indices, self._run_group([prepared[i] for i in indices]), strict=True
            ):
                scores[index] = probs
        out = []
        for (tensor, display), maybe in zip(loaded, scores, strict=True):
            assert maybe is not None  # every index belongs to one group
            probs = maybe
            size = (int(tensor.shape[1]), int(tensor.shape[2]))
            out.append(self._finish(probs, size, display, return_probabilities))
        return out
