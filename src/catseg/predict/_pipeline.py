"""Pipeline: images in, predictions out, with the heavy steps on the model's device.

The model runs behind a :class:`Backend`: a PyTorch module (the Segmenter's own copy)
or an ONNX Runtime session, with the model's record when it has one.

Each input is read by :func:`load_input` (a JPEG file at a draft scale near the
model's size) and made the model's input by :func:`model_input`. Inputs of one model
size share a forward pass (or tiles). The fp32 probabilities come back to the full size
as the masks, decided at model height wherever a bilinear blend cannot change the
decision (:meth:`Pipeline._upsampled_masks`): on the CPU bit for bit the decisions of one
antialiased bilinear :func:`torch.nn.functional.interpolate` call, with no full-size
float map held unless the probabilities are asked for.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from catseg._modules import to_channels_last
from catseg._runtime import Precision, autocast, resolve_device, resolve_precision
from catseg._validation import check_bool, check_positive_int
from catseg.data._inputs import BAND, Loaded, load_input, model_input, resize
from catseg.errors import ConfigError, NonFiniteError, ShapeError
from catseg.export._runner import OnnxRunner
from catseg.models.config import Mode, UNetConfig
from catseg.models.preprocessing import Preprocessing
from catseg.predict._prediction import Prediction
from catseg.predict._tiling import tiled_scores

_MARGIN = 1e-6  # probabilities this close to a decision's edge are blended, not copied
_DENSE = 32  # masks of up to this many times the model's pixels: resized whole (faster)
Postprocess = Callable[[torch.Tensor], torch.Tensor]
"""Hook on the class probabilities ``(K, H, W)`` returning new ones of the same shape."""


@dataclass(frozen=True)
class Backend:
    """A forward pass and what is known about the model behind it."""

    forward: Callable[[Tensor], Tensor]  # (N, C, h, w) -> (N, K, h, w) float32 logits
    device: torch.device
    name: str
    config: UNetConfig | None  # the model's record; None for a module without one
    in_channels: int | None = None
    num_outputs: int | None = None
    stride: int = 1
    autocast_dtype: torch.dtype | None = None
    module: nn.Module | None = None
    static_size: tuple[int, int] | None = None


def _int_attribute(model: object, name: str) -> int | None:
    value = getattr(model, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def make_backend(
    model: object,
    device: str | torch.device,
    precision: Precision,
    channels_last: bool,
    fuse: bool,
) -> Backend:
    """The backend of ``model``: a module (its own copy) or an :class:`OnnxRunner`."""
    check_bool("channels_last", channels_last)
    check_bool("fuse", fuse)
    if not isinstance(device, str | torch.device):
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
        )
    if isinstance(model, OnnxRunner):
        return _onnx_backend(model, device, precision)
    if isinstance(model, nn.Module):
        return _torch_backend(model, resolve_device(device), precision, channels_last, fuse)
    kind = type(model).__qualname__
    raise ConfigError(f"model must be a torch.nn.Module or a catseg.export.OnnxRunner, got {kind}")


def _torch_backend(
    model: nn.Module, device: torch.device, precision: Precision, channels_last: bool, fuse: bool
) -> Backend:
    """The Segmenter's own eval-mode (fused, channels-last) copy of ``model`` on its device.

    The model passed in is never modified: fusing returns a new module, otherwise the
    model is deep-copied before it is moved or switched to eval mode.
    """
    dtype = resolve_precision(precision, device)
    fuser = getattr(model, "fuse_for_inference", None)
    module: nn.Module = fuser() if fuse and callable(fuser) else copy.deepcopy(model)
    module = module.eval().requires_grad_(False).to(device)
    if channels_last:
        module = to_channels_last(module)

    def forward(x: Tensor) -> Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = module(x)
        if not isinstance(logits, Tensor):
            raise ShapeError(
                f"the model must return a logits tensor, got {type(logits).__qualname__}"
            )
        return logits.float()

    config = getattr(model, "config", None)
    return Backend(
        forward=forward,
        device=device,
        name="the model",
        config=config if isinstance(config, UNetConfig) else None,
        in_channels=_int_attribute(model, "in_channels"),
        num_outputs=_int_attribute(model, "num_classes"),
        stride=_int_attribute(model, "stride") or 1,
        autocast_dtype=dtype,
        module=module,
    )


def _onnx_backend(runner: OnnxRunner, device: str | torch.device, precision: Precision) -> Backend:
    """An ONNX Runtime session, run in pieces of the file's fixed batch size if it has one."""
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"precision={precision!r} does not apply to an ONNX model (it runs in the "
            "file's own precision); leave precision='auto'"
        )
    if device not in ("auto", "cpu") and resolve_device(device).type != "cpu":
        raise ConfigError(
            f"device={str(device)!r} does not apply to an ONNX model: onnxruntime chooses "
            "its device through providers=...; leave device='auto'"
        )
    batch, _, height, width = (OnnxRunner.static_dim(d) for d in runner.input_shape)

    def forward(x: Tensor) -> Tensor:
        if batch is None or x.shape[0] == batch:
            return runner(x)
        n = x.shape[0]
        x = torch.cat([x, x[-1:].expand(-n % batch, -1, -1, -1)])
        return torch.cat([runner(x[i : i + batch]) for i in range(0, x.shape[0], batch)])[:n]

    return Backend(
        forward=forward,
        device=torch.device("cpu"),
        name=runner.path.name,
        config=runner.config,
        in_channels=runner.config.in_channels,
        num_outputs=runner.config.num_classes,
        stride=runner.stride or 1,
        static_size=(height, width) if height is not None and width is not None else None,
    )


