"""One small Registry type: name -> factory, with its provider, conflicts, did-you-mean and checked creation.

`Registry.create` holds third-party factories to their contract: a factory that cannot be
called with the documented arguments, or that builds an object lacking a member of its kind's
Protocol (`qaframe.types`), or only part of a richer one (a refiner with `fit` but no `to_json`,
whose fitted state could not be saved), is a one-line UserError naming the plugin; so is a factory that
builds its own (kind, name) again while it runs, which would otherwise recurse forever.
"""

from __future__ import annotations

import difflib
import inspect
import threading
from dataclasses import dataclass
from typing import Callable

from qaframe.errors import UserError


@dataclass(frozen=True)
class Provider:
    """Where a component or plugin comes from: the plugin's name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"'{self.plugin}' ({self.distribution} {self.version})"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded or whose hook failed, with the first line of the error."""

    provider: Provider
    error: str


@dataclass(frozen=True)
class Component:
    """One registered thing: its kind, name, factory, provider and one-line description."""

    kind: str
    name: str
    factory: Callable
    provider: Provider
    description: str
    override: bool = False


_building = threading.local()  # .keys: the (kind, name) pairs whose factories run in this thread


def first_line(text: str | None) -> str:
    """The first non-empty line of a docstring or message, stripped."""
    for line in (text or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def protocol_members(protocol: type) -> list[str]:
    """The attributes and public methods a Protocol class declares, its protocol bases' included, sorted."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is not object and base.__module__ != "typing":
            names.update(inspect.get_annotations(base))
            names.update(n for n, v in vars(base).items() if callable(v) and not n.startswith("_"))
    return sorted(names)


def accepts(factory: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether `factory`'s signature binds these arguments (True when it cannot be inspected)."""
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins)
        pass
    return True


class Registry:
    """The components of one kind, looked up by name; unknown and doubly-claimed names are user errors."""

    def __init__(
        self,
        kind: str,
        broken: tuple[BrokenPlugin, ...] = (),
        disabled: tuple[Provider, ...] = (),
        protocol: type | None = None,
        extension: type | None = None,
        signature: str = "factory(...)",
    ):
        self.kind = kind
        self.broken = broken
        self.disabled = disabled  # plugins skipped by QAFRAME_DISABLE_PLUGINS, named in unknown-name errors
        self.protocol = protocol  # the runtime-checkable Protocol what the factories build must satisfy
        self.extension = extension  # a richer Protocol they may satisfy, but then wholly
        self.signature = signature  # the documented factory call, quoted when a factory does not accept it
        self._entries: dict[str, list[Component]] = {}

    def add(self, component: Component) -> None:
        """Add a component; conflicts are kept and reported when the name is used."""
        self._entries.setdefault(component.name, []).append(component)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def components(self) -> list[Component]:
        """Every registered component, conflicting ones included, sorted by name."""
        return [c for name in self.names() for c in self._entries[name]]

    def conflict(self, name: str) -> str | None:
        """Why `name` cannot be resolved because several plugins claim it, or None."""
        claims = self._entries.get(name, [])
        overriding = [c for c in claims if c.override]
        if len(claims) <= 1 or len(overriding) == 1:
            return None
        if overriding:
            providers = " and ".join(str(c.provider) for c in overriding)
            return (
                f"{self.kind} '{name}' is overridden (override=True) by more than one plugin: {providers}; "
                "keep one: disable the others with QAFRAME_DISABLE_PLUGINS (plugin or distribution names) or uninstall them"
            )
        providers = " and ".join(str(c.provider) for c in claims)
        return (
            f"{self.kind} '{name}' is registered by more than one plugin: {providers}; "
            "uninstall or disable one (QAFRAME_DISABLE_PLUGINS), or register the intended one with override=True"
        )

    def get(self, name: str) -> Component:
        """The component called `name`; raises UserError for an unknown or conflicting name."""
        claims = self._entries.get(name)
        if not claims:
            raise UserError(self.unknown_message(name))
        problem = self.conflict(name)
        if problem:
            raise UserError(problem)
        overriding = [c for c in claims if c.override]
        return overriding[0] if overriding else claims[0]

    def create(self, name: str, *args, **kwargs):
        """Call the factory registered as `name` and check what it builds against the kind's Protocol."""
        component = self.get(name)
        where = f"{self.kind} '{name}' of plugin {component.provider}"
        building = _building.__dict__.setdefault("keys", set())
        if (self.kind, name) in building:
            raise UserError(
                f"{where} builds {self.kind} '{name}' again while it is being built, which would recurse forever "
                "(a wrapper registered with override=True under the name it wraps?); register the wrapper under its own name"
            )
        building.add((self.kind, name))
        try:
            made = component.factory(*args, **kwargs)
        except TypeError as error:
            if accepts(component.factory, args, kwargs):
                raise
            raise UserError(f"{where}: its factory cannot be called as `{self.signature}`: {error}") from error
        finally:
            building.discard((self.kind, name))
        missing = [m for m in protocol_members(self.protocol) if not hasattr(made, m)] if self.protocol else []
        if missing:
            raise UserError(
                f"{where} built a {type(made).__name__} without {', '.join(missing)}, "
                f"which the {self.protocol.__name__} contract (qaframe.types) requires"
            )
        if self.extension is not None:
            extra = [m for m in protocol_members(self.extension) if m not in protocol_members(self.protocol)]
            present = [m for m in extra if hasattr(made, m)]
            if present and len(present) < len(extra):
                raise UserError(
                    f"{where} built a {type(made).__name__} with {', '.join(present)} but without "
                    f"{', '.join(m for m in extra if m not in present)}: a {self.extension.__name__} (qaframe.types) "
                    f"needs all of them, or none for a plain {self.protocol.__name__}"
                )
        return made

    def unknown_message(self, name: str) -> str:
        """`unknown corpus 'korqad'; did you mean 'korquad'? available: ...` plus broken and disabled plugins."""
        names = self.names()
        message = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        message += f"; did you mean '{close[0]}'?" if close else ";"
        message += f" available: {', '.join(names) if names else '(none)'}"
        for plugin in self.broken:
            message += f"; note: plugin {plugin.provider} failed to load: {plugin.error}"
        if self.disabled:
            plugins = ", ".join(str(provider) for provider in self.disabled)
            message += f"; note: QAFRAME_DISABLE_PLUGINS disables {plugins}, which may provide it"
        return message
