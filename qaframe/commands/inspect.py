"""`qaframe inspect`: what a corpus looks like through a model's tokenizer and a run's featurizer (`--featurizer`).

Per split: examples, answers repaired and skipped while loading, windows per example, the
share of answers wholly inside at least one window, the label round trip (the labelled token
span decodes back through the offsets to exactly the gold text), token-length percentiles, and
the exact-match ceiling per answer-boundary refiner.

The ceiling is what a model that always picks the labelled token span would score: each
answer's gold token span (from its first window that holds it) goes through the refiner as
(start, end, last token's start) and counts when the text equals the gold answer exactly
(stricter than the metric, which also forgives punctuation and spaces). "none" is the label
round trip itself. Trainable refiners are fitted on the train split first (n/a without one).

The corpus, model, featurizer and window options are `qaframe run`'s, with its defaults and
checks, so the report describes the windows a run with the same flags trains on.
"""

from __future__ import annotations

import json

import click

from qaframe.cli import run_options
from qaframe.config import RunConfig

SHOWN_IDS = 5  # record ids the text report shows per list; --json holds them all


def percentiles(values: list[int]) -> dict[str, int]:
    """p50, p90, p99 and max of token lengths."""
    import numpy as np

    if not values:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": int(round(p50)), "p90": int(round(p90)), "p99": int(round(p99)), "max": int(max(values))}


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text, without special tokens, in one batched call (in NFC, as the featurizer reads text)."""
    import unicodedata

    if not texts:
        return []
    normalized = [unicodedata.normalize("NFC", text) for text in texts]
    encoded = tokenizer(normalized, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def label_statistics(examples, features) -> dict:
    """Windows per example, the share of answers inside a window and the share whose labels decode exactly."""
    import numpy as np

    windows = np.bincount(features.example_index, minlength=len(examples))
    answerable = [i for i, e in enumerate(examples) if e.answers and not e.is_impossible]
    inside, exact = np.zeros(len(examples), bool), np.ones(len(examples), bool)
    for w in range(len(features)):
        i = int(features.example_index[w])
        start, end = int(features.start_positions[w]), int(features.end_positions[w])
        offsets = features.offsets[features.row_splits[w] : features.row_splits[w + 1]]
        if offsets[start, 0] < 0:
            continue
        inside[i] = True
        exact[i] &= examples[i].context[offsets[start, 0] : offsets[end, 1]] == examples[i].answers[0].text
    round_trip = inside & exact
    missed = [examples[i].id for i in answerable if not round_trip[i]]

    def share(mask) -> float | None:
        return round(100.0 * float(mask[answerable].mean()), 2) if answerable else None

    return {
        "windows_per_example": {"mean": round(float(windows.mean()), 3) if len(examples) else 0.0, "max": int(windows.max(initial=0))},
        "answerable": len(answerable),
        "answer_in_window_pct": share(inside),
        "label_round_trip_pct": share(round_trip),
        "not_round_trip": len(missed),
        "not_round_trip_ids": missed,
    }


def gold_token_spans(features) -> dict[int, tuple[int, int, int]]:
    """Example index -> (start, end, last token's start) in characters of its labelled token span, first window holding it."""
    spans: dict[int, tuple[int, int, int]] = {}
    for w in range(len(features)):
        i = int(features.example_index[w])
        offsets = features.offsets[features.row_splits[w] : features.row_splits[w + 1]]
        start, end = offsets[int(features.start_positions[w])], offsets[int(features.end_positions[w])]
        if i not in spans and start[0] >= 0:
            spans[i] = (int(start[0]), int(end[1]), int(end[0]))
    return spans


def exact_match_ceilings(examples, features, refiners: dict) -> dict[str, float | None]:
    """Per refiner name: % of answerable examples whose refined gold token span is exactly the first gold answer.

    A refiner None means no refinement; False (not measurable) and a split without answers report None.
    """
    from qaframe.decoding import refine_span

    answerable = [i for i, e in enumerate(examples) if e.answers and not e.is_impossible]
    spans = gold_token_spans(features)
    ceilings: dict[str, float | None] = {}
    for name, refiner in refiners.items():
        if refiner is False or not answerable:
            ceilings[name] = None
            continue
        exact = 0
        for i in answerable:
            if i not in spans:
                continue
            start, end, last_token_start = spans[i]
            if refiner is not None:
                start, end = refine_span(refiner, examples[i].context, start, end, last_token_start)
            exact += examples[i].context[start:end] == examples[i].answers[0].text
        ceilings[name] = round(100.0 * exact / len(answerable), 2)
    return ceilings


def build_refiners(host, tokenizer, train_examples) -> dict:
    """No refiner ("none": None) and every registered refiner, trainable ones fitted on `train_examples`.

    False marks a refiner that cannot be measured: trainable without a train split, or a name two plugins claim.
    """
    from qaframe.types import TrainableRefiner

    registry = host.registry("refiner")
    refiners: dict = {"none": None}
    for name in registry.names():
        refiner = False if registry.conflict(name) else registry.create(name)
        if isinstance(refiner, TrainableRefiner):
            if train_examples is None:
                refiner = False
            else:
                refiner.fit(train_examples, tokenizer)
        refiners[name] = refiner
    return refiners


def inspect_split(split, featurizer, tokenizer, refiners: dict) -> dict:
    """Everything `inspect` reports about one loaded split."""
    examples = split.examples
    features = featurizer.featurize(examples, tokenizer)
    contexts = list(dict.fromkeys(e.context for e in examples))
    return {
        "examples": len(examples),
        "repaired": len(split.repaired),
        "repaired_ids": split.repaired,
        "skipped": len(split.skipped),
        "skipped_ids": [f"{record_id} ({reason})" for record_id, reason in split.skipped],
        "windows": len(features),
        **label_statistics(examples, features),
        "question_tokens": percentiles(token_lengths(tokenizer, [e.question.strip() for e in examples])),
        "context_tokens": percentiles(token_lengths(tokenizer, contexts)),
        "contexts": len(contexts),
        "exact_match_ceiling_pct": exact_match_ceilings(examples, features, refiners),
    }


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} %"


