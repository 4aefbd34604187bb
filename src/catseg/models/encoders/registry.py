"""The encoder registry: names → factories, prefix families, lazy entry-point plugins.

A name is looked up among the registered encoders (catseg's built-ins and whatever
:func:`register_encoder` added); ``"prefix:member"`` goes to the family registered as
``"prefix:"``, a resolver ``member -> factory`` (``"timm:convnext_atto"``). The
``catseg.encoders`` entry points are read once per registry, on its first lookup, and a
plugin's module is imported only when its own name is asked for: a registered name shadows
a plugin (one warning names both), and a broken plugin fails only when asked for, naming
the entry point and its distribution. A factory declares its options as keyword
parameters (``**kwargs`` is refused). A distribution exposes an encoder, or a family, in
its ``pyproject.toml``::

    [project.entry-points."catseg.encoders"]
    tiny = "my_package.encoders:tiny_encoder"
    "mine:" = "my_package.encoders:resolve_mine"
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import importlib.util
import inspect
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

from catseg._bounds import short
from catseg._validation import check_bool
from catseg.errors import ConfigError, EncoderError
from catseg.models.config import plain
from catseg.models.encoders._foreign import foreign_errors
from catseg.models.encoders.base import Encoder, check_encoder_attributes

__all__ = ["Registry", "get_encoder", "list_encoders", "register_encoder"]

F = TypeVar("F", bound=Callable[..., Any])
Built = tuple[Encoder, dict[str, Any], str | None]  # an encoder, its options, its package
EntryPoint = importlib.metadata.EntryPoint


def _describe(ep: EntryPoint) -> str:
    dist = f"distribution {ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group!r}, {dist})"


def _package(ep: EntryPoint) -> str | None:
    """``dist==version`` of the distribution behind ``ep``; ``None`` for catseg's own."""
    dist = ep.dist
    return f"{dist.name}=={dist.version}" if dist and dist.name != "catseg" else None


