"""The data types that flow through a run and the contracts (Protocols) each plugin kind fills.

corpus -> QAExample -> featurizer -> Features -> QAModel -> start/end logits
-> decoding -> refiner -> Metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from qaframe.errors import UserError


# -- examples -------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One gold answer: its text and the character offset where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """The character offset just past the answer."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class QAExample:
    """One question about one context with all its gold answers (training uses the first)."""

    id: str
    title: str
    question: str
    context: str
    answers: tuple[Answer, ...] = ()
    is_impossible: bool = False


@dataclass
class CorpusSplit:
    """The examples of one split, the files they came from, and what loading repaired or skipped."""

    examples: list[QAExample]
    files: tuple[Path, ...] = ()
    repaired: list[str] = field(default_factory=list)  # record ids, one per repaired answer and one per record brought to NFC
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (example id, reason)


def check_examples(examples: Sequence[QAExample], where: str) -> None:
    """UserError naming `where` and the example for a repeated id or an answer that is not the context's text at its start.

    Built-in corpora repair or skip such records while loading; a run checks any corpus's
    examples with this before training on them (predictions are keyed by id; labels come from
    offsets), and `qaframe.testing.check_corpus` holds a corpus plugin to the same.
    """
    seen = set()
    for example in examples:
        if example.id in seen:
            raise UserError(f"{where}: example id '{example.id}' appears more than once; ids must be unique (predictions are keyed by them)")
        seen.add(example.id)
        for number, answer in enumerate(example.answers, start=1):
            found = example.context[answer.start : answer.end]
            if found != answer.text:
                raise UserError(f"{where}: example '{example.id}', answer {number}: {answer.text!r} is not the context's text "
                                f"at its start {answer.start} ({found!r}); an answer must be context[start:start+len(text)]")


def no_such_split(corpus: str, split: str, splits: Sequence[str]) -> UserError:
    """The error for a split that corpus `corpus` does not have; `splits` are the ones it has."""
    return UserError(f"corpus '{corpus}' has no '{split}' split (it has: {', '.join(splits) or 'none'})")


@dataclass(frozen=True)
class CorpusOptions:
    """What a corpus factory is given: where data lives and how strict loading is."""

    data_dir: Path | None = None
    train_file: Path | None = None
    dev_file: Path | None = None
    strict: bool = False


@runtime_checkable
class Corpus(Protocol):
    """A source of examples. Factory: `factory(options: CorpusOptions) -> Corpus`."""

    metric: str  # name of the metric plugin that scores this corpus ("korquad", "squad")
    refiner: str  # name of the default answer-boundary refiner, or "none"

    def splits(self) -> tuple[str, ...]:
        """The split names this corpus offers, e.g. ("train", "dev")."""

    def load(self, split: str) -> CorpusSplit:
        """Read one split; raises UserError (file, line, record id) for data it cannot use."""


