"""Encoder registry: names → factories, plus lazy ``catseg.encoders`` entry-point discovery.

Lookup order for a name:

1. encoders registered in this process (the built-ins ``"unet"``, ``"resnet18"``,
   ``"resnet34"``, ``"resnet50"``, then anything added with :func:`register_encoder`);
2. only on a miss, the ``catseg.encoders`` entry points of the installed
   distributions (read with :mod:`importlib.metadata`; a plugin module is imported
   only when its name is asked for).

So a plugin can never shadow a built-in or an explicitly registered encoder, and a
broken plugin breaks nothing until someone asks for it; then the
:class:`~catseg.errors.EncoderError` names the entry point and its distribution.

A third-party package exposes an encoder with, in its ``pyproject.toml``::

    [project.entry-points."catseg.encoders"]
    tiny = "my_package.encoders:tiny_encoder"

Examples:
    >>> from catseg.models.encoders.registry import Registry
    >>> from catseg.models.encoders.resnet import resnet18
    >>> registry = Registry(entry_point_group=None)
    >>> _ = registry.register("r18")(resnet18)
    >>> registry.names()
    ['r18']
    >>> registry.get("r19")
    Traceback (most recent call last):
    ...
    catseg.errors.EncoderError: unknown encoder 'r19'; did you mean 'r18'? ...
"""

from __future__ import annotations

import difflib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import TypeVar

from catseg.errors import CatsegError, EncoderError
from catseg.models.encoders.base import Encoder, EncoderFactory, check_encoder_attributes
from catseg.models.encoders.classic import unet_encoder
from catseg.models.encoders.resnet import resnet18, resnet34, resnet50

__all__ = [
    "ENTRY_POINT_GROUP",
    "Registry",
    "default_registry",
    "get_encoder",
    "list_encoders",
    "register_encoder",
]

ENTRY_POINT_GROUP = "catseg.encoders"
"""The entry-point group third-party distributions use to expose encoders."""

F = TypeVar("F", bound=EncoderFactory)


def _describe_entry_point(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    where = "unknown distribution"
    if dist is not None:
        where = f"distribution {dist.name} {dist.version}"
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group!r}, {where})"


