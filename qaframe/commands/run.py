"""`qaframe run`: train on a corpus, evaluate the best checkpoint on dev, and export the model.

Its options are generated from qaframe.config.RunConfig, so every field there is a flag here
(`max_seq_length` -> `--max-seq-length`, booleans as `--flag/--no-flag`). Flags given on the
command line override the values of `--config FILE`.
"""

from __future__ import annotations

import click

from qaframe.config import RunConfig, flag

CLICK_TYPES = {"int": click.INT, "float": click.FLOAT, "path": click.Path(path_type=str)}  # count: text, so 1 and 1.0 differ


def config_options(command):
    """Decorate `command` with one click option per RunConfig field (default None: 'not given')."""
    for field in reversed(RunConfig.options()):
        meta = field.metadata
        default = field.default
        shown = "" if default is None else f" [default: {default}]"
        help_text = meta["help"] + shown
        if meta["kind"] == "bool":
            name = flag(field.name)[2:]
            decorator = click.option(f"--{name}/--no-{name}", field.name, default=None, help=help_text)
        else:
            kind = click.Choice(meta["choices"]) if meta["choices"] else CLICK_TYPES.get(meta["kind"], click.STRING)
            decorator = click.option(flag(field.name), field.name, type=kind, default=None, help=help_text)
        command = decorator(command)
    return command


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of options; flags given here override it.")
@click.option("--print-config", is_flag=True, help="Print the resolved options as YAML and exit without training.")
@config_options
def run(config_file: str | None, print_config: bool, **values) -> None:
    """Train a QA model, evaluate its best checkpoint on dev, and write config, checkpoints, model/ and metrics.

    With no options this is the offline quickstart: the built-in synthetic Korean corpus and a
    tiny model with the KcBERT vocabulary, trained from scratch on CPU in about a minute.
    """
    given = {name: value for name, value in values.items() if value is not None}
    config = RunConfig.from_sources(config_file, given)
    if print_config:
        from qaframe.models import resolve_model

        config = config.with_model_defaults(resolve_model(config.model).random_init)
        click.echo(config.to_yaml(), nl=False)
        return
    from qaframe.runner import run as run_training
    from qaframe.runner import summary

    result = run_training(config)
    if result.is_global_zero:
        click.echo(summary(result.metrics, result.output_dir))
