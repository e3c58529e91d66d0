"""The plugin core: registries, conflicts, overrides, broken and disabled plugins, listing, CLI errors."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from qaframe import hookimpl
from qaframe import plugins as plugin_module
from qaframe.cli import cli
from qaframe.errors import UserError
from qaframe.plugins import BUILTIN_DISTRIBUTION, KINDS, PluginHost
from qaframe.registry import Provider
from qaframe.types import CorpusSplit


def make_plugin(**hooks):
    """An in-process plugin object whose hooks register the given {hook name: [(name, factory, kwargs)]}."""
    namespace = {}
    for hook_name, entries in hooks.items():

        def implementation(register, _entries=entries):
            for name, factory, kwargs in _entries:
                register(name, factory, **kwargs)

        implementation.__name__ = hook_name
        namespace[hook_name] = hookimpl(implementation)
    return SimpleNamespace(**namespace)


class FakeCorpus:
    """A corpus that fits the Corpus protocol and remembers what it was built with."""

    metric, refiner = "squad", "none"

    def __init__(self, options):
        self.options = options

    def splits(self):
        return ("dev",)

    def load(self, split):
        return CorpusSplit([])


def corpus_factory(options):
    """A corpus used only in tests."""
    return FakeCorpus(options)


def other_factory(options):
    """Another corpus used only in tests."""
    return FakeCorpus("other")


def test_every_kind_has_a_hook():
    from qaframe import hookspecs

    for plural in KINDS.values():
        assert callable(getattr(hookspecs, f"register_{plural}"))


def test_unknown_name_suggests_and_lists():
    host = PluginHost()
    host.register(make_plugin(register_corpora=[("korquad", corpus_factory, {}), ("sample", corpus_factory, {})]), "mine")
    with pytest.raises(UserError) as info:
        host.create("corpus", "korqad", None)
    assert str(info.value) == "unknown corpus 'korqad'; did you mean 'korquad'? available: korquad, sample"


def test_description_defaults_to_docstring_and_can_be_given():
    host = PluginHost()
    host.register(
        make_plugin(register_corpora=[("a", corpus_factory, {}), ("b", corpus_factory, {"description": "Given."})]), "mine"
    )
    rows = {r["name"]: r for r in host.listing()}
    assert rows["a"]["description"] == "A corpus used only in tests."
    assert rows["b"]["description"] == "Given."


def test_same_name_from_two_plugins_names_both_providers():
    host = PluginHost()
    host.register(make_plugin(register_corpora=[("korquad", corpus_factory, {})]), Provider("first", "dist-one", "1.0"))
    host.register(make_plugin(register_corpora=[("korquad", other_factory, {})]), Provider("second", "dist-two", "2.0"))
    with pytest.raises(UserError) as info:
        host.create("corpus", "korquad", None)
    message = str(info.value)
    assert "'first' (dist-one 1.0)" in message and "'second' (dist-two 2.0)" in message
    assert "\n" not in message
    statuses = {r["provider"]: r["status"] for r in host.listing() if r["name"] == "korquad"}
    assert statuses == {"first": "broken", "second": "broken"}


def test_override_is_explicit_and_order_independent():
    for order in ((0, 1), (1, 0)):
        host = PluginHost()
        plugins = [
            (make_plugin(register_corpora=[("korquad", corpus_factory, {})]), "builtin"),
            (make_plugin(register_corpora=[("korquad", other_factory, {"override": True})]), "replacement"),
        ]
        for i in order:
            host.register(*plugins[i])
        assert host.create("corpus", "korquad", None).options == "other"


def test_two_overrides_of_one_name_are_a_conflict():
    host = PluginHost()
    host.register(make_plugin(register_corpora=[("x", corpus_factory, {"override": True})]), "one")
    host.register(make_plugin(register_corpora=[("x", other_factory, {"override": True})]), "two")
    with pytest.raises(UserError, match="more than one plugin"):
        host.registry("corpus").get("x")


def test_misspelled_hook_is_an_error_naming_the_plugin():
    host = PluginHost()
    assert not host.register(make_plugin(register_corpra=[("x", corpus_factory, {})]), "typo-plugin")
    broken = host.all_broken()
    assert broken[0].provider.plugin == "typo-plugin"
    assert "register_corpra" in broken[0].error
    assert "typo-plugin" not in host.plugins


def test_hook_that_raises_marks_only_its_plugin_broken():
    def explode(register):
        register("good-looking", corpus_factory)
        raise RuntimeError("cannot find my data\nsecond line")

    host = PluginHost()
    host.register(SimpleNamespace(register_corpora=hookimpl(explode)), "exploding")
    host.register(make_plugin(register_corpora=[("fine", corpus_factory, {})]), "fine-plugin")
    assert host.registry("corpus").names() == ["fine"]
    [broken] = host.all_broken()
    assert broken.provider.plugin == "exploding" and broken.error == "RuntimeError: cannot find my data"


def metric_factory():
    """A metric used only in tests."""
    return SimpleNamespace(name="acme-f1", compute=lambda predictions, references: {"exact_match": 0.0, "f1": 0.0})


class FakeDist:
    def __init__(self, name, version):
        self.name, self.version = name, version


class FakeEntryPoint:
    def __init__(self, name, dist, target=None, error=None):
        self.name, self.dist, self._target, self._error = name, dist, target, error

    def load(self):
        if self._error:
            raise self._error
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Replace entry-point discovery with a built-in, a working third party and a broken one."""
    points = [
        FakeEntryPoint("qaframe.corpora", FakeDist("qaframe", "0.1.0"), make_plugin(register_corpora=[("korquad", corpus_factory, {})])),
        FakeEntryPoint("acme", FakeDist("acme-qa", "3.2"), make_plugin(register_metrics=[("acme-f1", metric_factory, {})])),
        FakeEntryPoint("shaky", FakeDist("shaky-qa", "0.9"), error=ImportError("No module named 'shaky_deps'\nmore")),
    ]
    monkeypatch.setattr(plugin_module, "entry_points", lambda group: points if group == "qaframe" else [])
    return points


