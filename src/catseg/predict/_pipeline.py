"""Pipeline: images in, predictions out, with the heavy steps on the model's device.

For one chunk of images (at most ``batch_size``):

1. read each input into a ``(C, H, W)`` uint8 or float tensor on the CPU (no copy for
   arrays and tensors);
2. per group of images with the same size and dtype: upload them as they are (uint8
   stays uint8, a quarter of the bytes of float32), then scale to [0, 1], resize and
   normalise the whole group at once on the device;
3. per group of the same model input size: one forward pass (or tiles), probabilities
   in fp32;
4. per group again: resize the probabilities back to the original size, threshold or
   arg-max, all on the device; then one copy of the uint8 masks to the host.

The host waits for the device only at the end of a chunk (and before a ``postprocess``
hook), so on a GPU reading the next inputs and building the overlay images overlap with
the device's work. The PIL image of an array or tensor input (for overlays) is made
only when :attr:`Prediction.image` is first read.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F  # noqa: N812

from catseg.data._inputs import load_input
from catseg.errors import ConfigError, NonFiniteError, ShapeError
from catseg.predict._backend import Backend
from catseg.predict._options import SegmenterMode, SegmenterOptions
from catseg.predict._prediction import Prediction
from catseg.predict._tiling import tiled_scores

__all__ = ["Pipeline", "group_indices"]

K = TypeVar("K", bound=Hashable)


def group_indices(keys: Sequence[K]) -> dict[K, list[int]]:
    """Indices of equal keys, groups in order of first appearance.

    Examples:
        >>> group_indices(["a", "b", "a"])
        {'a': [0, 2], 'b': [1]}
    """
    groups: dict[K, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return groups


def check_class_count(classes: Sequence[str], num_outputs: int, mode: str | None = None) -> None:
    """Raise ConfigError unless ``classes`` fits a model with ``num_outputs`` logits."""
    wanted = 2 if num_outputs == 1 and mode != "multilabel" else num_outputs
    if len(classes) != wanted:
        raise ConfigError(
            f"the model has {num_outputs} output channel(s), so classes must have "
            f"{wanted} names, got {len(classes)}: {list(classes)!r}"
        )


def _size(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[2])


class Pipeline:
    """The steps between images and :class:`Prediction` objects for one model.

    Args:
        backend: The forward pass and what is known about the model.
        options: Fully resolved options (classes, mean and std set; ``image_size`` a
            size or ``None``; ``threshold`` a float).
    """

    @property
    def mode(self) -> SegmenterMode | None:
        """The mode in use, inferred from the output channels once they are known."""
        if self.options.mode is not None or self.num_outputs is None:
            return self.options.mode
        return "binary" if self.num_outputs == 1 else "multiclass"

    def __init__(self, backend: Backend, options: SegmenterOptions) -> None:
        assert options.classes is not None
        assert options.mean is not None
        assert options.std is not None
        assert options.threshold is not None
        self.backend = backend
        self.options = options
        self.classes = list(options.classes)
        self.in_channels = len(options.mean)
        self.num_outputs = backend.num_outputs
        self.image_size = options.image_size if isinstance(options.image_size, tuple) else None
        device, shape = backend.device, (1, self.in_channels, 1, 1)
        self.multilabel = options.mode == "multilabel"
        threshold = options.threshold
        self.threshold = threshold if isinstance(threshold, float) else max(threshold)
        self.thresholds = torch.tensor(
            [threshold] if isinstance(threshold, float) else list(threshold),
            dtype=torch.float32,
            device=device,
        ).view(1, -1, 1, 1)
        self.mean = torch.tensor(options.mean, dtype=torch.float32, device=device).view(shape)
        self.std = torch.tensor(options.std, dtype=torch.float32, device=device).view(shape)

    # ------------------------------------------------------------------ device steps
    def prepare(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Same-size ``(C, H, W)`` uint8 or float images -> normalised ``(N, C, h, w)`` float32.

        The images go to the device as they are; the conversion runs there.
        """
        device = self.backend.device
        x = torch.stack([image.to(device, non_blocking=True) for image in images])
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.image_size is not None and tuple(x.shape[2:]) != self.image_size:
            x = F.interpolate(
                x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True
            )
        return (x - self.mean) / self.std

    def scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Per-pixel probabilities ``(N, K', h, w)`` in fp32 of a normalised batch.

        Raises NonFiniteError at once for NaN or infinite logits (see :meth:`_scores`).
        """
        probs, finite = self._scores(batch)
        self._raise_if_not_finite([finite])
        return probs

    def _scores(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and a device flag telling whether every logit was finite."""
        n = batch.shape[0]
        inputs = torch.cat([batch, batch.flip(-1)]) if self.options.tta else batch
        logits = self.backend.forward(inputs)
        if (
            logits.ndim != 4
            or logits.shape[0] != inputs.shape[0]
            or logits.shape[2:] != inputs.shape[2:]
        ):
            raise ShapeError(
                f"the model returned shape {tuple(logits.shape)} for input "
                f"{tuple(inputs.shape)}; expected (N, K, H, W) logits of the input's size"
            )
        if self.num_outputs is None:
            check_class_count(self.classes, int(logits.shape[1]), self.options.mode)
            self.num_outputs = int(logits.shape[1])
        elif logits.shape[1] != self.num_outputs:
            raise ShapeError(
                f"the model returned {logits.shape[1]} channels, expected {self.num_outputs}"
            )
        finite = torch.isfinite(logits).all()
        sigmoid = self.multilabel or logits.shape[1] == 1
        probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)
        if self.options.tta:
            probs = (probs[:n] + probs[n:].flip(-1)) / 2
        return probs, finite

    def _raise_if_not_finite(self, flags: list[torch.Tensor]) -> None:
        if flags and not bool(torch.stack([f.cpu() for f in flags]).all()):
            hint = "" if self.backend.autocast_dtype is None else "; try precision='fp32'"
            raise NonFiniteError(f"the model output contains NaN or infinite logits{hint}")

    def _forward_group(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Probabilities of one batch of one model input size (tiled when asked for)."""
        if self.options.tile is None:
            return self._scores(batch)
        size, overlap = self.options.tile
        tiles = [
            tiled_scores(
                self.scores,
                image,
                size=size,
                overlap=overlap,
                batch_size=self.options.batch_size,
                align=self.backend.stride,
            )
            for image in batch
        ]
        return torch.stack(tiles), None

    def _decide(self, probs: torch.Tensor) -> torch.Tensor:
        """Label maps ``(N, H, W)`` uint8 from class probabilities ``(N, K, H, W)``.

        For a multilabel model: boolean layers ``(N, K, H, W)``, ``p > threshold``.
        """
        if self.multilabel:
            return probs > self.thresholds
        if len(self.classes) == 2 and self.num_outputs == 1:
            return (probs[:, -1] > self.threshold).to(torch.uint8)
        # max(dim).indices is the arg-max (first of equal maxima), much faster on the CPU
        return probs.max(dim=1).indices.to(torch.uint8)

    def _postprocess(self, probs: torch.Tensor) -> torch.Tensor:
        """Apply the user's hook to each image's ``(K, H, W)`` probabilities."""
        hook = self.options.postprocess
        assert hook is not None
        out = []
        for image_probs in probs:
            result = hook(image_probs)
            if not isinstance(result, torch.Tensor) or result.shape != image_probs.shape:
                got = (
                    tuple(result.shape)
                    if isinstance(result, torch.Tensor)
                    else type(result).__name__
                )
                raise ShapeError(
                    f"postprocess must return a tensor of shape {tuple(image_probs.shape)}, "
                    f"got {got}"
                )
            if not bool(torch.isfinite(result).all()):
                raise NonFiniteError("postprocess returned NaN or infinite probabilities")
            out.append(result.to(device=probs.device, dtype=torch.float32))
        return torch.stack(out)

    def finish(
        self, probs: torch.Tensor, size: tuple[int, int], keep: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model-size probabilities ``(N, K', h, w)`` -> masks (and probabilities) at ``size``.

        Returns device tensors: uint8 masks ``(N, H, W)`` and, when ``keep`` or a
        postprocess hook needs them, probabilities ``(N, K, H, W)`` (``K = 2`` for a
        one-logit model), else ``None``.
        """
        if tuple(probs.shape[2:]) != size:
            probs = F.interpolate(
                probs, size=size, mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        if not keep and self.options.postprocess is None:
            return self._decide(probs), None
        if probs.shape[1] == 1 and not self.multilabel:
            probs = torch.cat([1.0 - probs, probs], dim=1)
        if self.options.postprocess is not None:
            probs = self._postprocess(probs)
        return self._decide(probs), probs

    # ------------------------------------------------------------------ one chunk
    def run(self, images: Sequence[object], return_probabilities: bool) -> list[Prediction]:
        """Segment one chunk of images (at most ``batch_size``), results in input order."""
        loaded = [load_input(image, self.in_channels) for image in images]
        tensors = [tensor for tensor, _ in loaded]
        groups = list(group_indices([(tuple(t.shape), t.dtype) for t in tensors]).values())
        prepared = [self.prepare([tensors[i] for i in group]) for group in groups]
        flags: list[torch.Tensor] = []
        probs: list[torch.Tensor] = [torch.empty(0)] * len(groups)
        by_input = group_indices([tuple(x.shape[1:]) for x in prepared])
        for members in by_input.values():
            batch = torch.cat([prepared[g] for g in members])
            group_probs, finite = self._forward_group(batch)
            if finite is not None:
                flags.append(finite)
            start = 0
            for g in members:
                probs[g] = group_probs[start : start + len(groups[g])]
                start += len(groups[g])
        if self.options.postprocess is not None:
            self._raise_if_not_finite(flags)  # the hook must not see NaN
        finished = [
            self.finish(p, _size(tensors[group[0]]), return_probabilities)
            for p, group in zip(probs, groups, strict=True)
        ]
        self._raise_if_not_finite(flags)
        out: list[Prediction | None] = [None] * len(images)
        for group, (device_masks, device_probs) in zip(groups, finished, strict=True):
            masks = device_masks.cpu()
            kept = device_probs.cpu() if return_probabilities and device_probs is not None else None
            for j, index in enumerate(group):
                tensor, image = loaded[index]
                probabilities = None if kept is None else kept[j].clone()
                if image is not None:
                    out[index] = Prediction(
                        masks[j].clone(), probabilities, list(self.classes), image
                    )
                else:  # the PIL image is made only if someone asks for it
                    out[index] = Prediction.with_pixels(
                        masks[j].clone(), probabilities, list(self.classes), tensor
                    )
        return [p for p in out if p is not None]
