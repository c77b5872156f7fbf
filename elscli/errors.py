"""The one domain exception of elscli.

Library code raises :class:`ElscliError` (a ``ValueError``) for bad input; the CLI edge turns it into a
one-line message on stderr and exit code 1.  Usage errors (bad option syntax) are Typer's and exit 2.
Input that is probably, but not certainly, wrong gives an :class:`ElscliWarning` (Python's ``warnings``); the
CLI prints it as one ``elscli: warning:`` line on stderr.

:func:`reason` turns any other exception (an ``OSError`` of a library, a ``BadZipFile`` of NumPy...) into the
words to show after the user's path — never a Python class name, never a temporary file's name;
:func:`option_words` does the same for the messages of the command-line parser (Typer validates option values
with pydantic, whose messages read "Input should be greater than or equal to 1" or "Value error, …").
"""
import re


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


# The parser's phrases for a bad option value (pydantic's, as Typer reports them, and Click's own), and ours.
_OPTION_PHRASES = [
    (r"Input should be a valid integer.*|.* is not a valid integer.*", "must be a whole number"),
    (r"Input should be a finite number.*", "must be a finite number"),
    (r"Input should be a valid number.*|.* is not a valid float.*", "must be a number"),
    (r"Input should be a valid boolean.*|.* is not a valid boolean.*", "must be true or false"),
    (r"Input should be greater than or equal to (\S+?)\.?", r"must be at least \1"),
    (r"Input should be greater than (\S+?)\.?", r"must be greater than \1"),
    (r"Input should be less than or equal to (\S+?)\.?", r"must be at most \1"),
    (r"Input should be less than (\S+?)\.?", r"must be less than \1"),
    (r".* is not in the range x>=(\S+?)\.?", r"must be at least \1"),
    (r".* is not in the range x<=(\S+?)\.?", r"must be at most \1"),
    (r".* is not in the range (\S+?)<=x<=(\S+?)\.?", r"must lie in [\1, \2]"),
]


def option_words(message: str) -> str:
    """Plain words for the command-line parser's message about a bad option value, to follow the option's
    name: ``"Input should be greater than or equal to 1"`` -> ``"must be at least 1"``, ``"Value error, 'x'
    is not one of 'a', 'b'."`` -> ``"must be one of a, b"``, ``"Input should be a valid integer, unable to
    parse string as an integer"`` -> ``"must be a whole number"``.  A message it does not know is returned
    on one line, without pydantic's ``"Value error, "`` prefix.

    Parameters: ``message`` the parser's message (``click.BadParameter.message``).  Returns: a non-empty
    ``str`` without newlines.  Raises: nothing.
    """
    text = " ".join(str(message).split())
    text = re.sub(r"^(Value error|Assertion failed),\s*", "", text)
    choices = re.fullmatch(r"'?.*?'? is not one of (.*?)\.?", text) or re.fullmatch(
        r"'?.*?'? is not (?:one of|a valid choice)[:]? (.*?)\.?", text)
    if choices:
        names = re.findall(r"'([^']*)'", choices.group(1)) or [c.strip() for c in choices.group(1).split(",")]
        return "must be one of " + " | ".join(n for n in names if n)
    for pattern, words in _OPTION_PHRASES:
        m = re.fullmatch(pattern, text)
        if m:
            return m.expand(words)
    return text or "is not a valid value"
