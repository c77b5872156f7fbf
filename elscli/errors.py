"""The one domain exception of elscli.

Library code raises :class:`ElscliError` (a ``ValueError``) for bad input; the CLI edge turns it into a
one-line message on stderr and exit code 1.  Usage errors (bad option syntax) are Typer's and exit 2.
Input that is probably, but not certainly, wrong gives an :class:`ElscliWarning` (Python's ``warnings``); the
CLI prints it as one ``elscli: warning:`` line on stderr.

:func:`reason` turns any other exception (an ``OSError`` of a library, a ``BadZipFile`` of NumPy...) into the
words to show after the user's path — never a Python class name, never a temporary file's name.
"""


class ElscliError(ValueError):
    """Bad input or an unusable file, with a message fit to show a user on one line."""


class ElscliWarning(UserWarning):
    """Input that is accepted but probably not what the user meant (e.g. images on [0, 1] read as [-1, 1])."""


# Words for exceptions whose message is empty or names only a class (matched by class name along the MRO, so
# that vendored or optional modules need not be imported here).
_PLAIN_REASONS = {
    "MemoryError": "out of memory",
    "RecursionError": "nesting too deep",
    "EOFError": "the file ends early (truncated?)",
    "BadZipFile": "not a valid zip archive (truncated or not an NPZ?)",
    "UnpicklingError": "not a valid pickle",
    "UnicodeDecodeError": "not valid UTF-8 text",
    "JSONDecodeError": "not valid JSON",
}


def reason(exc: BaseException) -> str:
    """One line saying why ``exc`` happened, fit to follow a user's path (``f"{path}: {reason(exc)}"``).

    An ``OSError`` gives its ``strerror`` only ("No such file or directory") — its own file name may be a
    temporary one the user never chose; a ``KeyError`` says which key is missing; other exceptions give the
    first line of their message, or plain words for their class when the message is empty.  The exception's
    class name is never part of the result.

    Parameters: ``exc`` any exception.  Returns: a non-empty ``str`` without newlines.  Raises: nothing.
    """
    if isinstance(exc, OSError) and getattr(exc, "strerror", None):
        return str(exc.strerror)
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = f"missing key {exc.args[0]!r}"
    if text:
        first = text.splitlines()[0].strip()
        return first or text.replace("\n", " ")
    for cls in type(exc).__mro__:
        if cls.__name__ in _PLAIN_REASONS:
            return _PLAIN_REASONS[cls.__name__]
    return "an unexpected failure"