class Registry:
    """A mapping from encoder names to :class:`EncoderFactory` callables.

    Tests build a fresh ``Registry()`` instead of mutating the process-wide one that
    :func:`register_encoder`, :func:`get_encoder` and :func:`list_encoders` use.

    Args:
        entry_point_group: Entry-point group searched on a miss; ``None`` disables
            discovery.

    Examples:
        >>> from catseg.models.encoders.classic import unet_encoder
        >>> registry = Registry(entry_point_group=None)
        >>> registry.add("classic", unet_encoder, builtin=True)
        >>> "classic" in registry, registry.get("classic").reductions
        (True, (1, 2, 4, 8, 16))
    """

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._group = entry_point_group
        self._factories: dict[str, EncoderFactory] = {}
        self._builtins: set[str] = set()
        self._lock = threading.RLock()

    @classmethod
    def with_builtins(cls, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> Registry:
        """Build a registry that already holds catseg's built-in encoders.

        Args:
            entry_point_group: As in the constructor.

        Returns:
            A new registry with ``unet``, ``resnet18``, ``resnet34``, ``resnet50``.

        Examples:
            >>> Registry.with_builtins(entry_point_group=None).names()
            ['resnet18', 'resnet34', 'resnet50', 'unet']
        """
        registry = cls(entry_point_group=entry_point_group)
        registry.add("unet", unet_encoder, builtin=True)
        registry.add("resnet18", resnet18, builtin=True)
        registry.add("resnet34", resnet34, builtin=True)
        registry.add("resnet50", resnet50, builtin=True)
        return registry

    def add(self, name: str, factory: EncoderFactory, *, builtin: bool = False) -> None:
        """Register ``factory`` under ``name``.

        Args:
            name: Non-empty name without whitespace.
            factory: Callable ``(*, in_channels=3, pretrained=False) -> Encoder``.
            builtin: Mark the name as built-in (listed as such; never shadowed).

        Raises:
            EncoderError: If the name is invalid or already registered, or the factory
                is not callable.

        Examples:
            >>> from catseg.models.encoders.resnet import resnet18
            >>> registry = Registry(entry_point_group=None)
            >>> registry.add("r18", resnet18)
            >>> registry.add("r18", resnet18)
            Traceback (most recent call last):
            ...
            catseg.errors.EncoderError: encoder 'r18' is already registered ...
        """
        if not isinstance(name, str) or not name or name != name.strip() or " " in name:
            raise EncoderError(f"encoder name must be a non-empty word, got {name!r}")
        if not callable(factory):
            raise EncoderError(f"encoder factory for {name!r} must be callable, got {factory!r}")
        with self._lock:
            if name in self._factories:
                raise EncoderError(
                    f"encoder {name!r} is already registered (by {self._factories[name]!r}); "
                    "choose another name"
                )
            self._factories[name] = factory
            if builtin:
                self._builtins.add(name)

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`add`; returns the factory unchanged.

        Args:
            name: The name to register.

        Returns:
            A decorator registering the function it wraps.

        Raises:
            EncoderError: From the decorator, if the name is invalid or taken.

        Examples:
            >>> registry = Registry(entry_point_group=None)
            >>> @registry.register("mine")
            ... def mine(*, in_channels: int = 3, pretrained: bool = False):
            ...     from catseg.models.encoders.resnet import resnet18
            ...     return resnet18(in_channels=in_channels)
            >>> registry.names()
            ['mine']
        """

        def decorator(factory: F) -> F:
            self.add(name, factory)
            return factory

        return decorator

    def _entry_points(self) -> dict[str, list[importlib.metadata.EntryPoint]]:
        if self._group is None:
            return {}
        found: dict[str, list[importlib.metadata.EntryPoint]] = {}
        for ep in importlib.metadata.entry_points(group=self._group):
            bucket = found.setdefault(ep.name, [])
            if all(ep.value != other.value for other in bucket):
                bucket.append(ep)
        return found

    def names(self) -> list[str]:
        """All names: registered ones and (unloaded) entry-point plugins, sorted.

        Returns:
            Sorted, de-duplicated names.

        Examples:
            >>> Registry(entry_point_group=None).names()
            []
        """
        with self._lock:
            names = set(self._factories)
        names.update(self._entry_points())
        return sorted(names)

    def builtin_names(self) -> list[str]:
        """Names registered as built-ins, sorted.

        Returns:
            The built-in names.

        Examples:
            >>> Registry.with_builtins(entry_point_group=None).builtin_names()[0]
            'resnet18'
        """
        return sorted(self._builtins)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def factory(self, name: str) -> EncoderFactory:
        """Return the factory registered (or discovered) under ``name``.

        Args:
            name: Encoder name.

        Returns:
            The factory.

        Raises:
            EncoderError: If the name is unknown (with a "did you mean" hint), the
                plugin fails to import, or two distributions claim the same name.

        Examples:
            >>> Registry.with_builtins(entry_point_group=None).factory("resnet18").__name__
            'resnet18'
        """
        with self._lock:
            if name in self._factories:
                return self._factories[name]
            candidates = self._entry_points().get(name, [])
            if not candidates:
                hint = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.5)
                did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
                raise EncoderError(
                    f"unknown encoder {name!r}; {did_you_mean}available: {self.names()}"
                )
            if len(candidates) > 1:
                described = "; ".join(_describe_entry_point(ep) for ep in candidates)
                raise EncoderError(f"encoder {name!r} is claimed by several plugins: {described}")
            ep = candidates[0]
            try:
                loaded = ep.load()
            except Exception as err:
                raise EncoderError(
                    f"encoder plugin {name!r} failed to load from {_describe_entry_point(ep)}: "
                    f"{type(err).__name__}: {err}"
                ) from err
            if not callable(loaded):
                raise EncoderError(
                    f"encoder plugin {name!r} from {_describe_entry_point(ep)} is not callable: "
                    f"{loaded!r}"
                )
            self._factories[name] = loaded
            return self._factories[name]

    def get(self, name: str, *, in_channels: int = 3, pretrained: bool = False) -> Encoder:
        """Build the encoder called ``name``.

        Args:
            name: Encoder name.
            in_channels: Input channels of the encoder's first layer.
            pretrained: Ask the factory for pretrained weights (catseg's built-ins
                download nothing and raise).

        Returns:
            The encoder (an ``nn.Module`` following :class:`Encoder`).

        Raises:
            EncoderError: If the name is unknown, the plugin is broken, the factory
                fails, or what it returns breaks the static contract.

        Examples:
            >>> Registry.with_builtins().get("unet", in_channels=1).out_channels[0]
            32
        """
        factory = self.factory(name)
        try:
            encoder = factory(in_channels=in_channels, pretrained=pretrained)
        except CatsegError:
            raise
        except Exception as err:
            raise EncoderError(
                f"encoder factory {name!r} ({factory!r}) failed with in_channels={in_channels}, "
                f"pretrained={pretrained}: {type(err).__name__}: {err}"
            ) from err
        check_encoder_attributes(encoder)
        return encoder


_DEFAULT_REGISTRY = Registry.with_builtins()


def default_registry() -> Registry:
    """The process-wide registry used by ``UNet(encoder="name")``.

    Returns:
        The registry.

    Examples:
        >>> "resnet50" in default_registry()
        True
    """
    return _DEFAULT_REGISTRY


def register_encoder(name: str) -> Callable[[F], F]:
    """Register an encoder factory in the process-wide registry (decorator).

    Args:
        name: The name ``UNet(encoder=...)`` will accept. Duplicates raise.

    Returns:
        A decorator that registers the factory and returns it unchanged.

    Raises:
        EncoderError: When decorating, if the name is taken or invalid.

    Examples:
        >>> @register_encoder("resnet18")
        ... def again(*, in_channels: int = 3, pretrained: bool = False):
        ...     raise NotImplementedError
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: encoder 'resnet18' is already registered ...
    """
    return _DEFAULT_REGISTRY.register(name)


def get_encoder(name: str, *, in_channels: int = 3, pretrained: bool = False) -> Encoder:
    """Build a registered (or plugin) encoder by name.

    Args:
        name: Encoder name, e.g. ``"resnet34"``.
        in_channels: Input channels.
        pretrained: Ask for pretrained weights (built-ins raise: nothing is downloaded).

    Returns:
        The encoder.

    Raises:
        EncoderError: If the name is unknown ("did you mean" hint), the plugin is
            broken, or the factory fails.

    Examples:
        >>> get_encoder("resnet34").out_channels
        (64, 64, 128, 256, 512)
        >>> get_encoder("resnet_34")
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: unknown encoder 'resnet_34'; did you mean 'resnet34'? ...
    """
    return _DEFAULT_REGISTRY.get(name, in_channels=in_channels, pretrained=pretrained)


def list_encoders() -> list[str]:
    """Names accepted by ``UNet(encoder=...)``: built-ins, registered and plugins.

    Returns:
        Sorted names (plugins are listed without being imported).

    Examples:
        >>> {"unet", "resnet18", "resnet34", "resnet50"} <= set(list_encoders())
        True
    """
    return _DEFAULT_REGISTRY.names()
