"""Built-in corpora: `korquad` (KorQuAD 1.0, downloaded on first use), `squad-json`, `sample` and `synthetic`.

Every corpus reads SQuAD-format records through one validating loader. It brings every context,
question and answer to Unicode NFC, trims whitespace from an answer's ends and moves an
`answer_start` that misses its text to the nearest occurrence of the text (repairs); a record that
cannot be used is skipped with its reason; both are counted in the split (`repaired`, `skipped`;
`qaframe run`, `evaluate` and `inspect` report them) and turned into a UserError by `strict`. An id
given to two different records, and a file without one answerable question, are UserErrors.
An answer at offset 0 is a valid answer. docs/data-validation.md lists every case.
"""

from __future__ import annotations

import http.client
import logging
import os
import unicodedata
import urllib.request
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.io import atomic_path, cache_root, check_writable_folder, parse_json, read_text
from qaframe.text import nfc_position, to_nfc, unusable_text
from qaframe.types import Answer, CorpusOptions, CorpusSplit, QAExample, no_such_split

log = logging.getLogger("qaframe.corpora")

KORQUAD_URL = "https://korquad.github.io/dataset/"
KORQUAD_FILES = {"train": "KorQuAD_v1.0_train.json", "dev": "KorQuAD_v1.0_dev.json"}
SAMPLE_FOLDER = Path(__file__).parent / "data" / "sample"

