"""Real installs: a tiny plugin distribution is pip-installed, listed by `qaframe plugins --json`, then removed.

pip installs into a folder of the test's own (`--target`), which the `qaframe` processes get on
PYTHONPATH: the shared environment is never changed, so an interrupted test leaves nothing
installed for anyone. Deleting that folder's files is the uninstall (what `pip uninstall` does
to a distribution's files; pip refuses to uninstall outside its environment).
"""

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


def environment(site: Path, **variables: str) -> dict[str, str]:
    """The environment of a `qaframe` process that sees what was installed into `site`, plugins not disabled unless asked."""
    env = {k: v for k, v in os.environ.items() if k != "QAFRAME_DISABLE_PLUGINS"}
    return {**env, "PYTHONPATH": str(site), **variables}


def plugins_json(site: Path) -> list[dict]:
    out = subprocess.run([QAFRAME, "plugins", "--json"], capture_output=True, text=True, check=True, env=environment(site)).stdout
    return json.loads(out)


@pytest.fixture
def site(tmp_path) -> Path:
    """The folder distributions are installed into (pip --target), outside the shared environment."""
    return tmp_path / "site"


def install(folder: Path, site: Path) -> None:
    """pip-install the distribution built from source `folder` into `site`."""
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(folder)], check=True)


def test_installed_plugin_is_listed_then_gone(tmp_path, site):
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
    install(folder, site)
    assert (site / "qaframe_installtest_good-1.2.3.dist-info" / "entry_points.txt").is_file()  # into the test's folder, not the shared .venv
    rows = [r for r in plugins_json(site) if r["name"] == "installtest-corpus"]
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
    shutil.rmtree(site)  # uninstalled: its files are gone, the environment is otherwise the same
    assert not [r for r in plugins_json(site) if r["name"] == "installtest-corpus"]


def test_installed_plugin_broken_on_import(tmp_path, site):
    folder = write_distribution(
        tmp_path,
        "qaframe-installtest-broken",
        "qaframe_installtest_broken",
        '''
        """A plugin whose import fails."""
        import qaframe_dependency_that_is_not_installed
        ''',
    )
    install(folder, site)
    rows = plugins_json(site)
    [broken] = [r for r in rows if r["distribution"] == "qaframe-installtest-broken"]
    assert broken["status"] == "broken"
    assert broken["description"] == "ModuleNotFoundError: No module named 'qaframe_dependency_that_is_not_installed'"
    assert any(r["status"] == "ok" and r["distribution"] == "qaframe" for r in rows)  # built-ins still work


def test_installed_plugin_without_hookimpl_is_broken_until_disabled(tmp_path, site):
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
    install(folder, site)
    [broken] = [r for r in plugins_json(site) if r["distribution"] == "qaframe-installtest-undecorated"]
    assert broken["status"] == "broken" and broken["description"].startswith("defines no @hookimpl-decorated hooks: register_corpora")
    env = environment(site, QAFRAME_DISABLE_PLUGINS="QAFRAME_installtest.Undecorated")  # its distribution, however spelled
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