def _options(what: str, factory: Callable[..., object]) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of ``factory`` besides ``in_channels`` (``None``: unknowable).

    Raises:
        EncoderError: If the factory takes ``**kwargs`` (its options could not be checked).
    """
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise EncoderError(
            f"{what}: factory {factory!r} takes **kwargs; declare each option as a "
            "keyword parameter with its default, so that catseg can check and record it"
        )
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: p for p in params if p.kind in keyword and p.name != "in_channels"}


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
        if not isinstance(entry_point_group, str | None):
            raise ConfigError(
                f"entry_point_group must be a str or None, got {short(entry_point_group)}"
            )
        self._group = entry_point_group
        self._entries: dict[str, Callable[..., Any]] = {}
        self._plugins: dict[str, list[EntryPoint]] | None = None
        self._packages: dict[str, str | None] = {}  # entries loaded from entry points
        self._lock = threading.Lock()

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that registers a factory under ``name``, or a family under ``"prefix:"``.

        Args:
            name: A word without spaces or ``:``; followed by ``:`` it names a family,
                whose resolver (``member -> factory``) serves every ``"prefix:member"``.

        Returns:
            A decorator that registers the callable and returns it unchanged.

        Raises:
            EncoderError: If the name is invalid or taken, or the object is not callable
                or takes ``**kwargs``. Shadowing an entry point of that name warns.
        """
        if not isinstance(name, str) or not re.fullmatch(r"[^\s:]+:?", name):
            raise EncoderError(
                f"encoder name must be a non-empty word without ':' or spaces (a family: "
                f"'prefix:'), got {name!r}"
            )

        def decorator(factory: F) -> F:
            if not callable(factory):
                raise EncoderError(f"encoder {name!r} must be a callable, got {factory!r}")
            if not name.endswith(":"):
                _options(f"encoder {name!r}", factory)
            with self._lock:
                if name in self._entries:
                    raise EncoderError(
                        f"encoder {name!r} is already registered (by {self._entries[name]!r}); "
                        "choose another name"
                    )
                self._entries[name] = factory
                shadowed = (self._plugins or {}).get(name, [])
            self._warn_shadowed(name, shadowed)
            return factory

        return decorator

    def _warn_shadowed(self, name: str, plugins: list[EntryPoint]) -> None:
        owner = getattr(self._entries[name], "__qualname__", self._entries[name])
        for ep in plugins:
            warnings.warn(
                f"encoder plugin {_describe(ep)} is not used: {name!r} is already the "
                f"{self.source(name)} encoder {owner}",
                stacklevel=3,
            )

    def _plugin_table(self) -> dict[str, list[EntryPoint]]:
        with self._lock:
            fresh = self._plugins is None
            if self._plugins is None:  # read once, on the first need
                self._plugins = {}
                for ep in importlib.metadata.entry_points(group=self._group) if self._group else ():
                    same = self._plugins.setdefault(ep.name, [])
                    if all(ep.value != other.value for other in same):
                        same.append(ep)
        for name in (self._plugins.keys() & self._entries.keys()) if fresh else ():
            self._warn_shadowed(name, self._plugins[name])
        return self._plugins

    def names(self, *, families: bool = False) -> list[str]:
        """Registered and plugin names (plugins not imported), sorted.

        Args:
            families: List the family prefixes (each ending with ``:``) instead; catseg's
                ``"timm:"`` only when timm is installed.
        """
        keys = {*self._entries, *self._plugin_table()}
        if families and importlib.util.find_spec("timm") is None:
            keys.discard("timm:")
        return sorted(key for key in keys if key.endswith(":") == families)

    def source(self, name: str) -> str:
        """Where the encoder (or ``"prefix:"`` family) ``name`` comes from.

        Returns:
            ``"catseg"`` (built in), ``"runtime"`` (registered in this process) or
            ``"<distribution> <version>"`` (an entry point).

        Raises:
            EncoderError: If the name is unknown.

        Examples:
            >>> from catseg.models.encoders import resnet18
            >>> registry = Registry(entry_point_group=None)
            >>> _ = registry.register("r18")(resnet18)
            >>> registry.source("r18")
            'catseg'
        """
        if name in self._entries and name not in self._packages:
            module = getattr(self._entries[name], "__module__", None) or ""
            return "catseg" if module.startswith("catseg.") else "runtime"
        eps = self._plugin_table().get(name, [])
        found = [self._packages[name]] if name in self._packages else map(_package, eps)
        if not (where := ", ".join((p or "catseg").replace("==", " ") for p in found)):
            raise EncoderError(f"unknown encoder {name!r}; available: {self.names()}")
        return where

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def _entry(self, key: str, name: str) -> Callable[..., Any]:
        """The factory or resolver registered as ``key``, loading its plugin on a miss."""
        candidates = self._plugin_table().get(key, [])  # read on the first lookup
        if key in self._entries:
            return self._entries[key]
        if not candidates:
            names = self.names()
            hint = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            families = [f"{prefix}<name>" for prefix in self.names(families=True)]
            also = f"; families: {families}" if families else ""
            raise EncoderError(f"unknown encoder {name!r}; {did_you_mean}available: {names}{also}")
        if len(candidates) > 1:
            claims = "; ".join(_describe(ep) for ep in candidates)
            raise EncoderError(f"encoder {key!r} is claimed by several plugins: {claims}")
        where = _describe(candidates[0])
        with foreign_errors(EncoderError, f"encoder plugin {key!r} failed to load from {where}"):
            loaded = candidates[0].load()
        if not callable(loaded):
            raise EncoderError(f"encoder plugin {key!r} from {where} is not callable: {loaded!r}")
        if not key.endswith(":"):
            _options(f"encoder plugin {key!r} from {where}", loaded)
        with self._lock:
            self._packages.setdefault(key, _package(candidates[0]))
            return self._entries.setdefault(key, loaded)

    def get(
        self, name: str, *, in_channels: int = 3, options: Mapping[str, Any] | None = None
    ) -> Encoder:
        """Build the encoder called ``name``: ``factory(in_channels=..., **options)``.

        The factory's JSON-like defaults are passed too (a UNet's config records them).

        Args:
            name: An encoder name, or ``"prefix:member"`` for a family member.
            in_channels: Input channels of the encoder.
            options: Keyword options of the factory (the UNet's config records them).

        Raises:
            ConfigError: If ``options`` is not a mapping or the factory does not accept an
                option (the accepted ones are listed).
            EncoderError: If the name is unknown ("did you mean" hint), the plugin or
                family is broken, the factory fails, or its result breaks the contract.
        """
        return self._build(name, in_channels, options)[0]

    def _build(self, name: str, in_channels: int, options: Mapping[str, Any] | None) -> Built:
        """The encoder, the options passed (with defaults) and its plugin's ``dist==version``."""
        prefix, colon, member = str(name).partition(":")
        factory = self._entry(prefix + colon, str(name))
        if colon:
            if not member:
                raise EncoderError(f"encoder {name!r} names no member of family {prefix!r}")
            with foreign_errors(EncoderError, f"family {prefix!r} cannot resolve {member!r}"):
                factory = factory(member)
            if not callable(factory):
                raise EncoderError(f"encoder family {prefix!r} returned {factory!r} for {member!r}")
        if not isinstance(options, Mapping | None):
            raise ConfigError(f"options must be a mapping (name: value), got {short(options)}")
        kwargs = dict(options or {})
        declared = _options(f"encoder {name!r}", factory)
        unknown = [repr(key) for key in kwargs if declared is not None and key not in declared]
        if unknown:
            raise ConfigError(
                f"encoder {name!r} has no option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}; accepted options: {sorted(declared or ())}"
            )
        for key, param in (declared or {}).items():
            if key not in kwargs and param.default is not param.empty:
                with contextlib.suppress(ConfigError):  # a default the record cannot hold
                    kwargs[key] = plain(key, param.default)
        failed = f"encoder factory {name!r} ({factory!r}) failed with in_channels={in_channels}"
        with foreign_errors(EncoderError, f"{failed}, options={kwargs}"):
            encoder: Encoder = factory(in_channels=in_channels, **kwargs)
        check_encoder_attributes(encoder)
        return encoder, kwargs, self._packages.get(prefix + colon)


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


def build_encoder(name: str, *, in_channels: int, options: Mapping[str, Any]) -> Built:
    """The encoder, options with defaults and plugin ``dist==version`` (what ``UNet`` records)."""
    return _REGISTRY._build(name, in_channels, options)


@overload
def list_encoders(*, families: bool = ..., sources: Literal[False] = ...) -> list[str]: ...
@overload
def list_encoders(*, families: bool = ..., sources: Literal[True]) -> dict[str, str]: ...
def list_encoders(*, families: bool = False, sources: bool = False) -> list[str] | dict[str, str]:
    """The names ``UNet(encoder=...)`` accepts, or the family prefixes (see :meth:`Registry.names`).

    Args:
        families: List the family prefixes (``"timm:"``) instead.
        sources: Return ``{name: source}`` (see :meth:`Registry.source`): ``"catseg"``,
            ``"runtime"`` or ``"<distribution> <version>"``.

    Examples:
        >>> {"unet", "resnet18", "resnet34", "resnet50"} <= set(list_encoders())
        True
        >>> list_encoders(sources=True)["resnet18"]
        'catseg'
    """
    names = _REGISTRY.names(families=check_bool("families", families))
    return {n: _REGISTRY.source(n) for n in names} if check_bool("sources", sources) else names
