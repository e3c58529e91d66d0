"""One small Registry type: name -> factory, with its provider, conflicts and did-you-mean."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable


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


def first_line(text: str | None) -> str:
    """The first non-empty line of a docstring or message, stripped."""
    for line in (text or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry:
    """The components of one kind, looked up by name; unknown and doubly-claimed names are user errors."""

    def __init__(self, kind: str, broken: tuple[BrokenPlugin, ...] = ()):
        self.kind = kind
        self.broken = broken
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
        shown = overriding if len(overriding) > 1 else claims
        providers = " and ".join(str(c.provider) for c in shown)
        return (
            f"{self.kind} '{name}' is registered by more than one plugin: {providers}; "
            "uninstall or disable one (QAFRAME_DISABLE_PLUGINS), or register the intended one with override=True"
        )

    def get(self, name: str) -> Component:
        """The component called `name`; raises UserError for an unknown or conflicting name."""
        from qaframe.errors import UserError

        claims = self._entries.get(name)
        if not claims:
            raise UserError(self.unknown_message(name))
        problem = self.conflict(name)
        if problem:
            raise UserError(problem)
        overriding = [c for c in claims if c.override]
        return overriding[0] if overriding else claims[0]

    def create(self, name: str, *args, **kwargs):
        """Call the factory registered as `name`."""
        return self.get(name).factory(*args, **kwargs)

    def unknown_message(self, name: str) -> str:
        """`unknown corpus 'korqad'; did you mean 'korquad'? available: ...` plus broken plugins."""
        names = self.names()
        message = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean '{close[0]}'?"
        message += f" available: {', '.join(names) if names else '(none)'}"
        for plugin in self.broken:
            message += f"; note: plugin {plugin.provider} failed to load: {plugin.error}"
        return message
