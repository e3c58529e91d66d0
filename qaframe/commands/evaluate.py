"""`qaframe evaluate`: score a saved model on a corpus split and write predictions.json and metrics.json."""

from __future__ import annotations

import click

from qaframe.cli import NonEmptyPath, check_device, run_options


@click.command()
@click.option("--model", "model_dir", required=True, type=NonEmptyPath(file_okay=False),
              help="Model folder written by `qaframe run` (<output-dir>/model) or a Hugging Face QA folder.")
@click.option("--corpus", required=True, help="Corpus to evaluate on (see `qaframe plugins`).")
@click.option("--split", default="dev", show_default=True, help="Split of the corpus to score.")
@click.option("--output-dir", required=True, type=NonEmptyPath(file_okay=False),
              help="Where predictions.json, nbest_predictions.json and metrics.json go.")
@run_options("data_dir", "train_file", "dev_file", "strict")
@click.option("--refiner", help="Answer-boundary refiner, or `none`; default: the model's own (qaframe.json), else the corpus's.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Windows per forward pass.")
@click.option("--device", default="cpu", show_default=True, help="Torch device to run on, e.g. cpu or cuda:0.")
@click.option("--cache-dir", type=NonEmptyPath(file_okay=False),
              help="Feature cache folder; default $QAFRAME_CACHE_DIR, else $XDG_CACHE_HOME/qaframe, else ~/.cache/qaframe.")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model or tokenizer that runs code from its folder.")
def evaluate(model_dir, corpus, split, output_dir, data_dir, train_file, dev_file, strict, refiner, batch_size, device,
             cache_dir, trust_remote_code) -> None:
    """Evaluate a saved model on a corpus split with the corpus's official metric (EM and F1, 0-100)."""
    from qaframe.runner import evaluate_model, summary
    from qaframe.types import CorpusOptions

    check_device(device)
    metrics = evaluate_model(
        model_dir, corpus, output_dir, split=split, options=CorpusOptions(data_dir, train_file, dev_file, strict),
        refiner=refiner, batch_size=batch_size, device=device, cache_dir=cache_dir, trust_remote_code=trust_remote_code,
    )
    click.echo(summary(metrics, output_dir))