# -- features -------------------------------------------------------------------
@dataclass(frozen=True)
class FeaturizerSettings:
    """Window settings. `doc_stride` is the overlap: context tokens shared by consecutive windows."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64


@dataclass
class Features:
    """Tokenized windows as columnar, unpadded (ragged) numpy arrays; padding happens per batch.

    Window i spans tokens `row_splits[i]:row_splits[i+1]` of the flat token arrays. The
    attention mask is all ones inside a window, so it is made at batch time, not stored.
    `start_positions`/`end_positions` are token indices inside the window (the CLS index when
    the answer is not wholly inside it). `offsets` holds (char_start, char_end) in the original
    context for context tokens and (-1, -1) for every other token; evaluation and prediction
    decode answers through it, so a featurizer must give it (an origin-style function, which
    gives none, is refused).
    """

    input_ids: np.ndarray  # (tokens,) int32
    row_splits: np.ndarray  # (windows + 1,) int64
    example_index: np.ndarray  # (windows,) int64
    start_positions: np.ndarray  # (windows,) int64
    end_positions: np.ndarray  # (windows,) int64
    token_type_ids: np.ndarray | None = None  # (tokens,) int8, where the model uses them
    offsets: np.ndarray | None = None  # (tokens, 2) int32

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per window."""
        return np.diff(self.row_splits)

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty columns by name, as stored in the feature cache."""
        names = ("input_ids", "row_splits", "example_index", "start_positions", "end_positions", "token_type_ids", "offsets")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@runtime_checkable
class Featurizer(Protocol):
    """Examples + tokenizer -> Features. Factory: `factory(settings: FeaturizerSettings) -> Featurizer`.

    `name`, `version` and `settings` enter the feature-cache key: bump `version` whenever the
    output for the same input changes.
    """

    name: str
    version: str
    settings: FeaturizerSettings

    def featurize(self, examples: Sequence[QAExample], tokenizer: Any) -> Features:
        """Tokenize every example into windows with labels (first answer) and offsets."""


# -- models ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What `--model NAME` resolves to: a hub id or folder and the limits that come with it."""

    source: str
    max_positions: int | None = None  # position-embedding limit (KcBERT: 300)
    random_init: bool = False  # build from config with random weights (offline tiny models)
    trust_remote_code: bool = False  # let transformers run code from the model's folder or hub repo


@runtime_checkable
class QAModel(Protocol):
    """What a head factory builds. Factory: `factory(spec: ModelSpec, *, pretrained: bool) -> QAModel`.

    A torch.nn.Module whose forward takes input_ids, attention_mask and, when the encoder uses
    them, token_type_ids, and returns an object with `start_logits` and `end_logits` of shape
    (batch, sequence). `save_pretrained(folder)` writes it so that the same factory loads it back
    from that folder (`ModelSpec(source=folder)`, pretrained=True).
    """

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> Any:
        """Start and end logits for every token."""

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the model so that its head factory can load it from `folder`."""


# -- optimization ---------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerSettings:
    """What an optimizer factory is given besides the model."""

    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    fused: bool | None = None  # None: fused where torch has the kernel (all parameters on CUDA, or all on CPU)


@dataclass(frozen=True)
class SchedulerSettings:
    """What a scheduler factory is given besides the optimizer; counts are optimizer steps."""

    total_steps: int
    warmup_steps: int = 0


# -- scoring --------------------------------------------------------------------
@runtime_checkable
class Metric(Protocol):
    """Scores predictions. Factory: `factory() -> Metric`."""

    name: str

    def compute(self, predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """`{id: text}` against `{id: [gold texts]}` -> at least `exact_match` and `f1`, both 0-100."""


@runtime_checkable
class Refiner(Protocol):
    """Moves a decoded answer's boundaries. Factory: `factory() -> Refiner`."""

    name: str

    def refine(self, context: str, start: int, end: int, last_token_start: int) -> tuple[int, int]:
        """Refined (start, end) character span; `last_token_start` is where the span's last token begins.

        `context` is in Unicode NFC: decoding hands a decomposed context over composed, with the
        span moved into it, and maps the refined span back.

        A refiner may only move `end` inside the last token (`last_token_start < end`), so the
        result stays a non-empty substring of the context.
        """


REFINER_STATE_FILE = "refiner.json"  # a TrainableRefiner's state, beside the saved model


@runtime_checkable
class TrainableRefiner(Refiner, Protocol):
    """A Refiner that learns from the training answers; its state is plain JSON saved beside the model.

    A run calls `fit(train_examples, tokenizer)` before evaluating and writes `to_json()` to
    REFINER_STATE_FILE in the model folder; loading calls `load_json()` on a fresh instance. An
    instance that was never fitted must still refine (e.g. by falling back to a rule).
    """

    def fit(self, examples: Sequence[QAExample], tokenizer: Any) -> None:
        """Learn from the gold answers of `examples`, tokenized with the model's (fast) tokenizer."""

    def to_json(self) -> dict:
        """The learned state as a JSON-serializable dict."""

    def load_json(self, data: dict) -> None:
        """Restore the state written by `to_json()`; raises ValueError when `data` is not such a state."""
