"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits 2."""


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(str(text).split())


class UserError(Exception):
    """A problem caused by the user's input (file, flag, name, model); its message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(one_line(message) if "\n" in message else message)
