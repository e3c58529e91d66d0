"""`qaframe predict`: answer one question (--question/--context) or many (--input FILE.jsonl) with a saved model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qaframe.cli import NonEmptyPath, check_device
from qaframe.errors import ContextWithoutTokens, UserError

CHUNK = 256  # questions featurized and answered together when reading --input


def read_questions(path: Path) -> list[dict]:
    """The records of a JSON-lines file of {"id"?, "question", "context"} objects as {"id", "question", "context", "line"}
    (the id, a string or an integer, as a string: the line number when absent or null); UserError naming file and line."""
    from qaframe.io import parse_json, read_text
    from qaframe.text import unusable_text

    records = []
    lines = read_text(path).split("\n")  # not splitlines(): JSON strings may hold U+2028 and the like
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = parse_json(line, path, 'each line must be one JSON object {"id"?, "question", "context"}, a long id written as a string', line=number)
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object with question and context, got {type(record).__name__}")
        for key in ("question", "context"):
            if unusable_text(record.get(key)):
                raise UserError(f"{path}:{number}: '{key}' is {unusable_text(record.get(key))}")
        given_id = record.get("id")
        if given_id is not None and type(given_id) not in (str, int):  # not bool, an int to Python
            shown = {dict: "an object", list: "an array"}.get(type(given_id), json.dumps(given_id))
            raise UserError(f"{path}:{number}: 'id' must be a string or an integer, got {shown}")
        record_id = str(number if given_id is None else given_id)
        if unusable_text(record_id):
            raise UserError(f"{path}:{number}: 'id' is {unusable_text(record_id)}")
        records.append({"id": record_id, "question": record["question"], "context": record["context"], "line": number})
    return records


@click.command()
@click.option("--model", "model_dir", required=True, type=NonEmptyPath(file_okay=False),
              help="Model folder written by `qaframe run` (<output-dir>/model) or a Hugging Face QA folder.")
@click.option("--question", help="The question to answer (with --context).")
@click.option("--context", help="The passage to find the answer in (with --question).")
@click.option("--input", "input_file", type=NonEmptyPath(dir_okay=False),
              help='JSON-lines file of questions, one {"id"?, "question", "context"} object per line.')
@click.option("--output", "output_file", type=NonEmptyPath(dir_okay=False),
              help="With --input: write the answers as JSON lines here instead of standard output.")
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(min=1), help="Answers per question, best first (at most the model's n-best size, 20 by default).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (answers with score, start and end) instead of text; --input always writes JSON lines.")
@click.option("--device", default="cpu", show_default=True, help="Torch device to run on, e.g. cpu or cuda:0.")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model or tokenizer that runs code from its folder.")
def predict(model_dir, question, context, input_file, output_file, top_k, as_json, device, trust_remote_code) -> None:
    """Answer questions about passages with a saved model; scores are probabilities among the n-best spans."""
    if input_file is None and (question is None or context is None):
        raise UserError("give --question and --context, or --input FILE.jsonl")
    if input_file is not None and (question is not None or context is not None):
        raise UserError("give either --question/--context or --input, not both")
    if output_file is not None and input_file is None:
        raise UserError("--output needs --input; a single answer is printed")
    from qaframe import io
    from qaframe.text import unusable_text

    for name, value in (("--question", question), ("--context", context)):
        if value is not None and unusable_text(value):
            raise UserError(f"{name} is {unusable_text(value)}")
    records = read_questions(input_file) if input_file else None
    check_device(device)
    if output_file is not None:
        if output_file.exists() and output_file.samefile(input_file):
            raise UserError(f"--output {output_file} is the --input file, which writing the answers would replace; give another file")
        if not io.written_in_place(output_file):  # a file is replaced beside the file a symbolic link names
            io.check_writable_folder(output_file.resolve().parent, f"--output {output_file}")

    from qaframe.predictor import Predictor

    predictor = Predictor.load(model_dir, device=device, trust_remote_code=trust_remote_code)
    if records is None:
        try:
            answers = predictor.answer([(question, context)], top_k=top_k)[0]
        except ContextWithoutTokens as error:
            raise UserError(f"--context {error.reason}") from None
        if as_json:
            click.echo(json.dumps(answers, ensure_ascii=False))
        else:
            for answer in answers:
                click.echo(f"{answer['text']}\t{answer['score']:.3f}")
        return
    lines = []
    for first in range(0, len(records), CHUNK):
        chunk = records[first : first + CHUNK]
        try:
            answered = predictor.answer([(r["question"], r["context"]) for r in chunk], top_k=top_k)
        except ContextWithoutTokens as error:
            raise UserError(f"{input_file}:{chunk[error.index]['line']}: 'context' {error.reason}; no answers were written "
                            "(they are written together at the end): fix or remove that line and run again") from None
        lines += [json.dumps({"id": r["id"], "answers": a}, ensure_ascii=False) for r, a in zip(chunk, answered)]
    text = "".join(line + "\n" for line in lines)
    if output_file is not None:
        io.write_text(output_file, text)
        click.echo(f"{len(lines)} answers written to {output_file}", err=True)
    else:
        click.echo(text, nl=False)
