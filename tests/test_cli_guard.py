"""Guards at the CLI edge, one kind of fault each, across every command that has an instance of it:

- an output that is the same file as an input or as another output of the command (it would destroy it),
- a file output named like a directory (``.``, ``sub/``, an existing directory, an empty name),
- mutually exclusive options given together,
- a threshold outside the bank's value range,
- an option of a parameter the chosen machine does not have,
- inputs checked before the rules about the outputs.

Each refusal is checked the same way: exit code 1, one ``elscli: error:`` line on stderr, nothing on stdout,
and the work directory exactly as it was (no file written, none changed, none removed).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from elscli import runs
from elscli.bank import Bank
from elscli.errors import ElscliError
from elscli.outputs import file_output, refuse_same_files


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 1-channel bank of 6 images (8×8) and an IS run of 2 samples sampled from it."""
    d = tmp_path_factory.mktemp("guard-made")
    rng = np.random.default_rng(3)
    imgs = np.where(rng.random((6, 1, 8, 8)) > 0.6, 1.0, -1.0).astype(np.float32)
    Bank.from_arrays(imgs, np.arange(6) % 2).save(d / "bk.h5")
    runs.sample(d / "bk.h5", machine="is", steps=2, num_samples=2, output=d / "run.h5", quiet=True)
    return d


