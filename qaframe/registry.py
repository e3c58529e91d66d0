"""One small Registry type: name -> factory, with its provider, conflicts, did-you-mean and checked creation.

A Registry holds third-party factories to their contract: a factory whose signature does not
take the kind's documented call is reported as soon as it is registered (`qaframe plugins` lists it
as broken; `get` refuses it), and `create` refuses a product that is not of the kind's type (a
torch optimizer, ...), lacks a member of its kind's Protocol (`qaframe.types`), or has only part
of a richer one (a refiner with `fit` but no `to_json`, whose fitted state could not be saved),
each a one-line UserError naming the plugin; so is a factory that builds its own (kind, name)
again while it runs, which would otherwise recurse forever.
"""

from __future__ import annotations

import difflib
import importlib
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
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to inspect (some builtins)
        return True
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _documented_arguments(call: str) -> tuple[tuple, dict]:
    """Stand-in arguments (None each) for a documented call: `factory(spec: ModelSpec, *, pretrained: bool) -> QAModel`
    gives ((None,), {"pretrained": None})."""
    inside = call[call.index("(") + 1 : call.index(")")]
    names = [part.split(":")[0].strip() for part in inside.split(",") if part.strip()]
    keyword_from = names.index("*") if "*" in names else len(names)
    return (None,) * keyword_from, dict.fromkeys(names[keyword_from + 1 :])


def _parameters(factory: Callable) -> str:
    """`name(a, b=1, *, c)`: the factory's name and parameters without annotations."""
    signature = inspect.signature(factory)
    plain = [parameter.replace(annotation=parameter.empty) for parameter in signature.parameters.values()]
    return getattr(factory, "__name__", type(factory).__name__) + str(signature.replace(parameters=plain, return_annotation=signature.empty))


def _resolve_type(path: str) -> type:
    """The class a dotted path names, e.g. `torch.optim.Optimizer` (imported only now: torch stays out of the CLI's start)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Registry:
    """The components of one kind, looked up by name; unknown and doubly-claimed names are user errors."""

    def __init__(
        self,
        kind: str,
        broken: tuple[BrokenPlugin, ...] = (),
        disabled: tuple[Provider, ...] = (),
        protocol: type | None = None,
        extension: type | None = None,
        calls: tuple[str, ...] = (),
        product: str | None = None,
    ):
        self.kind = kind
        self.broken = broken
        self.disabled = disabled  # plugins skipped by QAFRAME_DISABLE_PLUGINS, named in unknown-name errors
        self.protocol = protocol  # the runtime-checkable Protocol what the factories build must satisfy
        self.extension = extension  # a richer Protocol they may satisfy, but then wholly
        self.calls = calls  # the documented factory calls (a factory must take one), quoted when it takes none
        self.product = product  # the dotted path of the class what the factories build must be an instance of
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

    def call_problem(self, component: Component) -> str | None:
        """Why `component`'s factory cannot be called as any documented call of its kind, or None."""
        if not self.calls or any(accepts(component.factory, *_documented_arguments(call)) for call in self.calls):
            return None
        documented = " or ".join(f"`{call}`" for call in self.calls)
        return (f"{self.kind} '{component.name}' of plugin {component.provider}: its factory {_parameters(component.factory)} "
                f"cannot be called as {documented}")

    def get(self, name: str) -> Component:
        """The component called `name`; raises UserError for an unknown or conflicting name or a factory of the wrong signature."""
        claims = self._entries.get(name)
        if not claims:
            raise UserError(self.unknown_message(name))
        component = self.winner(name)
        problem = self.conflict(name) or self.call_problem(component)
        if problem:
            raise UserError(problem)
        return component

    def winner(self, name: str) -> Component:
        """The claim on a registered `name` that wins when `conflict(name)` is None: the one with override=True, else the only one."""
        claims = self._entries[name]
        overriding = [c for c in claims if c.override]
        return overriding[0] if overriding else claims[0]

    def create(self, name: str, *args, **kwargs):
        """Call the factory registered as `name` and check what it builds against the kind's type and Protocol.

        `partial(registry.create, name)` is the checked stand-in for the factory itself.
        """
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
        finally:
            building.discard((self.kind, name))
        if self.product is not None and not isinstance(made, _resolve_type(self.product)):
            raise UserError(f"{where} built a {type(made).__name__}, not the {self.product} its contract (docs/hooks.md) requires")
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
