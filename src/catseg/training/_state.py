"""Checkpoint metadata and the resumable training state (RNG streams included)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from catseg._validation import check_choice
from catseg.checkpoint._dataset import read_dataset_facts
from catseg.errors import ConfigError
from catseg.models.preprocessing import find_normalization

__all__ = ["CheckpointMeta"]


def _default_classes(num_classes: int | None) -> tuple[str, ...]:
    if num_classes is None or num_classes == 1:
        return ("_background_", "foreground")
    return tuple(f"class_{i}" for i in range(num_classes))


@dataclass(frozen=True)
class CheckpointMeta:
    """What :func:`~catseg.training.fit` writes into its checkpoints beside the weights.

    :class:`~catseg.predict.Segmenter` reads these back, so they must describe how the
    training images were prepared.

    Attributes:
        classes: Class names, label 0 first: two names (background, foreground) for a
            binary one-logit model, ``num_classes`` names otherwise.
        image_size: ``(height, width)`` the model was trained at, or ``None`` (any size).
        mean: Per-channel mean subtracted from [0, 1] pixels before the model.
        std: Per-channel standard deviation the pixels were divided by.
        mode: ``"multilabel"`` for a model of K independent sigmoid maps trained on
            multi-hot ``(N, K, H, W)`` targets (``classes`` then names the K labels, no
            background entry); ``None`` (the default) means binary or multiclass, told
            apart by the model's ``num_classes``. ``fit`` writes the resolved mode into
            every checkpoint (``extra["mode"]``) and, without ``metric=``, validates a
            multilabel run with ``MeanIoU(K, mode="multilabel")``.

    Examples:
        >>> CheckpointMeta(classes=("_background_", "cat"), image_size=(128, 128))
        CheckpointMeta(classes=('_background_', 'cat'), image_size=(128, 128), \
mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), mode=None)
    """

    classes: tuple[str, ...]
    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    mode: Literal["binary", "multiclass", "multilabel"] | None = None

    def __post_init__(self) -> None:
        if self.mode is not None:
            check_choice("mode", self.mode, ("binary", "multiclass", "multilabel"))

    def resolved_mode(self, num_classes: int | None) -> str:
        """The mode written into checkpoints: :attr:`mode`, else binary/multiclass.

        Examples:
            >>> CheckpointMeta(("bg", "cat")).resolved_mode(1)
            'binary'
        """
        if self.mode is not None:
            return self.mode
        return "binary" if num_classes == 1 else "multiclass"

    @classmethod
    def from_dataset(cls, dataset: object, *, num_classes: int | None = None) -> CheckpointMeta:
        """Read ``class_names`` and ``image_size`` from a dataset, or refuse to guess.

        The values are read through :class:`torch.utils.data.Subset`, every part of a
        :class:`torch.utils.data.ConcatDataset` (the parts must agree) and other
        wrappers with a ``.dataset``; ``image_size`` is the size *after* the dataset's
        ``transforms`` (a ``Resize`` or ``RandomResizedCrop`` in a ``Compose`` sets it,
        ``PadToMultiple`` rounds it up). Where the truth cannot be read, a
        :class:`~catseg.errors.ConfigError` says to pass the values explicitly. Without
        ``class_names`` the names are ``("_background_", "foreground")`` for a binary
        model and ``class_0 ... class_{K-1}`` otherwise. ``mean``/``std`` are taken from
        ``dataset.mean``/``dataset.std`` when present, else from a ``Normalize`` inside
        the dataset's transforms (see
        :func:`catseg.models.preprocessing.find_normalization`), and are otherwise the
        identity (0, 1): datasets of :mod:`catseg.data` give images in [0, 1].

        Args:
            dataset: The training dataset, e.g. a ``VOCSegmentationDataset``.
            num_classes: The model's ``num_classes`` (1 = binary), for the fallback names.

        Returns:
            The metadata.

        Raises:
            ConfigError: If the parts of a ``ConcatDataset`` disagree on the classes or
                the size, or a transform's effect on the image size is unknown; pass
                ``checkpoint=CheckpointOptions(..., meta=CheckpointMeta(...))`` to ``fit``
                instead.

        Examples:
            >>> CheckpointMeta.from_dataset(object(), num_classes=3).classes
            ('class_0', 'class_1', 'class_2')
        """
        facts = read_dataset_facts(dataset)
        mode = _dataset_mode(dataset)
        fallback = _default_classes(num_classes)
        if mode == "multilabel" and num_classes is not None:
            fallback = tuple(f"label_{i}" for i in range(num_classes))
        classes = facts.class_names or fallback
        inner = dataset  # a dataset's own mean/std attributes come first
        for _ in range(32):
            if hasattr(inner, "mean") or getattr(inner, "dataset", inner) is inner:
                break
            inner = getattr(inner, "dataset", inner)
        mean = getattr(inner, "mean", None)
        std = getattr(inner, "std", None)
        if isinstance(mean, Sequence) and isinstance(std, Sequence):
            return cls(
                classes,
                facts.image_size,
                tuple(map(float, mean)),
                tuple(map(float, std)),
                mode,
            )
        found = find_normalization(dataset)
        if found is not None:
            return cls(classes, facts.image_size, tuple(found[0]), tuple(found[1]), mode)
        return cls(classes, facts.image_size, mode=mode)

    def check(self, model: nn.Module) -> None:
        """Check the class count against ``model.num_classes`` (when the model has one).

        Args:
            model: The model being trained.

        Raises:
            ConfigError: If the number of class names does not fit the model.
        """
        num_classes = getattr(model, "num_classes", None)
        if not isinstance(num_classes, int):
            return
        multilabel = self.mode == "multilabel"
        expected = num_classes if multilabel else max(2, num_classes)
        if len(self.classes) != expected:
            kind = "a binary (1-logit)" if num_classes == 1 else f"a {num_classes}-class"
            kind = f"a {num_classes}-label multilabel" if multilabel else kind
            raise ConfigError(
                f"checkpoint classes {list(self.classes)} has {len(self.classes)} names but "
                f"{kind} model needs {expected}; pass checkpoint_meta=CheckpointMeta(...) "
                "with matching classes"
            )


def _dataset_mode(dataset: object) -> Literal["multilabel"] | None:
    """``"multilabel"`` when the dataset (or one it wraps) says ``mode = "multilabel"``."""
    inner = dataset
    for _ in range(32):
        if getattr(inner, "mode", None) == "multilabel":
            return "multilabel"
        parts = getattr(inner, "datasets", None)  # ConcatDataset: the first part decides
        nxt = parts[0] if isinstance(parts, Sequence) and parts else getattr(inner, "dataset", None)
        if nxt is None or nxt is inner:
            return None
        inner = nxt
    return None


# --- RNG streams --------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, NumPy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the global stream is the point
    torch.manual_seed(seed)


def loader_generators(loader: DataLoader[Any]) -> list[torch.Generator]:
    """The distinct torch generators a loader draws its order and worker seeds from."""
    found: list[torch.Generator] = []
    for gen in (loader.generator, getattr(loader.sampler, "generator", None)):
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def rng_state(loader: DataLoader[Any]) -> dict[str, Any]:
    """This process's random streams as tensors and plain containers."""
    np_state: Any = np.random.get_state(legacy=True)  # noqa: NPY002 - the global stream
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
        "loader": [g.get_state() for g in loader_generators(loader)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any], loader: DataLoader[Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    np_part = state["numpy"]
    keys = np_part["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002 - the global stream
        ("MT19937", keys, np_part["pos"], np_part["has_gauss"], np_part["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    for gen, saved in zip(loader_generators(loader), state.get("loader", []), strict=False):
        gen.set_state(saved.cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
