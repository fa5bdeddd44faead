"""The one exception the data layer raises for bad input."""


class DataError(Exception):
    """Bad input, as one line: ``"<file>: <problem>"``. The CLIs print it as ``error: ...`` and exit 2."""

    def __init__(self, message: str):
        # Errors from libraries (pyarrow, zlib, ...) can span lines; a one-line message keeps logs greppable.
        super().__init__(" ".join(str(message).split("\n")).strip())