def _lengths(p: dict[str, int]) -> str:
    return f"p50 {p['p50']}, p90 {p['p90']}, p99 {p['p99']}, max {p['max']}"


def _ids(ids: list[str], separator: str) -> str:
    """': ' and the first SHOWN_IDS of `ids`, saying how many more `--json` lists; nothing for none."""
    if not ids:
        return ""
    more = f"{separator}... ({len(ids) - SHOWN_IDS} more; --json lists all)" if len(ids) > SHOWN_IDS else ""
    return ": " + separator.join(ids[:SHOWN_IDS]) + more


def render(report: dict) -> str:
    """The report as aligned plain text."""
    s = report["settings"]
    lines = [
        f"corpus {report['corpus']}, model {report['model']} ({report['model_source']}), featurizer {s['featurizer']}, "
        f"max_seq_length {s['max_seq_length']}, doc_stride {s['doc_stride']} (overlap), max_query_length {s['max_query_length']}"
    ]
    for name, r in report["splits"].items():
        rows = [
            ("examples", f"{r['examples']} ({r['answerable']} answerable, {r['contexts']} contexts)"),
            ("answers/records repaired", f"{r['repaired']}" + _ids(r["repaired_ids"], ", ")),
            ("answers/records skipped", f"{r['skipped']}" + _ids(r["skipped_ids"], "; ")),
            ("windows", f"{r['windows']}; per example mean {r['windows_per_example']['mean']:.2f}, max {r['windows_per_example']['max']}"),
            ("answer inside a window", _percent(r["answer_in_window_pct"])),
            ("label round trip", _percent(r["label_round_trip_pct"]) + (f" (not exact{_ids(r['not_round_trip_ids'], ', ')})" if r["not_round_trip_ids"] else "")),
            ("question tokens", _lengths(r["question_tokens"])),
            ("context tokens", _lengths(r["context_tokens"])),
            ("exact-match ceiling", ", ".join(f"{k} {_percent(v)}" for k, v in r["exact_match_ceiling_pct"].items())),
        ]
        lines.append(name)
        lines.extend(f"  {label:<25}{value}" for label, value in rows)
    return "\n".join(lines)


@click.command()
@run_options("corpus", "model", "data_dir", "train_file", "dev_file", "featurizer", "max_seq_length", "doc_stride",
             "max_query_length", "strict")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect(as_json: bool, **options) -> None:
    """Show how a corpus loads and tokenizes: repairs, windows, label round trip, token lengths, EM ceilings."""
    from qaframe import plugins
    from qaframe.features import build_featurizer
    from qaframe.models import check_max_seq_length, load_config, load_tokenizer, resolve_model
    from qaframe.types import CorpusOptions, FeaturizerSettings

    config = RunConfig.from_sources(overrides=options)  # run's options, checked as the run checks them
    spec = resolve_model(config.model)
    check_max_seq_length(spec, load_config(spec), config.max_seq_length)
    settings = FeaturizerSettings(config.max_seq_length, config.doc_stride, config.max_query_length)
    featurizer = build_featurizer(config.featurizer, settings)
    corpus_options = CorpusOptions(config.data_dir, config.train_file, config.dev_file, config.strict)
    corpus = plugins.get_host().create("corpus", config.corpus, corpus_options)
    tokenizer = load_tokenizer(spec)
    splits = {name: corpus.load(name) for name in corpus.splits()}
    refiners = build_refiners(plugins.get_host(), tokenizer, splits["train"].examples if "train" in splits else None)
    report = {
        "corpus": config.corpus,
        "model": config.model,
        "model_source": spec.source,
        "settings": {"featurizer": config.featurizer, "max_seq_length": config.max_seq_length, "doc_stride": config.doc_stride,
                     "max_query_length": config.max_query_length},
        "splits": {name: inspect_split(split, featurizer, tokenizer, refiners) for name, split in splits.items()},
    }
    click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else render(report))
