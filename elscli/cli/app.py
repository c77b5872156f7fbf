"""The Typer application every command module registers its commands on.

Help is plain Click formatting (``rich_markup_mode=None``): rich markup would read ``[default: 20]`` or
``default_rng([i, R])`` in a help text as a markup tag and drop it, and would reflow the examples; plain
formatting shows every default and keeps each example as written (``\b`` paragraphs are not rewrapped).
"""
import typer

from .. import __version__


def _version(value: bool) -> None:
    if value:
        print(f"elscli {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="elscli",
    help="Analytic score machines (IS, LS, ELS, bbELS) of Kamb & Ganguli's analytic theory of creativity "
         "in convolutional diffusion models: build patch banks, sample, compare with networks, calibrate locality.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print elscli's version and exit.")) -> None:
    """The options before the command (the application's help is ``app``'s)."""
