"""Real installs: a tiny plugin distribution is pip-installed, listed by `qaframe plugins --json`, then removed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

QAFRAME = str(Path(sys.executable).with_name("qaframe"))


def write_distribution(root: Path, dist: str, module: str, body: str) -> Path:
    folder = root / dist
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(textwrap.dedent(body))
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            [project.entry-points.qaframe]
            {module} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return folder


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def plugins_json() -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "QAFRAME_DISABLE_PLUGINS"}
    out = subprocess.run([QAFRAME, "plugins", "--json"], capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out)


@pytest.fixture
def installed(tmp_path):
    """Install distributions built from source folders; uninstall them afterwards."""
    names: list[str] = []

    def install(folder: Path) -> None:
        pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(folder))
        names.append(folder.name)

    yield install
    if names:
        pip("uninstall", "-y", *names)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_installed_plugin_is_listed_then_gone(tmp_path, installed):
    folder = write_distribution(
        tmp_path,
        "qaframe-installtest-good",
        "qaframe_installtest_good",
        '''
        """A corpus plugin installed by qaframe's own test suite."""
        from qaframe import hookimpl

        def make(options):
            """Installed-test corpus."""

        @hookimpl
        def register_corpora(register):
            register("installtest-corpus", make)
        ''',
    )
    installed(folder)
    rows = [r for r in plugins_json() if r["name"] == "installtest-corpus"]
    assert rows == [
        {
            "kind": "corpus",
            "name": "installtest-corpus",
            "provider": "qaframe_installtest_good",
            "distribution": "qaframe-installtest-good",
            "version": "1.2.3",
            "status": "ok",
            "description": "Installed-test corpus.",
            "override": False,
        }
    ]
    pip("uninstall", "-y", "qaframe-installtest-good")
    assert not [r for r in plugins_json() if r["name"] == "installtest-corpus"]


def test_installed_plugin_broken_on_import(tmp_path, installed):
    folder = write_distribution(
        tmp_path,
        "qaframe-installtest-broken",
        "qaframe_installtest_broken",
        '''
        """A plugin whose import fails."""
        import qaframe_dependency_that_is_not_installed
        ''',
    )
    installed(folder)
    rows = plugins_json()
    [broken] = [r for r in rows if r["distribution"] == "qaframe-installtest-broken"]
    assert broken["status"] == "broken"
    assert broken["description"] == "ModuleNotFoundError: No module named 'qaframe_dependency_that_is_not_installed'"
    assert any(r["status"] == "ok" and r["distribution"] == "qaframe" for r in rows)  # built-ins still work


def test_installed_plugin_without_hookimpl_is_broken_until_disabled(tmp_path, installed):
    folder = write_distribution(
        tmp_path,
        "qaframe-installtest-undecorated",
        "qaframe_installtest_undecorated",
        '''
        """A plugin whose hook lacks @hookimpl."""

        def register_corpora(register):
            register("undecorated-corpus", dict)
        ''',
    )
    installed(folder)
    [broken] = [r for r in plugins_json() if r["distribution"] == "qaframe-installtest-undecorated"]
    assert broken["status"] == "broken" and broken["description"].startswith("defines no @hookimpl-decorated hooks: register_corpora")
    env = {**os.environ, "QAFRAME_DISABLE_PLUGINS": "QAFRAME_installtest.Undecorated"}  # its distribution, however spelled
    done = subprocess.run([QAFRAME, "plugins", "--json"], capture_output=True, text=True, check=True, env=env)
    assert not [r for r in json.loads(done.stdout) if r["distribution"] == "qaframe-installtest-undecorated"]
    assert done.stderr == ""  # the name matched, so no warning


def test_qaframe_wheel_holds_every_module_and_data_file(tmp_path):
    # a non-editable install runs from the wheel alone: a subpackage missing from it breaks the CLI
    root = Path(__file__).resolve().parents[1]
    build = shutil.copytree(root, tmp_path / "src", ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", ".whl"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(build),
                           "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import zipfile

    names = set(zipfile.ZipFile(next((tmp_path / "dist").glob("qaframe-*.whl"))).namelist())
    expected = {f"qaframe/{p.relative_to(root / 'qaframe').as_posix()}" for p in (root / "qaframe").rglob("*.py")}
    expected |= {f"qaframe_plugins/{p.relative_to(root / 'plugins').as_posix()}" for p in (root / "plugins").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    expected |= {f"qaframe/{p.relative_to(root / 'qaframe').as_posix()}" for p in (root / "qaframe" / "static").iterdir()}
    assert not expected - names