def _check_tile(value: object, backend: Backend) -> tuple[int, int]:
    if not (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[1] < value[0]
    ):
        raise ConfigError(
            "tile must be None or (size, overlap): two ints with size >= 1 and "
            f"0 <= overlap < size, got {value!r}"
        )
    (size, overlap), stride = value, backend.stride
    if backend.static_size is not None:
        raise ConfigError(
            f"{backend.name} accepts only one input size, so it cannot run on tiles; "
            "pass tile=None (export with dynamic_size=True to tile)"
        )
    if size < stride:
        hint = max(stride, round(size / stride) * stride)
        raise ConfigError(
            f"tile size {size} is smaller than the model's stride {stride}: a tile must span "
            f"at least one cell of the model's pooling grid; use a multiple of {stride}, e.g. "
            f"tile=({hint}, {min(overlap, hint // 2)})"
        )
    return size, overlap


class Pipeline:
    """The steps between images and :class:`Prediction` objects for one model.

    Args:
        backend: The forward pass and what is known about the model.
        record: The resolved record (classes, mode, image size, threshold,
            preprocessing); for a module without ``num_classes`` it is fitted to the
            model's output channels on the first forward pass.
        mode: The mode the caller asked for (``None``: the record's), kept to fit the
            record to a module's output channels.
        tta: Average the probabilities of the image and its horizontal mirror.
        tile: ``(size, overlap)`` of tiled inference, or ``None``.
        batch_size: Images (or tiles) per forward pass.
        postprocess: Hook on each image's probabilities, or ``None``.
    """

    def __init__(
        self,
        backend: Backend,
        record: UNetConfig,
        *,
        mode: Mode | None,
        tta: bool,
        tile: tuple[int, int] | None,
        batch_size: int,
        postprocess: Postprocess | None,
    ) -> None:
        if postprocess is not None and not callable(postprocess):
            raise ConfigError(
                f"postprocess must be None or a callable, got {type(postprocess).__name__}"
            )
        self.backend, self.record, self.postprocess = backend, record, postprocess
        self.tta = check_bool("tta", tta)
        self.tile = None if tile is None else _check_tile(tile, backend)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.given_mode = mode
        self.in_channels = backend.in_channels or record.in_channels
        norm = record.preprocessing or Preprocessing.identity(1)
        repeat = self.in_channels // len(norm.mean)  # a one-value record is for every channel
        self.norm = Preprocessing(norm.mean * repeat, norm.std * repeat)
        self.mean = torch.tensor(self.norm.mean, device=backend.device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.norm.std, device=backend.device).view(1, -1, 1, 1)

    # ------------------------------------------------------------------ device steps
    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """A ``(C, H, W)`` uint8 or float image -> normalised ``(1, C, h, w)`` float32."""
        return model_input(image, self.record.image_size, self.mean, self.std)

    def scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Per-pixel probabilities ``(N, K', h, w)`` in fp32 of a normalised batch."""
        n = batch.shape[0]
        inputs = torch.cat([batch, batch.flip(-1)]) if self.tta else batch
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
        self._fit_outputs(int(logits.shape[1]))
        if not bool(torch.isfinite(logits).all()):
            hint = "" if self.backend.autocast_dtype is None else "; try precision='fp32'"
            raise NonFiniteError(f"the model output contains NaN or infinite logits{hint}")
        multiclass = self.record.mode == "multiclass"
        probs = torch.softmax(logits, dim=1) if multiclass else torch.sigmoid(logits)
        return (probs[:n] + probs[n:].flip(-1)) / 2 if self.tta else probs

    def _fit_outputs(self, channels: int) -> None:
        """Fit the record to the output channels of a module that did not say them."""
        if channels == self.record.num_classes:
            return
        if self.backend.num_outputs is not None:
            raise ShapeError(
                f"the model returned {channels} channels, expected {self.record.num_classes}"
            )
        try:
            self.record = dataclasses.replace(
                self.record, num_classes=channels, mode=self.given_mode
            )
        except ConfigError as err:
            raise ConfigError(f"the model has {channels} output channel(s): {err}") from None

    def _forward_group(self, batch: torch.Tensor) -> torch.Tensor:
        """Probabilities of one batch of one model input size (tiled when asked for)."""
        if self.tile is None:
            return self.scores(batch)
        align = self.backend.stride
        return torch.stack(
            [tiled_scores(self.scores, x, self.tile, self.batch_size, align) for x in batch]
        )

    def _decide(self, probs: torch.Tensor) -> torch.Tensor:
        """uint8 label maps ``(N, H, W)`` of probabilities; multilabel: bool ``(N, K, H, W)``."""
        threshold = torch.as_tensor(self.record.threshold, device=probs.device)
        if self.record.mode == "multilabel":
            return probs > threshold.view(1, -1, 1, 1)
        if self.record.mode == "binary":
            return (probs[:, -1] > threshold).to(torch.uint8)
        # max(dim).indices is the arg-max (first of equal maxima), much faster on the CPU
        return probs.max(dim=1).indices.to(torch.uint8)

    def _postprocess(self, probs: torch.Tensor, hook: Postprocess) -> torch.Tensor:
        """Apply the user's hook to each image's ``(K, H, W)`` probabilities."""
        out = []
        for image_probs in probs:
            result = hook(image_probs)
            got = tuple(getattr(result, "shape", ())) or type(result).__name__
            if not isinstance(result, torch.Tensor) or got != tuple(image_probs.shape):
                shape = tuple(image_probs.shape)
                raise ShapeError(f"postprocess must return a tensor of shape {shape}, got {got}")
            if not bool(torch.isfinite(result).all()):
                raise NonFiniteError("postprocess returned NaN or infinite probabilities")
            out.append(result.to(device=probs.device, dtype=torch.float32))
        return torch.stack(out)

    def _upsampled_masks(self, probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The masks of ``probs`` resized to ``size``, without full-size float maps.

        (A small mask, a shrinking one or a one-row model output is resized whole.)
        Resized to the full width, two adjacent rows of probabilities that decide a
        column alike, with a margin over float rounding, decide alike every bilinear
        blend of them (a convex combination keeps a class above the threshold, or ahead
        of the others), so the output rows between them copy that decision; only the
        other columns are blended row by row and decided.
        """
        (h, w), (height, width), device = probs.shape[2:], size, probs.device
        if h < 2 or height < h or height * width <= _DENSE * h * w:  # resized whole
            return self._decide(resize(probs, size).clamp_(0.0, 1.0))
        wide = resize(probs, (h, width))
        label = self._decide(wide)
        same = label[..., 1:, :] == label[..., :-1, :]
        if self.record.mode == "multiclass":
            top = wide.topk(2, dim=1).values
            clear = top[:, 0] - top[:, 1] > _MARGIN
        else:
            threshold = torch.as_tensor(self.record.threshold, device=device)
            clear = ((wide - threshold.view(1, -1, 1, 1)).abs() > _MARGIN).all(1)
            same = same.all(1) if same.ndim == 4 else same
        # Output row y blends rows pair[y] and pair[y] + 1 (half-pixel centres, edge rows
        # clamped), with the weights torch's resize gives rows of even and odd index.
        source = (torch.arange(height, dtype=torch.float64) + 0.5) * (h / height) - 0.5
        pair = source.floor().clamp_(0, h - 2).long().to(device)
        parity = torch.arange(h, device=device)[:, None] % 2 == torch.arange(2, device=device)
        odd = pair[:, None] % 2
        weights = resize(parity.float()[None, None], (height, 2))[0, 0]
        weights = weights.gather(1, torch.cat([odd, 1 - odd], 1))  # (H, 2): first, second
        masks = label.index_select(-2, pair)
        flat = (~(same & clear[:, 1:] & clear[:, :-1])).view(-1).nonzero()[:, 0]
        if not len(flat):
            return masks
        # Per pair: its output rows (R at most; the last one repeated) and their weights.
        rows = torch.bincount(pair, minlength=h - 1)
        y_of = torch.minimum(torch.arange(int(rows.max()), device=device), rows[:, None] - 1)
        y_of += (rows.cumsum(0) - rows)[:, None]  # (h - 1, R)
        w_of = weights[y_of]
        columns = wide.movedim(1, -1).reshape(-1, wide.shape[1])  # (N * h * W, K')
        channels = 1 if masks.ndim == 3 else masks.shape[1]
        plane = torch.arange(channels, device=device) * (height * width)
        step = max(1, BAND // 4 // y_of.shape[1])  # unsure columns at a time: bounded memory
        for chunk in (flat[start : start + step] for start in range(0, len(flat), step)):
            n, p, x = chunk // ((h - 1) * width), chunk // width % (h - 1), chunk % width
            wt = w_of.index_select(0, p)  # (M, R, 2) for M unsure columns
            top = columns.index_select(0, chunk + n * width)[:, None]
            below = columns.index_select(0, chunk + (n + 1) * width)[:, None]
            blend = torch.addcmul(top * wt[..., :1], below, wt[..., 1:])  # as torch rounds it
            decided = self._decide(blend.clamp_(0.0, 1.0).view(-1, blend.shape[-1], 1, 1))
            index = y_of.index_select(0, p) * width + (n * channels * height * width + x)[:, None]
            masks.view(-1).scatter_(0, (index[..., None] + plane).view(-1), decided.view(-1))
        return masks

    def finish(
        self, probs: torch.Tensor, size: tuple[int, int], keep: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model-size probabilities ``(N, K', h, w)`` -> masks (and probabilities) at ``size``.

        Returns device tensors: the masks and, when ``keep`` or a postprocess hook needs
        them, probabilities ``(N, K, H, W)`` (``K = 2`` for a one-logit model), else
        ``None`` (the masks then come from :meth:`_upsampled_masks`).
        """
        if not keep and self.postprocess is None:
            if tuple(probs.shape[2:]) == size:
                return self._decide(probs), None
            return self._upsampled_masks(probs, size), None
        full = probs if tuple(probs.shape[2:]) == size else resize(probs, size).clamp_(0.0, 1.0)
        if self.record.mode == "binary":
            full = torch.cat([1.0 - full, full], dim=1)
        if self.postprocess is not None:
            full = self._postprocess(full, self.postprocess)
        return self._decide(full), full

    # ------------------------------------------------------------------ one chunk
    def run(self, images: Sequence[object], return_probabilities: bool) -> list[Prediction]:
        """Segment one chunk of images (at most ``batch_size``), results in input order.

        An item may be a :class:`Loaded` input read beforehand (``predict_folder``).
        """
        size = self.record.image_size

        def read(item: object) -> Loaded:
            return item if isinstance(item, Loaded) else load_input(item, self.in_channels, size)

        files = sum(isinstance(item, (str, os.PathLike)) for item in images)
        threads = min(files, torch.get_num_threads())
        if threads > 1:  # decoders release the GIL: photo files are read side by side
            with ThreadPoolExecutor(threads) as pool:
                loaded = list(pool.map(read, images))
        else:
            loaded = [read(item) for item in images]
        prepared = [self.prepare(item.pixels) for item in loaded]
        probs: list[torch.Tensor] = prepared[:]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, x in enumerate(prepared):
            groups.setdefault(tuple(x.shape[1:]), []).append(index)
        for members in groups.values():
            group_probs = self._forward_group(torch.cat([prepared[i] for i in members]))
            for j, i in enumerate(members):
                probs[i] = group_probs[j : j + 1]
        del prepared
        classes = list(self.record.class_names)
        out = []
        for given, item, p in zip(images, loaded, probs, strict=True):
            masks, kept = self.finish(p, item.size, return_probabilities)
            probabilities = kept[0].cpu() if return_probabilities and kept is not None else None
            display: Path | Image.Image | torch.Tensor | None = item.display
            if display is None:  # an array or tensor: its pixels are the full-size image
                display = item.pixels if isinstance(given, Loaded) else item.pixels.clone()
            out.append(Prediction(masks[0].cpu(), probabilities, list(classes), display))
        return out
