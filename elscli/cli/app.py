"""The Typer application every command module registers its commands on."""
import typer

app = typer.Typer(
    name="elscli",
    help="Analytic score machines (IS, LS, ELS, bbELS) of Kamb & Ganguli's analytic theory of creativity "
         "in convolutional diffusion models: build patch banks, sample, compare with networks, calibrate locality.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
