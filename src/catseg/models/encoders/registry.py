"""The encoder registry: names → factories, prefix families, lazy entry-point plugins.

A name is looked up among the registered encoders (catseg's built-ins and whatever
:func:`register_encoder` added); ``"prefix:member"`` goes to the family registered as
``"prefix:"``, a resolver ``member -> factory`` (``"timm:convnext_atto"``). Only on a
miss are the ``catseg.encoders`` entry points read, once per registry, and a plugin's
module is imported only when its own name is asked for: a plugin never shadows a
registered name, and a broken one fails only when asked for, naming the entry point and
its distribution. A distribution exposes an encoder, or a family, in its
``pyproject.toml``::

    [project.entry-points."catseg.encoders"]
    tiny = "my_package.encoders:tiny_encoder"
    "mine:" = "my_package.encoders:resolve_mine"
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from catseg._validation import check_bool
from catseg.errors import ConfigError, EncoderError
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.encoders.base import Encoder, check_encoder_attributes

__all__ = ["Registry", "get_encoder", "list_encoders", "register_encoder"]

F = TypeVar("F", bound=Callable[..., Any])
EntryPoint = importlib.metadata.EntryPoint


def _describe(ep: EntryPoint) -> str:
    dist = f"distribution {ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group!r}, {dist})"


def _accepted_options(factory: Callable[..., object]) -> list[str] | None:
    """The keyword parameters of ``factory`` besides ``in_channels``; ``None``: any."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sorted(p.name for p in params if p.kind in keyword and p.name != "in_channels")


