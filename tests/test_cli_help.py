"""``--help`` of every command shows every default, help text and example as written (issue 19, item 2), and
the command line's own conventions: ``--version``, usage errors in one line off a terminal (item 10)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from elscli import __version__
from elscli.cli import app

runner = CliRunner()


def _commands():
    group = typer.main.get_command(app)
    return sorted(group.commands.items())


def _flat(text: str) -> str:
    """Help text with its line wrapping undone (runs of whitespace as one space; a word wrapped after its
    hyphen, ``pspc-`` / ``square``, joined again)."""
    import re

    return " ".join(re.sub(r"(?<=\w-)[ \t]*\n\s*", "", text).split())


def _help(name: str) -> str:
    result = runner.invoke(app, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _shown_default(param) -> str:
    value = param.default
    if hasattr(value, "value"):          # an Enum choice
        value = value.value
    return str(value)


COMMANDS = [name for name, _ in _commands()]


def test_every_command_is_listed():
    assert {"info", "build-bank", "sample", "merge", "export", "compare", "mosaic", "locality-scan",
            "consistency"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_every_help_text_and_default(name):
    command = dict(_commands())[name]
    shown = _flat(_help(name))
    for param in command.params:
        if param.name == "help":
            continue
        text = getattr(param, "help", None)
        if text:   # the text as written: brackets ([default: 20], default_rng([i, R])) are kept
            assert _flat(text) in shown, (name, param.name, text)
        written = re.findall(r"\[default: [^\]]*\]", text or "")
        is_flag = getattr(param, "is_flag", False)
        if param.default not in (None, False, ()) and not is_flag and getattr(param, "show_default", None) is not False:
            assert not written, f"{name} {param.name}: the default is both given and written in the help"
            assert re.search(r"\[default: " + re.escape(_shown_default(param)) + r"[\];]", shown), (name, param.name)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_each_example_as_written(name):
    command = dict(_commands())[name]
    doc = command.callback.__doc__ or ""
    examples = [ln.strip() for ln in doc.splitlines() if ln.strip().startswith("elscli ")]
    assert examples, f"{name} has no examples"
    lines = [ln.strip() for ln in _help(name).splitlines()]
    for ex in examples:
        assert ex in lines, (name, ex)


def test_sample_help_has_the_defaults_the_issue_named():
    shown = _flat(_help("sample"))
    for text in ("[default: paper:MNIST_ResNet_zeros]", "[default: 20]", "[default: 1.0]",
                 "[default: 16; with --from-seeds all the file's samples]", "default_rng([i, R])",
                 "[default: 1]"):
        assert text in shown, text


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"elscli {__version__}"


@pytest.mark.parametrize("args, says", [
    (["frobnicate"], "No such command 'frobnicate'"),
    (["sample", "--frobnicate"], "No such option: --frobnicate"),
    (["sample", "--steps", "many"], "--steps must be a whole number, got 'many'"),
    (["info"], "Missing argument"),
])
def test_usage_errors_are_one_line_off_a_terminal(tmp_path, args, says):
    p = subprocess.run([sys.executable, "-m", "elscli", *args], capture_output=True, text=True, cwd=tmp_path,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert says in lines[0] and "--help" in lines[0]
    assert p.stdout == ""
    assert list(tmp_path.iterdir()) == []