def test_broken_import_is_listed_and_named_in_unknown_errors(fake_entry_points):
    host = PluginHost()
    host.load_entry_points(disabled=())
    assert host.create("corpus", "korquad", "ok").options == "ok"  # other plugins keep working
    broken = [r for r in host.listing() if r["status"] == "broken"]
    assert broken == [
        {
            "kind": "plugin",
            "name": "shaky",
            "provider": "shaky",
            "distribution": "shaky-qa",
            "version": "0.9",
            "status": "broken",
            "description": "ImportError: No module named 'shaky_deps'",
            "override": False,
        }
    ]
    with pytest.raises(UserError) as info:
        host.create("corpus", "shaky-corpus", None)
    assert "plugin 'shaky' (shaky-qa 0.9) failed to load: ImportError: No module named 'shaky_deps'" in str(info.value)


def test_disable_by_name_distribution_or_all_third_party(fake_entry_points, monkeypatch):
    def loaded(value):
        monkeypatch.setenv(plugin_module.DISABLE_ENV, value)
        host = PluginHost()
        host.load_entry_points()
        return sorted(host.plugins), sorted(b.provider.plugin for b in host.all_broken())

    assert loaded("") == (["acme", "qaframe.corpora"], ["shaky"])
    assert loaded("shaky") == (["acme", "qaframe.corpora"], [])
    assert loaded("acme-qa, shaky") == (["qaframe.corpora"], [])
    assert loaded("third-party") == (["qaframe.corpora"], [])


def test_plugins_command_table_and_json(fake_entry_points, monkeypatch):
    host = PluginHost()
    host.load_entry_points(disabled=())
    monkeypatch.setattr(plugin_module, "get_host", lambda: host)
    runner = CliRunner()
    table = runner.invoke(cli, ["plugins"])
    assert table.exit_code == 0, table.output
    assert "corpora" in table.output and "korquad" in table.output and "qaframe 0.1.0" in table.output
    assert "broken plugins" in table.output and "shaky-qa 0.9" in table.output
    rows = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    keys = {"kind", "name", "provider", "distribution", "version", "status", "description"}
    assert all(keys <= set(row) for row in rows)
    assert {(r["kind"], r["name"], r["status"]) for r in rows} == {
        ("corpus", "korquad", "ok"),
        ("metric", "acme-f1", "ok"),
        ("plugin", "shaky", "broken"),
    }


def test_testing_fixtures_register_for_one_test(qaframe_host, register_plugin):
    register_plugin(make_plugin(register_corpora=[("only-here", corpus_factory, {})]), name="only-here-plugin")
    assert plugin_module.get_host() is qaframe_host
    assert qaframe_host.create("corpus", "only-here", 5).options == 5
    assert all(p.distribution == BUILTIN_DISTRIBUTION for name, p in qaframe_host.plugins.items() if name != "only-here-plugin")


def with_entry_points(monkeypatch, *points):
    """Make entry-point discovery find exactly `points`."""
    monkeypatch.setattr(plugin_module, "entry_points", lambda group: list(points) if group == "qaframe" else [])


def register_corpora(register):  # deliberately without @hookimpl
    register("forgotten", corpus_factory)


def test_entry_point_plugin_without_hookimpl_is_broken(monkeypatch):
    undecorated = SimpleNamespace(register_corpora=register_corpora)
    with_entry_points(monkeypatch, FakeEntryPoint("forgetful", FakeDist("forgetful-qa", "1.0"), undecorated))
    host = PluginHost()
    host.load_entry_points(disabled=())
    [broken] = host.all_broken()
    assert broken.provider.plugin == "forgetful" and "forgetful" not in host.plugins
    assert broken.error == (
        "defines no @hookimpl-decorated hooks: register_corpora not decorated; "
        "did you forget `from qaframe import hookimpl` / `@hookimpl`?"
    )
    assert ("plugin", "forgetful", "broken") in {(r["kind"], r["name"], r["status"]) for r in host.listing()}