class Registry:
    """Encoder names → factories; a name ending with ``:`` holds a family resolver.

    :func:`register_encoder`, :func:`get_encoder` and :func:`list_encoders` use the
    process-wide one; tests use a fresh one.

    Args:
        entry_point_group: The entry-point group read on the first miss; ``None`` turns
            discovery off.

    Examples:
        >>> from catseg.models.encoders import resnet18, resnet34
        >>> registry = Registry(entry_point_group=None)
        >>> _ = registry.register("r18")(resnet18)
        >>> _ = registry.register("tv:")({"r34": resnet34}.__getitem__)
        >>> registry.names(), registry.names(families=True), "r18" in registry
        (['r18'], ['tv:'], True)
        >>> registry.get("tv:r34", in_channels=1).conv1.in_channels
        1
        >>> registry.get("r19")
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: unknown encoder 'r19'; did you mean 'r18'? ...
    """

    def __init__(self, *, entry_point_group: str | None = "catseg.encoders") -> None:
        self._group = entry_point_group
        self._entries: dict[str, Callable[..., Any]] = {}
        self._plugins: dict[str, list[EntryPoint]] | None = None
        self._lock = threading.Lock()

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that registers a factory under ``name``, or a family under ``"prefix:"``.

        Args:
            name: A word without spaces or ``:``; followed by ``:`` it names a family,
                whose resolver (``member -> factory``) serves every ``"prefix:member"``.

        Returns:
            A decorator that registers the callable and returns it unchanged.

        Raises:
            EncoderError: If the name is invalid or taken, or the object is not callable.
        """
        if not isinstance(name, str) or not re.fullmatch(r"[^\s:]+:?", name):
            raise EncoderError(
                f"encoder name must be a non-empty word without ':' or spaces (a family: "
                f"'prefix:'), got {name!r}"
            )

        def decorator(factory: F) -> F:
            if not callable(factory):
                raise EncoderError(f"encoder {name!r} must be a callable, got {factory!r}")
            with self._lock:
                if name in self._entries:
                    raise EncoderError(
                        f"encoder {name!r} is already registered (by {self._entries[name]!r}); "
                        "choose another name"
                    )
                self._entries[name] = factory
            return factory

        return decorator

    def _plugin_table(self) -> dict[str, list[EntryPoint]]:
        with self._lock:
            if self._plugins is None:  # read once, on the first need
                self._plugins = {}
                found = importlib.metadata.entry_points(group=self._group) if self._group else ()
                for ep in found:
                    same = self._plugins.setdefault(ep.name, [])
                    if all(ep.value != other.value for other in same):
                        same.append(ep)
            return self._plugins

    def names(self, *, families: bool = False) -> list[str]:
        """Registered and plugin names (plugins not imported), sorted.

        Args:
            families: List the family prefixes (each ending with ``:``) instead.
        """
        keys = {*self._entries, *self._plugin_table()}
        return sorted(key for key in keys if key.endswith(":") == families)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def _entry(self, key: str, name: str) -> Callable[..., Any]:
        """The factory or resolver registered as ``key``, loading its plugin on a miss."""
        if key in self._entries:
            return self._entries[key]
        candidates = self._plugin_table().get(key, [])
        if not candidates:
            hint = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            families = [f"{prefix}<name>" for prefix in self.names(families=True)]
            also = f"; families: {families}" if families else ""
            raise EncoderError(
                f"unknown encoder {name!r}; {did_you_mean}available: {self.names()}{also}"
            )
        if len(candidates) > 1:
            claims = "; ".join(_describe(ep) for ep in candidates)
            raise EncoderError(f"encoder {key!r} is claimed by several plugins: {claims}")
        where = _describe(candidates[0])
        with foreign_errors(EncoderError, f"encoder plugin {key!r} failed to load from {where}"):
            loaded = candidates[0].load()
        if not callable(loaded):
            raise EncoderError(f"encoder plugin {key!r} from {where} is not callable: {loaded!r}")
        return self._entries.setdefault(key, loaded)

    def get(
        self, name: str, *, in_channels: int = 3, options: Mapping[str, Any] | None = None
    ) -> Encoder:
        """Build the encoder called ``name``: ``factory(in_channels=..., **options)``.

        Args:
            name: An encoder name, or ``"prefix:member"`` for a family member.
            in_channels: Input channels of the encoder.
            options: Keyword options of the factory (the UNet's config records them).

        Raises:
            ConfigError: If the factory does not accept an option (the accepted ones
                are listed).
            EncoderError: If the name is unknown ("did you mean" hint), the plugin or
                family is broken, the factory fails, or its result breaks the contract.
        """
        prefix, colon, member = str(name).partition(":")
        factory = self._entry(prefix + colon, str(name))
        if colon:
            if not member:
                raise EncoderError(f"encoder {name!r} names no member of family {prefix!r}")
            with foreign_errors(
                EncoderError, f"encoder family {prefix!r} cannot resolve {member!r}"
            ):
                factory = factory(member)
            if not callable(factory):
                raise EncoderError(f"encoder family {prefix!r} returned {factory!r} for {member!r}")
        kwargs = dict(options or {})
        accepted = _accepted_options(factory)
        unknown = [repr(key) for key in kwargs if accepted is not None and key not in accepted]
        if unknown:
            raise ConfigError(
                f"encoder {name!r} has no option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}; accepted options: {accepted}"
            )
        failed = f"encoder factory {name!r} ({factory!r}) failed with in_channels={in_channels}"
        with foreign_errors(EncoderError, f"{failed}, options={kwargs}"):
            encoder: Encoder = factory(in_channels=in_channels, **kwargs)
        check_encoder_attributes(encoder)
        return encoder


_REGISTRY = Registry()


def register_encoder(name: str) -> Callable[[F], F]:
    """Register a factory, or a ``"prefix:"`` family resolver, for this process (decorator).

    See :meth:`Registry.register`; ``UNet(encoder=name)`` then builds it.

    Examples:
        >>> @register_encoder("resnet18")
        ... def again(*, in_channels: int = 3):
        ...     raise NotImplementedError
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: encoder 'resnet18' is already registered ...
    """
    return _REGISTRY.register(name)


def get_encoder(
    name: str, *, in_channels: int = 3, options: Mapping[str, Any] | None = None
) -> Encoder:
    """Build an encoder by name: ``"resnet34"``, ``"timm:convnext_atto"`` (:meth:`Registry.get`).

    Examples:
        >>> get_encoder("unet", options={"depth": 2}).out_channels
        (32, 64, 128)
        >>> get_encoder("resnet_34")
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: unknown encoder 'resnet_34'; did you mean 'resnet34'? ...
    """
    return _REGISTRY.get(name, in_channels=in_channels, options=options)


def list_encoders(*, families: bool = False) -> list[str]:
    """The names ``UNet(encoder=...)`` accepts, or the family prefixes (see :meth:`Registry.names`).

    Examples:
        >>> {"unet", "resnet18", "resnet34", "resnet50"} <= set(list_encoders())
        True
    """
    return _REGISTRY.names(families=check_bool("families", families))
