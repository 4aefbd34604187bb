"""Encoder registry: names → factories, families of names, lazy entry-point discovery.

Lookup order for a name:

1. encoders registered in this process (the built-ins ``"unet"``, ``"resnet18"``,
   ``"resnet34"``, ``"resnet50"``, then anything added with :func:`register_encoder`);
2. a name ``"prefix:member"`` goes to the *family* registered under ``prefix`` (a
   resolver ``member -> factory``, added with :func:`register_encoder_family`), e.g.
   ``"timm:convnext_atto"`` for the optional timm plugin;
3. only on a miss, the ``catseg.encoders`` entry points of the installed
   distributions (read with :mod:`importlib.metadata`; a plugin module is imported
   only when its name is asked for). An entry point whose name ends with ``:``
   (``"timm:"``) exposes a family resolver.

So a plugin can never shadow a built-in or an explicitly registered encoder, and a
broken plugin breaks nothing until someone asks for it; then the
:class:`~catseg.errors.EncoderError` names the entry point and its distribution.

A factory is called as ``factory(in_channels=..., **options)``; the options a factory
accepts are its keyword parameters (read from its signature), and an unknown option
is a :class:`~catseg.errors.ConfigError` that lists the accepted ones.

A third-party package exposes an encoder (or a family) with, in its ``pyproject.toml``::

    [project.entry-points."catseg.encoders"]
    tiny = "my_package.encoders:tiny_encoder"
    "mine:" = "my_package.encoders:resolve_mine"

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
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from catseg.errors import CatsegError, ConfigError, EncoderError
from catseg.models.encoders.base import Encoder, EncoderFactory, check_encoder_attributes
from catseg.models.encoders.classic import unet_encoder
from catseg.models.encoders.resnet import resnet18, resnet34, resnet50

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAMILY_SEPARATOR",
    "EncoderFamily",
    "Registry",
    "default_registry",
    "encoder_options",
    "get_encoder",
    "list_encoders",
    "register_encoder",
    "register_encoder_family",
]

ENTRY_POINT_GROUP = "catseg.encoders"
"""The entry-point group third-party distributions use to expose encoders."""

FAMILY_SEPARATOR = ":"
"""Separates a family prefix from the member name, as in ``"timm:resnet18"``."""

EncoderFamily = Callable[[str], EncoderFactory]
"""A family resolver: takes the member name (after ``prefix:``) and returns its factory."""

F = TypeVar("F", bound=EncoderFactory)
R = TypeVar("R", bound=EncoderFamily)


def _describe_entry_point(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    where = "unknown distribution"
    if dist is not None:
        where = f"distribution {dist.name} {dist.version}"
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group!r}, {where})"


def _check_word(kind: str, name: object) -> str:
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or " " in name
        or FAMILY_SEPARATOR in name
    ):
        raise EncoderError(f"{kind} must be a non-empty word without ':', got {name!r}")
    return name


def encoder_options(factory: Callable[..., object]) -> list[str] | None:
    """The option names ``factory`` accepts besides ``in_channels``, from its signature.

    Args:
        factory: An encoder factory.

    Returns:
        The keyword parameter names (sorted), or ``None`` when the factory takes
        ``**options`` or has no readable signature (then any option is passed on).

    Examples:
        >>> from catseg.models.encoders.classic import unet_encoder
        >>> encoder_options(unet_encoder)
        ['activation', 'depth', 'dropout', 'init_features', 'norm']
    """
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sorted(p.name for p in parameters if p.kind in keyword and p.name != "in_channels")


class Registry:
    """A mapping from encoder names to :class:`EncoderFactory` callables.

    Tests build a fresh ``Registry()`` instead of mutating the process-wide one that
    :func:`register_encoder`, :func:`get_encoder` and :func:`list_encoders` use, or
    remove what they added with :meth:`unregister`.

    Args:
        entry_point_group: Entry-point group searched on a miss; ``None`` disables
            discovery.

    Examples:
        >>> from catseg.models.encoders.classic import unet_encoder
        >>> registry = Registry(entry_point_group=None)
        >>> registry.add("classic", unet_encoder)
        >>> "classic" in registry, registry.get("classic").reductions
        (True, (1, 2, 4, 8, 16))
        >>> registry.get("classic", options={"depth": 2}).reductions
        (1, 2, 4)
    """

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._group = entry_point_group
        self._factories: dict[str, EncoderFactory] = {}
        self._families: dict[str, EncoderFamily] = {}
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
        registry.add("unet", unet_encoder)
        registry.add("resnet18", resnet18)
        registry.add("resnet34", resnet34)
        registry.add("resnet50", resnet50)
        return registry

    def add(self, name: str, factory: EncoderFactory) -> None:
        """Register ``factory`` under ``name``.

        Args:
            name: Non-empty name without whitespace or ``:``.
            factory: Callable ``(*, in_channels=3, **options) -> Encoder``.

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
        _check_word("encoder name", name)
        if not callable(factory):
            raise EncoderError(f"encoder factory for {name!r} must be callable, got {factory!r}")
        with self._lock:
            if name in self._factories:
                raise EncoderError(
                    f"encoder {name!r} is already registered (by {self._factories[name]!r}); "
                    "choose another name"
                )
            self._factories[name] = factory

    def add_family(self, prefix: str, resolver: EncoderFamily) -> None:
        """Register a family: every name ``"prefix:member"`` resolves through ``resolver``.

        Args:
            prefix: Non-empty word without whitespace or ``:``.
            resolver: Callable ``(member) -> EncoderFactory``; it raises
                :class:`~catseg.errors.EncoderError` for a member it does not know.

        Raises:
            EncoderError: If the prefix is invalid or taken, or the resolver is not
                callable.

        Examples:
            >>> from catseg.models.encoders.resnet import resnet18, resnet34
            >>> registry = Registry(entry_point_group=None)
            >>> registry.add_family("tv", {"r18": resnet18, "r34": resnet34}.__getitem__)
            >>> registry.get("tv:r34").layer3[5].conv2.weight.shape[0]
            256
            >>> registry.names(), registry.families()
            ([], ['tv'])
        """
        _check_word("encoder family prefix", prefix)
        if not callable(resolver):
            raise EncoderError(f"encoder family {prefix!r} must be callable, got {resolver!r}")
        with self._lock:
            if prefix in self._families:
                raise EncoderError(f"encoder family {prefix!r} is already registered")
            self._families[prefix] = resolver

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
            ... def mine(*, in_channels: int = 3, width: int = 64):
            ...     from catseg.models.encoders.resnet import resnet18
            ...     return resnet18(in_channels=in_channels)
            >>> registry.names(), registry.options("mine")
            (['mine'], ['width'])
        """

        def decorator(factory: F) -> F:
            self.add(name, factory)
            return factory

        return decorator

    def register_family(self, prefix: str) -> Callable[[R], R]:
        """Decorator form of :meth:`add_family`; returns the resolver unchanged.

        Args:
            prefix: The family prefix.

        Returns:
            A decorator registering the resolver it wraps.

        Examples:
            >>> registry = Registry(entry_point_group=None)
            >>> @registry.register_family("tv")
            ... def resolve(member):
            ...     from catseg.models.encoders import resnet
            ...     return getattr(resnet, member)
            >>> registry.get("tv:resnet18").out_channels[-1]
            512
        """

        def decorator(resolver: R) -> R:
            self.add_family(prefix, resolver)
            return resolver

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an encoder (``"name"``) or a family (``"prefix:"``) from this registry.

        Meant for tests and plugin authors. An entry-point plugin that was loaded is
        forgotten and would be discovered again on the next lookup.

        Args:
            name: A registered name, or a family prefix followed by ``:``.

        Raises:
            EncoderError: If nothing is registered under ``name``.

        Examples:
            >>> registry = Registry.with_builtins(entry_point_group=None)
            >>> registry.unregister("resnet50")
            >>> "resnet50" in registry
            False
            >>> registry.unregister("resnet50")
            Traceback (most recent call last):
            ...
            catseg.errors.EncoderError: encoder 'resnet50' is not registered ...
        """
        with self._lock:
            if isinstance(name, str) and name.endswith(FAMILY_SEPARATOR):
                if self._families.pop(name[:-1], None) is not None:
                    return
            elif self._factories.pop(name, None) is not None:
                return
            known = sorted([*self._factories, *(f"{p}:" for p in self._families)])
            raise EncoderError(f"encoder {name!r} is not registered here; registered: {known}")

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

        Families are listed by :meth:`families`, not here.

        Returns:
            Sorted, de-duplicated names.

        Examples:
            >>> Registry(entry_point_group=None).names()
            []
        """
        with self._lock:
            names = set(self._factories)
        names.update(n for n in self._entry_points() if not n.endswith(FAMILY_SEPARATOR))
        return sorted(names)

    def families(self) -> list[str]:
        """The family prefixes (registered and entry points), each serving ``"prefix:<member>"``.

        Returns:
            Sorted prefixes, without the ``:``.

        Examples:
            >>> Registry(entry_point_group=None).families()
            []
        """
        with self._lock:
            prefixes = set(self._families)
        prefixes.update(n[:-1] for n in self._entry_points() if n.endswith(FAMILY_SEPARATOR))
        return sorted(prefixes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def _load(self, name: str, key: str) -> object:
        """Load the entry point ``key`` (a plain name or ``"prefix:"``) asked for as ``name``."""
        candidates = self._entry_points().get(key, [])
        if not candidates:
            hint = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.5)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            families = [f"{p}:<name>" for p in self.families()]
            also = f"; families: {families}" if families else ""
            raise EncoderError(
                f"unknown encoder {name!r}; {did_you_mean}available: {self.names()}{also}"
            )
        if len(candidates) > 1:
            described = "; ".join(_describe_entry_point(ep) for ep in candidates)
            raise EncoderError(f"encoder {key!r} is claimed by several plugins: {described}")
        ep = candidates[0]
        try:
            loaded = ep.load()
        except Exception as err:
            raise EncoderError(
                f"encoder plugin {key!r} failed to load from {_describe_entry_point(ep)}: "
                f"{type(err).__name__}: {err}"
            ) from err
        if not callable(loaded):
            raise EncoderError(
                f"encoder plugin {key!r} from {_describe_entry_point(ep)} is not callable: "
                f"{loaded!r}"
            )
        return loaded

    def _family_factory(self, name: str) -> EncoderFactory:
        prefix, _, member = name.partition(FAMILY_SEPARATOR)
        with self._lock:
            resolver = self._families.get(prefix)
            if resolver is None:
                resolver = self._load(name, prefix + FAMILY_SEPARATOR)  # type: ignore[assignment]
                self._families[prefix] = resolver  # type: ignore[assignment]
        if not member:
            raise EncoderError(f"encoder {name!r} names no member of family {prefix!r}")
        try:
            factory = resolver(member)  # type: ignore[misc]
        except CatsegError:
            raise
        except Exception as err:
            raise EncoderError(
                f"encoder family {prefix!r} cannot resolve {member!r}: {type(err).__name__}: {err}"
            ) from err
        if not callable(factory):
            raise EncoderError(f"encoder family {prefix!r} returned {factory!r} for {member!r}")
        return factory

    def factory(self, name: str) -> EncoderFactory:
        """Return the factory registered (or discovered) under ``name``.

        Args:
            name: Encoder name, or ``"prefix:member"`` for a family.

        Returns:
            The factory.

        Raises:
            EncoderError: If the name is unknown (with a "did you mean" hint), the
                plugin fails to import, or two distributions claim the same name.

        Examples:
            >>> Registry.with_builtins(entry_point_group=None).factory("resnet18").__name__
            'resnet18'
        """
        if isinstance(name, str) and FAMILY_SEPARATOR in name:
            return self._family_factory(name)
        with self._lock:
            if name in self._factories:
                return self._factories[name]
            loaded = self._load(name, name)
            self._factories[name] = loaded  # type: ignore[assignment]
            return self._factories[name]

    def options(self, name: str) -> list[str] | None:
        """The options the factory of ``name`` accepts (see :func:`encoder_options`).

        Args:
            name: Encoder name.

        Returns:
            Sorted option names, or ``None`` if the factory takes any option.

        Examples:
            >>> Registry.with_builtins(entry_point_group=None).options("resnet34")
            []
        """
        return encoder_options(self.factory(name))

    def get(
        self,
        name: str,
        *,
        in_channels: int = 3,
        options: Mapping[str, Any] | None = None,
        pretrained: bool = False,
    ) -> Encoder:
        """Build the encoder called ``name``.

        Args:
            name: Encoder name.
            in_channels: Input channels of the encoder's first layer.
            options: Keyword options for the factory (recorded by the UNet's config).
            pretrained: Passed on as ``pretrained=True`` only when set, for older
                plugin factories that load their own weights; catseg's built-ins take
                their weights from ``UNet(encoder_weights=...)`` instead.

        Returns:
            The encoder (an ``nn.Module`` following :class:`Encoder`).

        Raises:
            ConfigError: If an option is not accepted by the factory (all accepted
                options are listed).
            EncoderError: If the name is unknown, the plugin is broken, the factory
                fails, or what it returns breaks the static contract.

        Examples:
            >>> Registry.with_builtins().get("unet", in_channels=1).out_channels[0]
            32
            >>> Registry.with_builtins().get("unet", options={"widht": 8})
            Traceback (most recent call last):
            ...
            catseg.errors.ConfigError: encoder 'unet' has no option 'widht'; accepted \
options: ['activation', 'depth', 'dropout', 'init_features', 'norm']
        """
        factory = self.factory(name)
        kwargs: dict[str, Any] = dict(options or {})
        if pretrained:
            kwargs["pretrained"] = True
        accepted = encoder_options(factory)
        if accepted is not None:
            unknown = [key for key in kwargs if key not in accepted]
            if unknown:
                plural = "s" if len(unknown) > 1 else ""
                listed = ", ".join(repr(k) for k in unknown)
                raise ConfigError(
                    f"encoder {name!r} has no option{plural} {listed}; accepted options: {accepted}"
                )
        try:
            encoder = factory(in_channels=in_channels, **kwargs)
        except CatsegError:
            raise
        except Exception as err:
            raise EncoderError(
                f"encoder factory {name!r} ({factory!r}) failed with in_channels={in_channels}, "
                f"options={kwargs}: {type(err).__name__}: {err}"
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
        ... def again(*, in_channels: int = 3):
        ...     raise NotImplementedError
        Traceback (most recent call last):
        ...
        catseg.errors.EncoderError: encoder 'resnet18' is already registered ...
    """
    return _DEFAULT_REGISTRY.register(name)


def register_encoder_family(prefix: str) -> Callable[[R], R]:
    """Register a family resolver in the process-wide registry (decorator).

    ``UNet(encoder="prefix:member")`` then builds ``resolver(member)(in_channels=...,
    **options)``.

    Args:
        prefix: The family prefix (no ``:``). Duplicates raise.

    Returns:
        A decorator that registers the resolver and returns it unchanged.

    Examples:
        >>> @register_encoder_family("doc")
        ... def resolve(member):
        ...     from catseg.models.encoders import resnet
        ...     return getattr(resnet, member)
        >>> get_encoder("doc:resnet18").out_channels[-1]
        512
        >>> default_registry().unregister("doc:")
    """
    return _DEFAULT_REGISTRY.register_family(prefix)


def get_encoder(
    name: str,
    *,
    in_channels: int = 3,
    options: Mapping[str, Any] | None = None,
    pretrained: bool = False,
) -> Encoder:
    """Build a registered (or plugin) encoder by name.

    Args:
        name: Encoder name, e.g. ``"resnet34"`` or ``"timm:convnext_atto"``.
        in_channels: Input channels.
        options: Keyword options for the factory.
        pretrained: Passed on to older plugin factories (see :meth:`Registry.get`).

    Returns:
        The encoder.

    Raises:
        ConfigError: If an option is not accepted (the accepted ones are listed).
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
    return _DEFAULT_REGISTRY.get(
        name, in_channels=in_channels, options=options, pretrained=pretrained
    )


def list_encoders() -> list[str]:
    """Names accepted by ``UNet(encoder=...)``: built-ins, registered and plugins.

    Families (``"timm:<model>"``) are listed by ``default_registry().families()``.

    Returns:
        Sorted names (plugins are listed without being imported).

    Examples:
        >>> {"unet", "resnet18", "resnet34", "resnet50"} <= set(list_encoders())
        True
    """
    return _DEFAULT_REGISTRY.names()
