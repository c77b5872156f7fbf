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


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the option of parameter ``name`` was given on the command line (not its default, nor an
    environment variable such as ``ELSCLI_BANK``): an option that does not apply is refused only when the
    user typed it."""
    source = ctx.get_parameter_source(name)       # Click's ParameterSource (Typer may vendor Click: by name)
    return getattr(source, "name", None) == "COMMANDLINE"


def refuse_given(ctx: typer.Context, names, why: str) -> None:
    """Refuse (ElscliError) the first option among ``names`` (parameter name -> option text) that was given on
    the command line, saying ``why`` it does not apply (it would be accepted and ignored)."""
    from ..errors import ElscliError

    for name, option in names.items():
        if given(ctx, name):
            raise ElscliError(f"{option} {why}: drop {option}")