# -- validation -------------------------------------------------------------------
class RecordLoader:
    """Turns SQuAD-style question records into QAExamples, repairing or skipping what is wrong."""

    def __init__(self, source: str, *, strict: bool = False):
        self.source = source
        self.strict = strict
        self.examples: list[QAExample] = []
        self.repaired: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self._seen: dict[str, tuple[str, tuple]] = {}  # id -> (position, content) of the first record with it

    def skip(self, record_id: str, reason: str) -> None:
        """Record a skipped record or answer, or stop in strict mode."""
        if self.strict:
            raise UserError(f"{self.source}: record {record_id}: {reason} (strict loading; fix the record or drop --strict)")
        self.skipped.append((record_id, reason))

    def repair(self, record_id: str, reason: str) -> None:
        """Record a repaired answer or record (one entry per repair), or stop in strict mode."""
        if self.strict:
            raise UserError(f"{self.source}: record {record_id}: {reason} (strict loading; fix the record or drop --strict)")
        self.repaired.append(record_id)

    def add(self, record: Any, where: str, title: Any, context: Any) -> None:
        """Validate one question record (`id`, `question`, `answers`, optional `is_impossible`) about `context`."""
        if not isinstance(record, dict):
            return self.skip(where, f"expected an object, got {type(record).__name__}")
        record_id = record.get("id")
        if isinstance(record_id, int) and not isinstance(record_id, bool):  # labelling tools number their questions
            record_id = str(record_id)
        if unusable_text(record_id):
            return self.skip(where, f"'id' is {unusable_text(record_id)}")
        content = (context, record.get("question"), record.get("answers"), record.get("is_impossible", False))
        if record_id in self._seen:
            first_where, first_content = self._seen[record_id]
            if content != first_content:
                raise UserError(f"{self.source}: id '{record_id}' names two different records ({first_where} and {where}); "
                                "ids must be unique: give one of them another id")
            return self.skip(record_id, "duplicate id")  # an exact repeat: nothing is lost
        self._seen[record_id] = (where, content)
        if unusable_text(context):
            return self.skip(record_id, f"context is {unusable_text(context)}")
        question = record.get("question")
        if unusable_text(question):
            return self.skip(record_id, f"'question' is {unusable_text(question)}")
        impossible = record.get("is_impossible", False)
        if not isinstance(impossible, bool):
            return self.skip(record_id, "'is_impossible' is not true or false")
        answers: tuple[Answer, ...] = ()
        if impossible and record.get("answers"):
            return self.skip(record_id, "'is_impossible' is true but 'answers' is not empty (contradictory)")
        nfc = to_nfc(context)  # the context in NFC, and where its characters were in the text as written
        if not impossible:  # SQuAD 2.0 unanswerables carry plausible_answers, which are not gold
            answers = self._answers(record_id, record.get("answers"), context, nfc)
            if not answers:
                return None
        texts = [question, *(answer.get("text") for answer in record.get("answers") or () if isinstance(answer, dict))]
        if nfc[1] is not None or not all(unicodedata.is_normalized("NFC", text) for text in texts if isinstance(text, str)):
            self.repair(record_id, "context, question or answer text not in Unicode NFC (decomposed Hangul?); brought to NFC")
        title = title if isinstance(title, str) else ""
        self.examples.append(QAExample(record_id, title, to_nfc(question)[0], nfc[0], answers, impossible))
        return None

    def _answers(self, record_id: str, raw: Any, original: str, nfc: tuple) -> tuple[Answer, ...]:
        if not isinstance(raw, list) or not raw:
            self.skip(record_id, "missing or empty 'answers' list")
            return ()
        kept, problems = [], []
        for number, answer in enumerate(raw, 1):
            result = self._answer(record_id, number, answer, original, nfc)
            (kept if isinstance(result, Answer) else problems).append(result)
        if not kept:
            self.skip(record_id, f"{problems[0]} (example dropped: no usable answer)")
        else:
            for problem in problems:
                self.skip(record_id, f"{problem} (answer dropped)")
        return tuple(kept)

    def _answer(self, record_id: str, number: int, answer: Any, original: str, nfc: tuple) -> Answer | str:
        """The answer in the NFC context (`nfc`: `to_nfc` of the context as written, `original`) with whitespace trimmed
        from its ends, or why it is unusable."""
        if not isinstance(answer, dict):
            return f"answer {number} is not an object"
        text, written = answer.get("text"), answer.get("answer_start")
        if unusable_text(text):
            return f"answer {number}: 'text' is {unusable_text(text)}"
        if isinstance(written, bool) or not isinstance(written, int):
            return f"answer {number}: 'answer_start' is not an integer"
        if written < 0 or written >= len(original):
            return f"answer {number}: answer_start {written} is outside the context (length {len(original)})"
        context, spans = nfc
        text, start = to_nfc(text)[0], written if spans is None else nfc_position(spans, written)
        done = []
        if text.strip() != text:  # no score changes: the official scorers split answers on whitespace
            done.append(f"whitespace trimmed from the ends of {text[:40]!r}")
            text, start = text.strip(), start + len(text) - len(text.lstrip())
        if not context.startswith(text, start):
            nearest = nearest_occurrence(context, text, start)
            if nearest is None:
                return f"answer {number}: text {text[:40]!r} does not occur in the context"
            done.append(f"answer_start {written} does not point at {text[:40]!r}; nearest occurrence {nearest}")
            start = nearest
        if done:
            self.repair(record_id, f"answer {number}: {'; '.join(done)}")
        return Answer(text, start)

    def result(self, files: Iterable[Path] = ()) -> CorpusSplit:
        """The loaded split, with the ids repaired and skipped; UserError when no question is answerable."""
        if not any(example.answers for example in self.examples):
            counts = [f"{len(self.examples)} unanswerable (is_impossible)"] if self.examples else []
            if self.skipped:
                counts.append(f"{len(self.skipped)} skipped, first: {self.skipped[0][0]} ({self.skipped[0][1]})")
            found = f"all {', '.join(counts)}" if counts else "it holds none"
            raise UserError(f"{self.source}: no usable question records ({found}); training and scoring need answered "
                            "questions: check that it is a SQuAD-format file with answers")
        return CorpusSplit(self.examples, tuple(files), self.repaired, self.skipped)


def nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """The start of the occurrence of `text` in `context` closest to `start`, or None."""
    best = None
    position = context.find(text)
    while position != -1:
        if best is None or abs(position - start) < abs(best - start):
            best = position
        position = context.find(text, position + 1)
    return best


# -- SQuAD-format files -----------------------------------------------------------------
def read_json(path: Path) -> Any:
    """Parse a JSON file; UserError with file, line and column when it is malformed."""
    return parse_json(read_text(path), path, "fix the file or download it again")


