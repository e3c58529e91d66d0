"""Meta-tests: every hook has a documented signature in docs/hooks.md and a test; the built-in plugin table matches the plugins."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from qaframe import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name, value in vars(hookspecs).items() if name.startswith("register_") and inspect.isfunction(value)]


def test_hooks_are_found():
    assert len(HOOKS) == 8


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    signature = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert f"### {signature}\n" in (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    """Some test module (or a plugin module the tests register) implements the hook."""
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name]
    assert any(f"def {hook}(" in s or f"{hook}=" in s for s in sources), f"no test implements {hook}"


def test_the_built_in_plugin_table_lists_what_each_built_in_plugin_provides(qaframe_host):
    """docs/writing-plugins.md names every built-in plugin QAFRAME_DISABLE_PLUGINS can skip, with its components."""
    text = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    table = {plugin: set(re.findall(r"`([^`]+)`", provides)) for plugin, provides in re.findall(r"^  \| `(qaframe\.\w+)` \| (.*) \|$", text, re.M)}
    listed: dict[str, set[str]] = {}
    for row in qaframe_host.listing():
        listed.setdefault(row["provider"], set()).add(row["name"])
    assert table == listed
