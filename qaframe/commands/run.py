"""`qaframe run`: train on a corpus, evaluate the best checkpoint on dev, and export the model.

Its options are generated from qaframe.config.RunConfig, so every field there is a flag here
(`max_seq_length` -> `--max-seq-length`, booleans as `--flag/--no-flag`). Flags given on the
command line override the values of `--config FILE`. `--print-config` checks the options as the
run does before it reads data (a hub model's files, which need the network, are left to the
run, and so is an earlier run in the output folder, which it does not touch) and prints them as
the run writes them to config.yaml.
"""

from __future__ import annotations

import click

from qaframe.cli import NonEmptyPath, run_option
from qaframe.config import RunConfig


def config_options(command):
    """Decorate `command` with one click option per RunConfig field (default None: 'not given')."""
    for field in reversed(RunConfig.options()):
        command = run_option(field)(command)
    return command


@click.command()
@click.option("--config", "config_file", type=NonEmptyPath(dir_okay=False),
              help="YAML file of options (option: value); flags given here override it. Relative paths in it are read "
                   "from the current folder, as on the command line.")
@click.option("--print-config", is_flag=True,
              help="Check the options as the run does before reading data (a hub model's files, which need the network, "
                   "and an earlier run in the output folder are left to the run), print them as the run writes "
                   "config.yaml, and exit without training.")
@config_options
def run(config_file: str | None, print_config: bool, **values) -> None:
    """Train a QA model, evaluate its best checkpoint on dev, and write config, checkpoints, model/ and metrics.

    With no options this is the offline quickstart: the built-in synthetic Korean corpus and a
    tiny model with the KcBERT vocabulary, trained from scratch on CPU in about a minute.
    """
    given = {name: value for name, value in values.items() if value is not None}
    config = RunConfig.from_sources(config_file, given)
    if print_config:
        from qaframe.runner import prepare

        click.echo(prepare(config, fetch=False, training=False).config_yaml, nl=False)
        return
    from qaframe.runner import run as run_training
    from qaframe.runner import summary

    result = run_training(config)
    if result.is_global_zero:
        click.echo(summary(result.metrics, result.output_dir, ("metrics.json", "predictions.json", "model/")))