def squad_records(data: Any, source: str) -> Iterator[tuple[Any, str, Any, Any]]:
    """(question record, position, title, context) for every question of a SQuAD v1.1/v2.0 document."""
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, str) and version.startswith("KorQuAD_2"):
        raise UserError(
            f"{source} is a KorQuAD 2.0 file (version {version}, HTML contexts); qaframe reads KorQuAD 1.0 and SQuAD-format "
            f"files: use {KORQUAD_FILES['train']} / {KORQUAD_FILES['dev']} or convert the file to SQuAD format"
        )
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        found = type(data).__name__ if not isinstance(data, dict) else f"an object with keys {sorted(data)[:5]}"
        raise UserError(f"{source}: expected a SQuAD-format JSON object with a 'data' list, found {found}")
    for a, article in enumerate(data["data"]):
        if isinstance(article, dict) and "qas" in article and "paragraphs" not in article:
            raise UserError(f"{source}: article {a} has 'qas' but no 'paragraphs' (KorQuAD 2.0 layout?); expected SQuAD format")
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            yield None, f"article {a}", None, None
            continue
        for p, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                yield None, f"article {a} paragraph {p}", None, None
                continue
            context = paragraph.get("context")
            for q, record in enumerate(qas):
                yield record, f"article {a} paragraph {p} question {q}", article.get("title"), context


def load_squad_file(path: Path, *, strict: bool = False) -> CorpusSplit:
    """Load and validate one SQuAD v1.1/v2.0 (or KorQuAD 1.0) file."""
    path = Path(path)
    loader = RecordLoader(str(path), strict=strict)
    for record, where, title, context in squad_records(read_json(path), str(path)):
        if record is None:
            loader.skip(where, "missing 'paragraphs' or 'qas' list")
        else:
            loader.add(record, where, title, context)
    return loader.result([path])


# -- KorQuAD download ---------------------------------------------------------------------
def default_data_dir() -> Path:
    """Where korquad looks without --data-dir: korquad/ in qaframe's cache folder (`qaframe.io.cache_root`)."""
    return cache_root() / "korquad"


def download(url: str, target: Path) -> None:
    """Fetch `url` into `target` atomically with a progress bar (raises OSError when the network fails)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as temporary:
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with open(temporary, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
            while block := response.read(1 << 16):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if total is not None and received != total:
            raise OSError(f"download of {url} stopped after {received} of {total} bytes")


def ensure_korquad(data_dir: Path, split: str, from_folder: Collection[str]) -> Path:
    """The KorQuAD 1.0 file of `split` in `data_dir`, downloaded first when it is missing.

    `from_folder`: the splits read from `data_dir` (not given by --train-file/--dev-file); a
    failed download names those of their files that are missing.
    """
    target = data_dir / KORQUAD_FILES[split]
    if os.path.isfile(target):  # False, not PermissionError, inside a folder this user cannot look into
        return target
    if os.path.isdir(target):
        raise UserError(
            f"{target} is a folder, not the KorQuAD file; remove it so that qaframe can download the file there, "
            "or pass another --data-dir"
        )
    check_writable_folder(data_dir, f"KorQuAD data folder {data_dir} (--data-dir)")
    url = KORQUAD_URL + KORQUAD_FILES[split]
    log.warning("%s not found in %s; downloading %s", target.name, data_dir, url)
    made = [folder for folder in (data_dir, *data_dir.parents) if not folder.exists()]  # the deepest first
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        download(url, target)
        read_json(target)
    except (OSError, http.client.HTTPException, UserError) as error:  # URLError, timeouts: OSError; a cut-off response: HTTPException
        if not target.is_dir():  # a folder made there meanwhile is not the download's to remove
            target.unlink(missing_ok=True)
        for folder in made:  # folders made for this download are not left behind empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        reason = getattr(error, "reason", None) or error
        missing = [other for other, name in KORQUAD_FILES.items()
                   if other == split or (other in from_folder and not (data_dir / name).is_file())]
        raise UserError(
            f"cannot download KorQuAD 1.0 ({reason}); download {' and '.join(KORQUAD_FILES[other] for other in missing)} "
            f"from {KORQUAD_URL} and put {'them' if len(missing) > 1 else 'it'} in {data_dir} (or pass --data-dir), "
            f"or read your own copy with {' and '.join(f'--{other}-file' for other in missing)}"
        ) from error
    return target


# -- corpora ------------------------------------------------------------------------------
def refuse_files(corpus: str, options: CorpusOptions) -> None:
    """Stop a corpus that reads no files from silently ignoring --train-file or --dev-file."""
    for flag, path in (("--train-file", options.train_file), ("--dev-file", options.dev_file)):
        if path:
            raise UserError(f"{flag} {path}: corpus {corpus} reads no files; use --corpus squad-json or korquad to read {flag}")


class FileCorpus:
    """A corpus made of one SQuAD-format file per split."""

    name: str  # the corpus's registered name, for messages
    metric = "korquad"
    refiner = "korean-particles"

    def __init__(self, files: dict[str, Path], strict: bool):
        self.files = files
        self.strict = strict

    def splits(self) -> tuple[str, ...]:
        """The splits that have a file."""
        return tuple(self.files)

    def path(self, split: str) -> Path:
        """The file that holds `split`."""
        if split not in self.files:
            raise no_such_split(self.name, split, self.splits())
        return self.files[split]

    def load(self, split: str) -> CorpusSplit:
        """Read and validate one split's file."""
        return load_squad_file(self.path(split), strict=self.strict)


