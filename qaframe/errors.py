"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """A problem caused by the user's input (file, flag, name, model); its message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()) if "\n" in message else message)
