"""The plugin manager: entry-point discovery, built-ins, broken plugins, disabling, and the typed registries.

Every plugin, the built-ins included, is found through the entry-point group `qaframe`.
`QAFRAME_DISABLE_PLUGINS` is a comma-separated list of plugin (entry-point) names or
distribution names to skip; the word `third-party` skips every plugin not shipped with qaframe.
A name that matches nothing installed is logged as a warning. A plugin object that implements
no hook (e.g. its functions lack `@hookimpl`), or leaves one of its `register_*` hooks
undecorated while decorating others, is listed as broken, as is one pluggy rejects.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from importlib.metadata import entry_points
from typing import Iterable

import pluggy

from qaframe import hookspecs
from qaframe.registry import BrokenPlugin, Component, Provider, Registry, first_line
from qaframe.types import Corpus, Featurizer, Metric, QAModel, Refiner, TrainableRefiner

log = logging.getLogger("qaframe.plugins")

ENTRY_POINT_GROUP = "qaframe"
DISABLE_ENV = "QAFRAME_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "qaframe"

# kind (singular, as users read it) -> the hook's plural noun (register_<plural>)
KINDS = {
    "corpus": "corpora",
    "featurizer": "featurizers",
    "model": "models",
    "head": "heads",
    "optimizer": "optimizers",
    "scheduler": "schedulers",
    "metric": "metrics",
    "refiner": "refiners",
}
# kind -> the runtime-checkable Protocol (qaframe.types) that what its factories build must satisfy
PROTOCOLS = {"corpus": Corpus, "featurizer": Featurizer, "head": QAModel, "metric": Metric, "refiner": Refiner}
# kind -> the class what its factories build must be an instance of (a dotted path: torch is imported only when checking)
PRODUCTS = {"head": "torch.nn.Module", "optimizer": "torch.optim.Optimizer", "scheduler": "torch.optim.lr_scheduler.LRScheduler"}
# kind -> a richer Protocol that what its factories build may satisfy: then wholly (all its extra members or none)
EXTENSIONS = {"refiner": TrainableRefiner}


def disabled_names() -> set[str]:
    """The plugin or distribution names that QAFRAME_DISABLE_PLUGINS asks to skip."""
    return {part.strip() for part in os.environ.get(DISABLE_ENV, "").split(",") if part.strip()}


def factory_calls(kind: str) -> tuple[str, ...]:
    """The factory calls documented in the kind's hookspec, e.g. (`factory(options: CorpusOptions) -> Corpus`,);
    a featurizer may also be an origin-style `fn(examples, tokenizer, args) -> list[dict]`."""
    doc = getattr(hookspecs, f"register_{KINDS[kind]}").__doc__
    return tuple(re.findall(r"`(\w+\(.*?\) -> [^`]+)`", doc))


def _error_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(str(error)) or '(no message)'}"


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: qaframe_faq and qaframe-faq are one distribution


class PluginHost:
    """A typed facade over the pluggy manager: plugins in, one Registry per kind out."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, Provider] = {}  # registered plugin name -> where it came from
        self.broken: list[BrokenPlugin] = []
        self.disabled: list[Provider] = []  # skipped because QAFRAME_DISABLE_PLUGINS names them
        self._registries: dict[str, Registry] | None = None
        self._failed_hooks: tuple[BrokenPlugin, ...] = ()

    # -- loading -----------------------------------------------------------------
    def load_entry_points(self, disabled: Iterable[str] | None = None) -> None:
        """Load every plugin declared in the entry-point group, recording the ones that fail; skip `disabled`
        (plugin or distribution names, or "third-party"; QAFRAME_DISABLE_PLUGINS when None)."""
        skip = disabled_names() if disabled is None else set(disabled)
        skip_distributions = {_distribution_key(name) for name in skip}
        names, distributions = [], set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "unknown"
            provider = Provider(ep.name, dist, ep.dist.version if ep.dist else "?")
            builtin = dist == BUILTIN_DISTRIBUTION
            names.append(ep.name)
            distributions.add(_distribution_key(dist))
            if ep.name in skip or _distribution_key(dist) in skip_distributions or (not builtin and "third-party" in skip):
                self.disabled.append(provider)
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # a third party's import error must not break qaframe
                self.broken.append(BrokenPlugin(provider, _error_line(error)))
                continue
            self.register(plugin, provider)
        unmatched = sorted(n for n in skip - {"third-party"} - set(names) if _distribution_key(n) not in distributions)
        if unmatched:
            log.warning(
                "%s: %s matches no installed qaframe plugin or distribution (plugins: %s)",
                DISABLE_ENV, ", ".join(unmatched), ", ".join(names) or "none",
            )

    def register(self, plugin: object, provider: Provider | str) -> bool:
        """Register one plugin object (a module or instance with hook implementations).

        Returns False (and records it as broken) when its hooks do not match the specs,
        e.g. a misspelled hook name or argument, or when it implements no hook at all.
        """
        if isinstance(provider, str):
            provider = Provider(provider, "in-process", "-")
        self._registries = None
        try:
            self.manager.register(plugin, name=provider.plugin)
            self.manager.check_pending()
            problem = self._undecorated(plugin)
        except pluggy.PluginValidationError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            problem = "PluginValidationError: " + "; ".join(lines).replace("unknown hook", "unknown hook (misspelled?)")
        if problem:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self.broken.append(BrokenPlugin(provider, problem))
            return False
        self.plugins[provider.plugin] = provider
        return True

    def _undecorated(self, plugin: object) -> str | None:
        """Why a registered plugin has hooks that would register nothing in silence (no `@hookimpl`), or None."""
        decorated = {caller.name for caller in self.manager.get_hookcallers(plugin)}
        undecorated = [name for name in dir(plugin) if name.startswith("register_") and hasattr(self.manager.hook, name)
                       and name not in decorated]
        if not decorated:
            found = f": {', '.join(undecorated)} not decorated" if undecorated else ""
            return f"defines no @hookimpl-decorated hooks{found}; did you forget `from qaframe import hookimpl` / `@hookimpl`?"
        if undecorated:
            return (f"{', '.join(undecorated)} not decorated with @hookimpl, unlike {', '.join(sorted(decorated))}, "
                    "so it would register nothing; add `@hookimpl` (from qaframe import hookimpl)")
        return None

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under `name`."""
        self.manager.unregister(name=name)
        self.plugins.pop(name, None)
        self._registries = None

    # -- registries --------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        """The Registry of one kind ('corpus', 'featurizer', ...), built on first use."""
        if self._registries is None:
            self._registries = self._collect()
        return self._registries[kind]

    def _collect(self) -> dict[str, Registry]:
        failed: dict[str, BrokenPlugin] = {}
        components: dict[str, list[Component]] = {kind: [] for kind in KINDS}
        for kind, plural in KINDS.items():
            hook = getattr(self.manager.hook, f"register_{plural}")
            for impl in hook.get_hookimpls():
                provider = self.plugins.get(impl.plugin_name) or Provider(impl.plugin_name, "in-process", "-")
                if provider.plugin in failed:
                    continue

                def register(name, factory, *, description=None, override=False, _kind=kind, _provider=provider):
                    if not isinstance(name, str) or not name or not callable(factory):
                        raise TypeError(f"register() needs a non-empty name and a callable factory, got {name!r}, {factory!r}")
                    text = description or first_line(getattr(factory, "__doc__", None))
                    components[_kind].append(Component(_kind, name, factory, _provider, text, override))

                try:
                    impl.function(register=register)
                except Exception as error:
                    failed[provider.plugin] = BrokenPlugin(provider, _error_line(error))
        broken = tuple(self.broken) + tuple(failed.values())
        registries = {
            kind: Registry(kind, broken, tuple(self.disabled), PROTOCOLS.get(kind), EXTENSIONS.get(kind), factory_calls(kind),
                           PRODUCTS.get(kind))
            for kind in KINDS
        }
        for kind, items in components.items():
            for component in items:
                if component.provider.plugin not in failed:
                    registries[kind].add(component)
        self._failed_hooks = tuple(failed.values())
        return registries

    def all_broken(self) -> list[BrokenPlugin]:
        """Plugins that failed to import, to validate, or whose register hook raised."""
        self.registry("corpus")
        return list(self.broken) + list(self._failed_hooks)

    def create(self, kind: str, name: str, *args, **kwargs):
        """Build the component `name` of `kind` with its factory, checked as `Registry.create` describes."""
        return self.registry(kind).create(name, *args, **kwargs)

    def create_refiner(self, name: str | None) -> Refiner | None:
        """The refiner `name` names; None for "none" (or no name): answers are then the token spans as decoded."""
        return None if name in (None, "none") else self.create("refiner", name)

    def listing(self) -> list[dict]:
        """One row per component and per broken plugin, as `qaframe plugins --json` prints them."""
        rows = []
        for kind in KINDS:
            registry = self.registry(kind)
            for component in registry.components():
                conflict = registry.conflict(component.name)
                problem = conflict or registry.call_problem(component)
                winner = None if conflict else registry.winner(component.name)
                status = "broken" if problem else "ok" if winner is component else f"overridden by {winner.provider.plugin}"
                rows.append(
                    {
                        "kind": kind,
                        "name": component.name,
                        "provider": component.provider.plugin,
                        "distribution": component.provider.distribution,
                        "version": component.provider.version,
                        "status": status,
                        "description": problem or component.description,
                        "override": component.override,
                    }
                )
        for plugin in self.all_broken():
            rows.append(
                {
                    "kind": "plugin",
                    "name": plugin.provider.plugin,
                    "provider": plugin.provider.plugin,
                    "distribution": plugin.provider.distribution,
                    "version": plugin.provider.version,
                    "status": "broken",
                    "description": plugin.error,
                    "override": False,
                }
            )
        return rows


@functools.lru_cache(maxsize=1)
def get_host() -> PluginHost:
    """The process-wide PluginHost, with every installed plugin loaded from entry points (tests use `qaframe.testing`'s
    isolated one instead)."""
    host = PluginHost()
    host.load_entry_points()
    return host
