"""qaframe corpus plugin `klue-mrc`: KLUE-MRC in the flat Hugging Face record layout, as JSON lines or a JSON array.

A record is `{"guid", "title", "context", "question", "answers": {"answer_start": [...], "text": [...]},
"is_impossible"}`; other keys (`news_category`, `source`, `question_type`, ...) are ignored.
Records go through qaframe's own validating loader (`qaframe_plugins.corpora.RecordLoader`),
so an `answer_start` that misses its text is repaired, an unusable record is skipped with its
reason, and `--strict` turns both into errors, exactly as for the built-in corpora. An
unanswerable question (`is_impossible: true`) becomes an example without answers: the hub
puts its plausible answers in `answers`, and they are not gold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.io import parse_json, read_text
from qaframe.types import CorpusOptions, CorpusSplit, no_such_split
from qaframe_plugins.corpora import RecordLoader

SAMPLE_FOLDER = Path(__file__).parent / "data"
FILE_STEMS = {"train": "train", "dev": "validation"}  # qaframe split -> file name stem (the hub's split names)
SUFFIXES = (".jsonl", ".json")
EXPORT_HINT = "export KLUE-MRC as the qaframe-klue-mrc README shows"


def read_records(path: Path) -> Iterator[tuple[Any, str]]:
    """(record, position) for every record of a JSON array or JSON lines file; UserError with file and line when malformed."""
    text = read_text(path, f"{EXPORT_HINT}, or pass an existing --train-file/--dev-file")
    if text.lstrip().startswith("["):
        records = parse_json(text, path, "fix the JSON array or export the file again")
        yield from ((record, f"item {number}") for number, record in enumerate(records))
        return
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            record = parse_json(line, path, "fix the line (one JSON record per line) or export the file again", line=number)
        except UserError:
            if is_one_object(path, text):
                raise UserError(nested_layout(path)) from None
            raise
        if number == 1 and isinstance(record, dict) and "data" in record and "guid" not in record:
            raise UserError(nested_layout(path))
        yield record, f"line {number}"


def nested_layout(path: Path) -> str:
    """The error for a file in the nested SQuAD-style layout (one object with 'data'), which klue-mrc does not read."""
    return (
        f"{path}: one JSON object, not JSON lines or a JSON array of records; klue-mrc reads the flat Hugging Face "
        f"layout (the original nested 'data'/'paragraphs' release is not it): {EXPORT_HINT}"
    )


def is_one_object(path: Path, text: str) -> bool:
    """Whether a file's whole text is one JSON object (spread over several lines, so no line of it parses alone)."""
    try:
        return isinstance(parse_json(text, path, EXPORT_HINT), dict)
    except UserError:
        return False


def add_record(loader: RecordLoader, record: Any, where: str) -> None:
    """Turn one flat KLUE-MRC record into qaframe's question record and let the loader validate it."""
    if not isinstance(record, dict):
        return loader.skip(where, f"expected an object, got {type(record).__name__}")
    guid = record.get("guid")
    if not isinstance(guid, str) or not guid.strip():
        return loader.skip(where, "missing or non-string 'guid'")
    impossible = record.get("is_impossible", False)
    answers = None
    if impossible is not True:  # the answers of an unanswerable question are plausible spans, not gold
        raw = record.get("answers")
        starts = raw.get("answer_start") if isinstance(raw, dict) else None
        texts = raw.get("text") if isinstance(raw, dict) else None
        if not isinstance(starts, list) or not isinstance(texts, list) or len(starts) != len(texts):
            return loader.skip(guid, "'answers' must be {\"answer_start\": [...], \"text\": [...]} with lists of equal length")
        answers = [{"text": text, "answer_start": start} for text, start in zip(texts, starts)]
    question = {"id": guid, "question": record.get("question"), "answers": answers, "is_impossible": impossible}
    return loader.add(question, where, record.get("title"), record.get("context"))


def find_split_file(folder: Path, split: str) -> Path:
    """`<stem>.jsonl` or `<stem>.json` of a split in `folder`; UserError when neither or both exist."""
    stem = FILE_STEMS[split]
    found = [folder / f"{stem}{suffix}" for suffix in SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise UserError(f"{folder} holds both {found[0].name} and {found[1].name} for the '{split}' split; keep one, or pass --{split}-file")
    if not found:
        raise UserError(f"{folder}: no {stem}.jsonl or {stem}.json for the '{split}' split; {EXPORT_HINT}, or pass --{split}-file")
    return found[0]


class KlueMrcCorpus:
    """KLUE-MRC (flat Hugging Face layout) from --data-dir or --train-file/--dev-file; a small original sample without them."""

    metric = "korquad"
    refiner = "korean-particles"

    def __init__(self, options: CorpusOptions):
        given = {split: Path(path) for split, path in (("train", options.train_file), ("dev", options.dev_file)) if path}
        if options.data_dir is None and given:
            self.folder, self.given = None, given  # only the files named
        else:
            self.folder, self.given = Path(options.data_dir or SAMPLE_FOLDER), given
        self.strict = options.strict

    def splits(self) -> tuple[str, ...]:
        """("train", "dev"), or only the splits whose files were named when no --data-dir is given."""
        return tuple(FILE_STEMS) if self.folder is not None else tuple(self.given)

    def path(self, split: str) -> Path:
        """The file that holds `split`."""
        if split not in self.splits():
            raise UserError(f"{no_such_split('klue-mrc', split, self.splits())}; pass --{split}-file or --data-dir")
        return self.given.get(split) or find_split_file(self.folder, split)

    def load(self, split: str) -> CorpusSplit:
        """Read and validate one split's records."""
        path = self.path(split)
        loader = RecordLoader(str(path), strict=self.strict)
        for record, where in read_records(path):
            add_record(loader, record, where)
        return loader.result([path])


@hookimpl
def register_corpora(register):
    """Register the klue-mrc corpus."""
    register("klue-mrc", KlueMrcCorpus)