@pytest.fixture
def work(made, tmp_path, monkeypatch):
    """A fresh copy of the fixtures as the current directory."""
    for name in ("bk.h5", "run.h5"):
        shutil.copy(made / name, tmp_path / name)
    (tmp_path / "figs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(d):
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def refused(cli, work, *args, needles=()):
    before = snapshot(work)
    res = cli(*args)
    assert res.exit_code == 1, (args, res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elscli: error:"), (args, res.stderr)
    for n in needles:
        assert n in lines[0], (args, lines[0])
    assert res.stdout == ""
    assert snapshot(work) == before, args      # nothing written, changed or removed
    return lines[0]


# ------------------------------------------------------------------------- 1+2: outputs that destroy inputs

@pytest.mark.parametrize("args, needles", [
    (("sample", "--bank", "bk.h5", "-n", "1", "-o", "x.h5", "--png", "x.h5"), ("--png", "-o", "same file")),
    (("sample", "--bank", "bk.h5", "-n", "1", "-o", "./x.h5", "--png", "x.h5"), ("same file",)),
    (("sample", "--bank", "bk.h5", "-n", "1", "-o", "run.h5", "--png", "run.h5", "--force"), ("same file",)),
    (("sample", "--bank", "bk.h5", "-n", "1", "-o", "bk.h5", "--force"), ("-o", "one of the inputs", "--bank")),
    (("sample", "--bank", "bk.h5", "-n", "1", "--png", "./bk.h5", "--force"), ("--png", "one of the inputs")),
    (("sample", "--bank", "./bk.h5", "--from-seeds", "run.h5", "-o", "run.h5", "--force"),
     ("one of the inputs", "--from-seeds")),
    (("sample", "--bank", "bk.h5", "-n", "2", "--shard", "0/2", "-o", "run{shard}.h5", "--force", "--png", "run0.h5"),
     ("same file",)),
    (("build-bank", "bk.h5", "-o", "bk.h5", "--force"), ("one of the inputs",)),
    (("build-bank", "./bk.h5", "-o", "bk.h5", "--force", "--size", "0"), ("one of the inputs",)),
    (("merge", "run.h5", "-o", "./run.h5", "--force"), ("one of the inputs",)),
    (("export", "run.h5", "-o", "run.h5", "--force"), ("one of the inputs",)),
    (("locality-scan", "run.h5", "--scan-out", "run.h5", "--force"), ("--scan-out", "one of the inputs")),
    (("locality-scan", "run.h5", "-o", "./run.h5", "--force"), ("-o", "one of the inputs")),
    (("locality-scan", "-r", "run.h5", "--bank", "bk.h5", "-o", "bk.h5", "--force"), ("-o", "one of the inputs")),
    (("locality-scan", "-r", "run.h5", "--bank", "bk.h5", "-o", "s.h5", "--scan-out", "s.h5"), ("same file",)),
])
def test_an_output_that_is_an_input_or_another_output_is_refused(cli, work, args, needles):
    refused(cli, work, *args, needles=needles)


def test_a_hard_link_to_the_bank_is_the_same_file(cli, work):
    os.link(work / "bk.h5", work / "alias.h5")
    refused(cli, work, "sample", "--bank", "bk.h5", "-n", "1", "-o", "alias.h5", "--force",
            needles=("one of the inputs",))


def test_refuse_same_files_library():
    refuse_same_files([("--bank", "a.h5")], [("-o", "b.h5"), ("--png", "c.png"), ("--x", None)])   # distinct: fine
    with pytest.raises(ElscliError, match="one of the inputs"):
        refuse_same_files([("--bank", "a.h5")], [("-o", "sub/../a.h5")])
    with pytest.raises(ElscliError, match="same file"):
        refuse_same_files([], [("-o", "b.h5"), ("--png", "./b.h5")])


# ------------------------------------------------------------------------- 3: file outputs named as directories

@pytest.mark.parametrize("args", [
    ("build-bank", "bk.h5", "-o", "."),
    ("build-bank", "bk.h5", "-o", "sub/"),
    ("build-bank", "bk.h5", "-o", "figs"),
    ("build-bank", "bk.h5", "-o", ""),
    ("sample", "--bank", "bk.h5", "-n", "1", "-o", "sub/"),
    ("sample", "--bank", "bk.h5", "-n", "1", "-o", "figs", "--force"),
    ("sample", "--bank", "bk.h5", "-n", "1", "-o", "x.h5", "--png", "figs/"),
    ("sample", "--bank", "bk.h5", "-n", "1", "-o", "x.h5", "--png", ".."),
    ("merge", "run.h5", "-o", "."),
    ("merge", "run.h5", "-o", "out/"),
    ("locality-scan", "run.h5", "-o", "figs"),
    ("locality-scan", "run.h5", "--scan-out", "new/"),
    ("locality-scan", "run.h5", "-o", ""),
])
def test_a_file_output_named_as_a_directory_is_refused(cli, work, args):
    line = refused(cli, work, *args)
    assert "directory" in line or "file name" in line, line


def test_file_output_library():
    assert file_output(None) is None
    assert str(file_output("a/b.h5")) == "a/b.h5"
    for bad in ("", ".", "..", "x/", "x/.."):
        with pytest.raises(ElscliError):
            file_output(bad, "-o")


# ------------------------------------------------------------------------- 4: mutually exclusive options

@pytest.mark.parametrize("args, needles", [
    (("build-bank", "bk.h5", "-o", "b2.h5", "--grayscale", "--rgb"), ("--grayscale", "--rgb", "not both")),
    (("locality-scan", "--sweep", "3,5", "--bank", "bk.h5", "-o", "s.json"), ("--sweep", "-o", "not both")),
    (("locality-scan", "--sweep", "3,5", "--bank", "bk.h5", "--scan-out", "s.h5"), ("--scan-out",)),
    (("locality-scan", "--sweep", "3,5", "--bank", "bk.h5", "--shard", "0/2"), ("--shard",)),
    (("locality-scan", "-r", "run.h5", "--bank", "bk.h5", "--label", "1", "-o", "s.json"), ("--label", "--sweep")),
    (("compare", "run.h5", "run.h5", "--json", "--csv"), ("not both",)),
    (("mosaic", "run.h5", "--json", "--csv"), ("not both",)),
    (("consistency", "run.h5", "--bank", "bk.h5", "--json", "--csv"), ("not both",)),
])
def test_mutually_exclusive_options_are_refused(cli, work, args, needles):
    refused(cli, work, *args, needles=needles)


def test_grayscale_alone_still_works(cli, work):
    res = cli("build-bank", "bk.h5", "-o", "grey.h5", "--grayscale", "--size", "0")
    assert res.exit_code == 0, res.stderr
    assert Bank.open(work / "grey.h5").shape[0] == 1


# ------------------------------------------------------------------------- 5: thresholds outside the value range

@pytest.mark.parametrize("value", ["5", "1", "-1", "-1.5"])
def test_consistency_threshold_outside_the_value_range_is_refused(cli, work, value):
    refused(cli, work, "consistency", "run.h5", "--bank", "bk.h5", "--threshold", value, "--plot", "figs2",
            needles=("--threshold", "(-1, 1)"))


def test_consistency_threshold_inside_the_value_range_is_accepted(cli, work):
    res = cli("consistency", "run.h5", "--bank", "bk.h5", "--threshold", "0.5", "--json")
    assert res.exit_code == 0, res.stderr


# ------------------------------------------------------------------------- 6: options of parameters a machine lacks

@pytest.mark.parametrize("machine, option, value", [
    ("wiener", "--patch-size", "5"),
    ("wiener", "--schedule", "paper:MNIST_ResNet_zeros"),
    ("wiener", "--schedule-scale", "2"),
    ("is", "--patch-size", "3"),
    ("nearest", "--schedule", "5"),
    ("scfdm", "--late-scale", "2"),
    ("ls", "--sigma", "0.2"),
    ("bbels", "--temperature", "0.5"),
    ("ls", "--threshold", "0.2"),
    ("ls", "--wrap", None),
])
def test_an_option_the_machine_does_not_have_is_refused(cli, work, machine, option, value):
    extra = (option,) if value is None else (option, value)
    if option == "--late-scale":
        extra += ("--late-from", "0.5")
    refused(cli, work, "sample", "--bank", "bk.h5", "-n", "1", "--steps", "2", "--machine", machine, *extra,
            "-o", "x.h5", needles=(f"machine {machine!r} has no parameter", f"{option} does not apply"))


def test_an_option_the_machine_has_is_accepted(cli, work):
    res = cli("sample", "--bank", "bk.h5", "-n", "1", "--steps", "2", "--machine", "ls", "--patch-size", "3",
              "-o", "x.h5", "--quiet")
    assert res.exit_code == 0, res.stderr
    assert (work / "x.h5").exists()


# ------------------------------------------------------------------------- 7: inputs before output rules

def test_locality_scan_checks_inputs_before_the_partial_schedule_rule(cli, work):
    refused(cli, work, "locality-scan", "-r", "nonexist.npz", "--bank", "bk.h5", "--shard", "0/16", "-o", "s.json",
            needles=("nonexist.npz", "does not exist"))
    refused(cli, work, "locality-scan", "-r", "run.h5", "--bank", "nobank.h5", "--shard", "0/16", "-o", "s.json",
            needles=("nobank.h5", "does not exist"))
