"""The one domain exception of elscli.

Library code raises :class:`ElscliError` (a ``ValueError``) for bad input; the CLI edge turns it into a
one-line message on stderr and exit code 1.  Usage errors (bad option syntax) are Typer's and exit 2.
Input that is probably, but not certainly, wrong gives an :class:`ElscliWarning` (Python's ``warnings``); the
CLI prints it as one ``elscli: warning:`` line on stderr.
"""


class ElscliError(ValueError):
    """Bad input or an unusable file, with a message fit to show a user on one line."""


class ElscliWarning(UserWarning):
    """Input that is accepted but probably not what the user meant (e.g. images on [0, 1] read as [-1, 1])."""
