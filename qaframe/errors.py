"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits 2.

Also `held_back`, which keeps a library's log lines (Lightning's device lines, transformers' load
report) from stderr until the step that logs them has succeeded, so an error in it stays the only line,
and the helpers that keep a message to one line (`one_line`, `first_few`).
"""

import logging
from contextlib import contextmanager


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(str(text).split())


def first_few(items: list[str], shown: int = 5) -> str:
    """The first `shown` of `items`, comma-separated, and how many more there are."""
    return ", ".join(items[:shown]) + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


class UserError(Exception):
    """A problem caused by the user's input (file, flag, name, model); its message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(one_line(message) if "\n" in message else message)


class ContextWithoutTokens(UserError):
    """A context of which the tokenizer keeps nothing, so no span can answer; `index`: its question's place in `answer`'s items.

    The message reads `context: <reason>`, as serve words its errors; a caller that knows where
    the context came from (a flag, a file's line) names that with `reason`.
    """

    reason = "has no tokens the model knows (its tokenizer drops every character of it, such as U+FFFD); send text with words"

    def __init__(self, index: int):
        super().__init__(f"context: {self.reason}")
        self.index = index


@contextmanager
def held_back(logger: logging.Logger):
    """Keep what `logger` logs inside the block from its handlers; yields the list of records, for `logger.handle` once
    the block has succeeded (an error raised in it is then the only line)."""
    records: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        records.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield records
    finally:
        logger.removeFilter(hold)
