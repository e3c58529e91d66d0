"""Meta-tests: every hook has a documented signature in docs/hooks.md and at least one test that uses it."""

from __future__ import annotations

import inspect
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