class KorQuADCorpus(FileCorpus):
    """KorQuAD 1.0 from --data-dir (downloaded from korquad.github.io when missing); scored with the KorQuAD metric."""

    name = "korquad"

    def __init__(self, options: CorpusOptions):
        self.data_dir = Path(options.data_dir) if options.data_dir else default_data_dir()
        given = {"train": options.train_file, "dev": options.dev_file}
        super().__init__({split: Path(given[split] or self.data_dir / name) for split, name in KORQUAD_FILES.items()}, options.strict)
        self.given = {split for split, path in given.items() if path}

    def path(self, split: str) -> Path:
        """The split's file, downloaded into the data folder first when it is missing."""
        path = super().path(split)
        return path if split in self.given else ensure_korquad(self.data_dir, split, set(KORQUAD_FILES) - self.given)


class SquadJsonCorpus(FileCorpus):
    """Any SQuAD v1.1 / v2.0 format file given by --train-file / --dev-file; scored with the SQuAD metric."""

    name = "squad-json"
    metric = "squad"
    refiner = "none"

    def __init__(self, options: CorpusOptions):
        files = {split: Path(path) for split, path in (("train", options.train_file), ("dev", options.dev_file)) if path}
        if not files:
            raise UserError("corpus squad-json needs --train-file and/or --dev-file (SQuAD v1.1 or v2.0 JSON)")
        super().__init__(files, options.strict)


class SampleCorpus(FileCorpus):
    """A small Korean corpus in KorQuAD format shipped with qaframe, for the offline quickstart and tests."""

    name = "sample"

    def __init__(self, options: CorpusOptions):
        refuse_files("sample", options)
        super().__init__({split: SAMPLE_FOLDER / f"{split}.json" for split in ("train", "dev")}, options.strict)


class SyntheticCorpus:
    """Generated Korean questions (train 2,400 / dev 300, fixed seed) for the offline quickstart and learning checks."""

    metric = "korquad"
    refiner = "korean-particles"

    def __init__(self, options: CorpusOptions):
        refuse_files("synthetic", options)
        self.strict = options.strict

    def splits(self) -> tuple[str, ...]:
        """The generated splits."""
        return ("train", "dev")

    def load(self, split: str) -> CorpusSplit:
        """Generate and validate one split."""
        from qaframe_plugins.synthetic import synthetic_dataset

        loader = RecordLoader(f"synthetic:{split}", strict=self.strict)
        for number, record in enumerate(synthetic_dataset(split)):
            context = record.get("context") if isinstance(record, dict) else None
            title = record.get("title") if isinstance(record, dict) else None
            loader.add(record, f"record {number}", title, context)
        return loader.result()


@hookimpl(trylast=True)
def register_corpora(register):
    """Register the built-in corpora."""
    register("korquad", KorQuADCorpus)
    register("squad-json", SquadJsonCorpus)
    register("sample", SampleCorpus)
    register("synthetic", SyntheticCorpus)
