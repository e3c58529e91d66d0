"""`qaframe plugins`: what is installed, by kind, with providers, versions and broken plugins."""

from __future__ import annotations

import json

import click

from qaframe import plugins as plugin_module
from qaframe.plugins import KINDS


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def plugins(as_json: bool) -> None:
    """List the registered corpora, featurizers, models, heads, optimizers, schedulers, metrics and refiners."""
    rows = plugin_module.get_host().listing()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    headers = ("name", "provider", "distribution", "status", "description")
    for kind in [*KINDS, "plugin"]:
        section = [r for r in rows if r["kind"] == kind]
        if not section:
            continue
        title = "broken plugins" if kind == "plugin" else KINDS[kind]
        table = [(r["name"], r["provider"], f"{r['distribution']} {r['version']}", r["status"], r["description"]) for r in section]
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
        click.echo(click.style(title, bold=True))
        click.echo("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[-1])
        for row in table:
            click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        click.echo()