def test_an_undecorated_hook_beside_decorated_ones_is_broken_not_dropped(register_plugin):
    half = SimpleNamespace(
        register_metrics=hookimpl(lambda register: None),
        register_corpora=register_corpora,  # forgot @hookimpl here only
    )
    host = PluginHost()
    assert not host.register(half, Provider("half", "half-qa", "1.0"))
    [broken] = host.all_broken()
    assert broken.provider.plugin == "half" and "half" not in host.plugins
    assert broken.error == (
        "register_corpora not decorated with @hookimpl, unlike register_metrics, so it would register nothing; "
        "add `@hookimpl` (from qaframe import hookimpl)"
    )
    assert ("plugin", "half", "broken") in {(r["kind"], r["name"], r["status"]) for r in host.listing()}
    with pytest.raises(AssertionError, match="register_corpora not decorated"):
        register_plugin(half, name="half")


def test_register_plugin_fixture_refuses_a_plugin_without_hooks(register_plugin):
    with pytest.raises(AssertionError, match="defines no @hookimpl-decorated hooks"):
        register_plugin(SimpleNamespace(register_corpora=register_corpora), name="forgetful")


def test_wrong_argument_name_shows_pluggys_whole_reason_on_one_line():
    def register_corpora(reg):
        reg("x", corpus_factory)

    host = PluginHost()
    assert not host.register(SimpleNamespace(register_corpora=hookimpl(register_corpora)), "mistake")
    [broken] = host.all_broken()
    assert "\n" not in broken.error
    assert broken.error.startswith("PluginValidationError: Plugin 'mistake' for hook 'register_corpora'; ")
    assert "Argument(s) {'reg'} are declared in the hookimpl but can not be found in the hookspec" in broken.error


def test_disabling_a_name_that_matches_nothing_warns(fake_entry_points, caplog):
    with caplog.at_level(logging.WARNING, logger="qaframe.plugins"):
        PluginHost().load_entry_points(disabled=("shaky_qa", "third-party", "qaframe.schedulers", "nosuch"))
    [record] = caplog.records
    assert record.getMessage() == (
        "QAFRAME_DISABLE_PLUGINS: nosuch, qaframe.schedulers matches no installed qaframe plugin or distribution "
        "(plugins: acme, qaframe.corpora, shaky)"
    )


def test_distribution_names_match_however_separators_are_written(fake_entry_points):
    host = PluginHost()
    host.load_entry_points(disabled=("Shaky_QA", "acme.qa"))
    assert sorted(host.plugins) == ["qaframe.corpora"] and host.all_broken() == []
    assert [p.plugin for p in host.disabled] == ["acme", "shaky"]


@pytest.mark.parametrize(
    "disabled, note",
    [
        (("acme",), "note: plugin 'shaky' (shaky-qa 0.9) failed to load: ImportError: No module named 'shaky_deps'; "
                    "note: QAFRAME_DISABLE_PLUGINS disables 'acme' (acme-qa 3.2), which may provide it"),
        (("third-party",), "note: QAFRAME_DISABLE_PLUGINS disables 'acme' (acme-qa 3.2), 'shaky' (shaky-qa 0.9), which may provide it"),
    ],
    ids=["by-name", "third-party"],
)
def test_unknown_name_notes_the_disabled_plugins(fake_entry_points, disabled, note):
    host = PluginHost()
    host.load_entry_points(disabled=disabled)
    with pytest.raises(UserError) as info:
        host.create("metric", "acme-f1")
    assert str(info.value) == f"unknown metric 'acme-f1'; available: (none); {note}"


def test_listing_marks_the_overridden_component(monkeypatch):
    host = PluginHost()
    host.register(make_plugin(register_corpora=[("korquad", corpus_factory, {})]), Provider("qaframe.corpora", "qaframe", "0.1.0"))
    host.register(make_plugin(register_corpora=[("korquad", other_factory, {"override": True})]), "replacement")
    statuses = {r["provider"]: r["status"] for r in host.listing() if r["name"] == "korquad"}
    assert statuses == {"qaframe.corpora": "overridden by replacement", "replacement": "ok"}
    monkeypatch.setattr(plugin_module, "get_host", lambda: host)
    table = CliRunner().invoke(cli, ["plugins"]).output
    assert "overridden by replacement" in table
    rows = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    assert {r["provider"]: r["status"] for r in rows} == statuses


def test_two_overrides_advise_disabling_one():
    host = PluginHost()
    host.register(make_plugin(register_corpora=[("x", corpus_factory, {"override": True})]), Provider("one", "dist-one", "1"))
    host.register(make_plugin(register_corpora=[("x", other_factory, {"override": True})]), Provider("two", "dist-two", "2"))
    with pytest.raises(UserError) as info:
        host.create("corpus", "x", None)
    assert str(info.value) == (
        "corpus 'x' is overridden (override=True) by more than one plugin: 'one' (dist-one 1) and 'two' (dist-two 2); "
        "keep one: disable the others with QAFRAME_DISABLE_PLUGINS (plugin or distribution names) or uninstall them"
    )
