"""The one domain exception of elscli.

Library code raises :class:`ElscliError` (a ``ValueError``) for bad input; the CLI edge turns it into a
one-line message on stderr and exit code 1.  Usage errors (bad option syntax) are Typer's and exit 2.
"""


class ElscliError(ValueError):
    """Bad input or an unusable file, with a message fit to show a user on one line."""
