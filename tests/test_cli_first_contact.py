"""What a new user meets in the first hour (issue 19), each kind through the real entry point: the exit code,
the one stderr line, and that a failed command leaves the file system as it found it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from elscli.errors import ElscliError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"
REF_NPZ = SHARED / "reference-resnet-mnist" / "trajectories.npz"


def tree(root: Path) -> dict:
    """Every file and directory under ``root`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.join(dirpath, d) + "/"] = None
        for f in filenames:
            st = os.stat(os.path.join(dirpath, f))
            out[os.path.join(dirpath, f)] = (st.st_size, st.st_mtime_ns)
    return out


def fails_cleanly(cli, root: Path, *args, says=(), never=(".tmp-",), code=1):
    """Run ``elscli ARGS``: it must fail with ``code``, one stderr line containing every ``says`` and none of
    ``never``, nothing on stdout, and leave ``root`` exactly as it was."""
    before = tree(root)
    res = cli(*args)
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    for s in says:
        assert s in lines[0], (s, lines[0])
    for s in never:
        assert s not in lines[0], (s, lines[0])
    assert tree(root) == before, sorted(set(tree(root)) ^ set(before))
    return lines[0]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A 16x16 bank of 12 digits (labelled), a run of 3 LS samples and a partial run, a reference."""
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    from elscli import runs
    from elscli.bank import Bank

    d = tmp_path_factory.mktemp("first-contact")
    imgs = np.ascontiguousarray(np.load(GOLDEN)["bank_images"][:12, :, 8:24, 8:24])
    Bank.from_arrays(imgs, np.arange(12) % 3).save(d / "bank.h5")
    runs.sample(d / "bank.h5", machine="ls", patch_size=3, steps=3, num_samples=3, output=d / "run.h5")
    run = runs.Run.open(d / "run.h5")
    part = runs.Run({**run.arrays, "done": np.array([True, False, True]),
                     "final": np.where(np.array([True, False, True])[:, None, None, None], run.final, np.nan)},
                    run.attrs)
    part.save(d / "partial.h5")
    (d / "afile").write_text("a file\n")
    return d


# ----------------------------------------------------------------------- 3: the user's path and the reason
def test_write_failures_name_the_users_path_never_a_temporary_name(cli, d, tmp_path):
    line = fails_cleanly(cli, tmp_path, "build-bank", d / "bank.h5", "-o", "/proc/b.h5", "--size", "0",
                         says=("'/proc/b.h5'",))
    assert "lock" not in line
    fails_cleanly(cli, tmp_path, "export", d / "run.h5", "-o", "/proc/e.npz", says=("'/proc/e.npz'",))
    fails_cleanly(cli, tmp_path, "merge", d / "run.h5", "-o", "/proc/m.h5", says=("'/proc/m.h5'",))


def test_atomic_output_names_the_path_and_reason(tmp_path):
    from elscli.outputs import atomic_output

    with pytest.raises(ElscliError) as exc:
        with atomic_output(tmp_path / "out.npz") as tmp:
            open(tmp.parent / "missing-dir" / tmp.name, "wb")
    msg = str(exc.value)
    assert "out.npz" in msg and "No such file or directory" in msg and ".tmp-" not in msg
    assert list(tmp_path.iterdir()) == []


def test_truncated_npz_names_the_file(cli, d, tmp_path):
    raw = REF_NPZ.read_bytes() if REF_NPZ.exists() else (d / "run.h5").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[:1000])
    for args in (("sample", "--bank", d / "bank.h5", "--from-seeds", tmp_path / "t.npz", "-o", tmp_path / "r.h5"),
                 ("compare", tmp_path / "t.npz", d / "run.h5"),
                 ("info", tmp_path / "t.npz"),
                 ("build-bank", tmp_path / "t.npz", "-o", tmp_path / "b.h5")):
        line = fails_cleanly(cli, tmp_path, *args, says=("t.npz",))
        assert "BadZipFile" not in line


# ----------------------------------------------------------------------- 4: leaving nothing behind
def test_failed_commands_leave_no_directory(cli, d, tmp_path):
    fails_cleanly(cli, tmp_path, "mosaic", tmp_path / "nope.h5", "-o", tmp_path / "mos")
    fails_cleanly(cli, tmp_path, "compare", d / "run.h5", tmp_path / "nope.h5", "--plot", tmp_path / "figs")
    fails_cleanly(cli, tmp_path, "export", tmp_path / "nope.h5", "-o", tmp_path / "pngs")
    # a failure after the first PNG would have made the directory: it is removed again (empty)
    fails_cleanly(cli, tmp_path, "mosaic", d / "run.h5", "--bank", tmp_path / "nope.h5", "-o", tmp_path / "mos")


def test_output_directories_are_made_when_written(cli, d, tmp_path):
    res = cli("export", d / "run.h5", "-o", tmp_path / "pngs")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"sample_00000{i}.png" for i in range(3)]


def test_partial_scan_refused_before_anything_is_written(cli, d, tmp_path):
    from elscli import reference as R
    from elscli.noise import time_grid

    seeds = np.random.default_rng(0).standard_normal((2, 1, 16, 16)).astype(np.float32)
    R.record(lambda x, t, labels: 0.5 * x, seeds, time_grid(3), path=tmp_path / "net.npz")
    res = cli("locality-scan", "-r", tmp_path / "net.npz", "--bank", d / "bank.h5", "--machine", "ls",
              "--candidates", "3,5", "--shard", "0/2", "--scan-out", tmp_path / "scan-{shard}.h5", "--quiet")
    assert res.exit_code == 0, res.stderr
    fails_cleanly(cli, tmp_path, "locality-scan", tmp_path / "scan-0.h5", "-o", tmp_path / "s.json",
                  "--scan-out", tmp_path / "scan.h5", says=("partial scan", "--allow-partial"))
    # following the advice works: nothing was left to refuse
    res = cli("locality-scan", tmp_path / "scan-0.h5", "-o", tmp_path / "s.json", "--scan-out",
              tmp_path / "scan.h5", "--allow-partial")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "scan.h5").exists() and (tmp_path / "s.json").exists()
    # a shard scan with -o is refused before minutes of scanning
    fails_cleanly(cli, tmp_path, "locality-scan", "-r", tmp_path / "net.npz", "--bank", d / "bank.h5",
                  "--machine", "ls", "--candidates", "3,5", "--shard", "1/2", "--scan-out",
                  tmp_path / "scan1-{shard}.h5", "-o", tmp_path / "s1.json", says=("shard 1/2",))


# ----------------------------------------------------------------------- 5: messages that mislead
def test_output_under_a_file_says_it_is_a_file(cli, d, tmp_path):
    (tmp_path / "afile").write_text("x")
    for args in (("build-bank", d / "bank.h5", "-o", tmp_path / "afile" / "b.h5"),
                 ("sample", "--bank", d / "bank.h5", "-o", tmp_path / "afile" / "r.h5"),
                 ("compare", d / "run.h5", d / "run.h5", "--plot", tmp_path / "afile" / "figs")):
        line = fails_cleanly(cli, tmp_path, *args, says=("is a file, not a directory",))
        assert "does not exist" not in line


def test_info_describes_a_reference(cli, tmp_path):
    if not REF_NPZ.exists():
        pytest.skip("shared reference not found")
    res = cli("info", REF_NPZ, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["samples"] == 32 and out["steps"] == 20 and out["image_shape"] == [1, 32, 32]
    assert out["noise_schedule"] == "cosine-legacy" and out["labels"] == {"unconditional": 32}
    assert out["arrays"]["eps"] == "32×20×1×32×32"
    res = cli("info", REF_NPZ, "--verify")
    assert res.exit_code == 0 and "x[:, 0] equals seeds" in res.stdout


def test_info_verify_run_checks_and_says_what(cli, d, tmp_path):
    res = cli("info", d / "run.h5", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    checks = json.loads(res.stdout)["verified"]
    assert any("starting noise" in c for c in checks) and any("finals" in c for c in checks)
    # a run whose stored noise is not its seed's fails
    bad = tmp_path / "bad.h5"
    bad.write_bytes((d / "run.h5").read_bytes())
    with h5py.File(bad, "r+") as f:
        f["seeds"][0, 0, 0, 0] += 1.0
    fails_cleanly(cli, tmp_path, "info", bad, "--verify", says=("starting noise of sample 0",))


def test_info_verify_bank_with_nan_fails(cli, tmp_path):
    from elscli.bank import compute_content_hash

    from elscli.bank import Bank

    imgs = np.linspace(-0.9, 0.9, 4 * 64, dtype=np.float32).reshape(4, 1, 8, 8)
    Bank.from_arrays(imgs).save(tmp_path / "f.h5")
    with h5py.File(tmp_path / "f.h5", "r+") as f:
        img = f["images"][()]
        img[2, 0, 3, 4] = np.nan
        f["images"][...] = img
        f.attrs["content_hash"] = compute_content_hash(img, f["labels"][()])
    fails_cleanly(cli, tmp_path, "info", tmp_path / "f.h5", "--verify",
                  says=("NaN", "image 2, channel 0, row 3, column 4"))
    res = cli("info", tmp_path / "f.h5")            # described without --verify
    assert res.exit_code == 0


# ----------------------------------------------------------------------- 6: refuse what cannot be read faithfully
def test_wide_integer_arrays_need_their_range(cli, tmp_path):
    imgs = (np.arange(4 * 64) % 200).astype(np.int16).reshape(4, 1, 8, 8)
    np.save(tmp_path / "i16.npy", imgs)
    fails_cleanly(cli, tmp_path, "build-bank", tmp_path / "i16.npy", "-o", tmp_path / "b.h5", "--size", "0",
                  says=("int16", "--value-range 0,255"))
    res = cli("build-bank", tmp_path / "i16.npy", "-o", tmp_path / "b.h5", "--size", "0", "--value-range", "0,255")
    assert res.exit_code == 0, res.stderr
    from elscli.bank import Bank

    assert np.array_equal(Bank.open(tmp_path / "b.h5").codes, imgs.astype(np.uint8))


def test_export_refuses_a_file_name_it_would_make_a_directory_of(cli, d, tmp_path):
    for name in ("f.txt", "f.h5", "grid.png"):
        fails_cleanly(cli, tmp_path, "export", d / "run.h5", "-o", tmp_path / name, says=(name, ".npz"))


# ----------------------------------------------------------------------- 7: --limit of a sorted source
def test_limit_without_subset_seed_warns_when_classes_are_lost(cli, tmp_path):
    imgs = np.repeat(np.arange(10, dtype=np.uint8)[:, None, None, None] * 20, 8, axis=0)
    imgs = np.broadcast_to(imgs, (80, 1, 8, 8)).copy()
    np.savez(tmp_path / "sorted.npz", images=imgs, labels=np.repeat(np.arange(10), 8))
    res = cli("build-bank", tmp_path / "sorted.npz", "-o", tmp_path / "b.h5", "--size", "0", "--limit", "16")
    assert res.exit_code == 0
    assert "hold 2 of its 10 classes" in res.stderr and "--subset-seed" in res.stderr
    res = cli("build-bank", tmp_path / "sorted.npz", "-o", tmp_path / "c.h5", "--size", "0", "--limit", "16",
              "--subset-seed", "0")
    assert res.exit_code == 0 and "warning" not in res.stderr


# ----------------------------------------------------------------------- 8: a paper schedule on other images
def test_paper_schedule_on_other_images_warns_and_names_those_that_fit():
    from elscli.schedule import paper_schedule_mismatch, paper_schedules_for

    assert paper_schedule_mismatch(None, (1, 32, 32)) is None
    w = paper_schedule_mismatch(None, (3, 16, 16))
    assert "MNIST" in w and "3×16×16" in w and "no paper schedule" in w
    w = paper_schedule_mismatch("paper:MNIST_ResNet_zeros", (3, 32, 32))
    assert "paper:CIFAR10_ResNet_zeros_conditional" in w and "paper:MNIST_UNet_zeros" not in w
    assert paper_schedule_mismatch("paper:CIFAR10_UNet_zeros_conditional", (1, 32, 32)).count("paper:MNIST") >= 3
    assert paper_schedule_mismatch("7", (3, 16, 16)) is None
    assert all(s.startswith("paper:CelebA") or s.startswith("paper:CIFAR10") for s in paper_schedules_for((3, 32, 32)))


def test_sample_warns_of_a_paper_schedule_for_other_images(d, recwarn):
    from elscli import runs
    from elscli.errors import ElscliWarning

    runs.sample(d / "bank.h5", steps=2, num_samples=1)                # 16x16 images, default MNIST schedule
    assert any(issubclass(w.category, ElscliWarning) and "calibrated for MNIST" in str(w.message) for w in recwarn)



def test_a_warning_is_shown_when_the_work_starts_and_never_beside_an_error(cli, d, tmp_path, monkeypatch):
    """The paper-schedule warning comes before the first progress line (not after the run); a command that
    then fails on another input shows its error line alone."""
    monkeypatch.setenv("ELSCLI_PROGRESS_INTERVAL", "0")
    res = cli("sample", "--bank", d / "bank.h5", "--machine", "ls", "--steps", "2", "-n", "1", "-o", tmp_path / "r.h5")
    assert res.exit_code == 0, res.stderr
    lines = res.stderr.splitlines()
    warned = [i for i, ln in enumerate(lines) if ln.startswith("elscli: warning:") and "calibrated for MNIST" in ln]
    progress = [i for i, ln in enumerate(lines) if ln.startswith("sample") and "steps" in ln]
    assert len(warned) == 1 and progress and warned[0] < progress[0], res.stderr
    line = fails_cleanly(cli, tmp_path, "sample", "--bank", d / "bank.h5", "--label", "7", "-o", tmp_path / "s.h5",
                         says=("label 7 is not in the bank",))
    assert line.startswith("elscli: error:")

# ----------------------------------------------------------------------- 9: pictures
def test_grid_title_fits_and_says_what_ran(d, tmp_path):
    from elscli import runs
    from elscli.runs.export import grid_title

    run = runs.Run.open(d / "run.h5")
    assert grid_title(run) == "ls,  seed 0,  3 steps,  P = 3"
    one = runs.Run({k: (v[:1] if k in runs.file.PER_SAMPLE else v) for k, v in run.arrays.items()}, run.attrs)
    runs.save_grid_png(one, tmp_path / "g.png", label_names={"0": "zero", "1": "one", "2": "two"})
    im = np.asarray(Image.open(tmp_path / "g.png").convert("L"))
    assert im.shape[1] >= 160                         # one tile, yet wide enough for the title's words
    ink_rows = np.flatnonzero((im[:20] < 128).any(axis=1))
    assert ink_rows.size                              # the title is there, above the tile
    assert (im[:, -3:] > 200).all()                   # and never cut at the right edge
    long = runs.Run({**one.arrays}, {**one.attrs, "params": json.dumps(
        {**one.params, "schedule": "paper:FashionMNIST_UNet_zeros_conditional"})})
    runs.save_grid_png(long, tmp_path / "h.png")
    im = np.asarray(Image.open(tmp_path / "h.png").convert("L"))
    assert (im[:, -3:] > 200).all()


def test_grid_title_names_the_parameters_that_differ_from_the_machine_defaults(d):
    from elscli import runs
    from elscli.runs.export import grid_title

    plain = runs.sample(d / "bank.h5", machine="is", num_samples=1, steps=2, machine_params={"temperature": 1.0})
    hot = runs.sample(d / "bank.h5", machine="is", num_samples=1, steps=2, machine_params={"temperature": 0.5})
    assert grid_title(plain).startswith("is,  ")                 # the default temperature is not repeated
    assert grid_title(hot).startswith("is temperature=0.5,  ")
    wrapped = runs.sample(d / "bank.h5", machine="els", patch_size=3, num_samples=1, steps=2, machine_params={"wrap": True})
    assert grid_title(wrapped).startswith("els wrap,  ") and grid_title(wrapped).endswith("P = 3")
    by_step = runs.sample(d / "bank.h5", machine="scfdm", num_samples=1, steps=2,
                          machine_params={"sigma": {1.0: 0.0, 0.5: 0.25}})
    assert grid_title(by_step).startswith("scfdm sigma 0 to 0.25 by step,  ")


def test_grid_of_a_from_seeds_run_names_the_seed_file(d, tmp_path):
    from elscli import runs
    from elscli.runs.export import grid_title

    res = runs.sample(d / "bank.h5", machine="ls", patch_size=3, from_seeds=d / "run.h5", num_samples=1)
    assert "seeds of run.h5" in grid_title(res) and "None" not in grid_title(res)


def test_info_lists_are_not_shapes(cli, d):
    res = cli("info", d / "bank.h5")
    assert res.exit_code == 0
    assert "1×16×16" in res.stdout                    # a shape
    from elscli.cli.output import _fmt_value

    assert _fmt_value([3, 5, 9, 15], key="candidates") == "3, 5, 9, 15"
    assert _fmt_value([1, 2], key="classes") == "1, 2"
    assert _fmt_value([1, 32, 32], key="image_shape") == "1×32×32"


# ----------------------------------------------------------------------- 10: small conventions
def test_export_of_a_partial_run_says_so(cli, d, tmp_path):
    res = cli("export", d / "partial.h5", "-o", tmp_path / "p.npz")
    assert res.exit_code == 0, res.stderr
    assert "exported its 2 finished sample(s) of 3" in res.stderr
    assert len(np.load(tmp_path / "p.npz")["final"]) == 2


def test_resume_says_how_many_were_done(cli, d, tmp_path):
    out = tmp_path / "r.h5"
    out.write_bytes((d / "partial.h5").read_bytes())    # samples 0 and 2 of 3 done
    res = cli("sample", "--bank", d / "bank.h5", "--machine", "ls", "--patch-size", "3", "--steps", "3", "-n", "3",
              "-o", out, "--resume")
    assert res.exit_code == 0, res.stderr
    assert "resuming: 2 of 3 samples already done; computing the other 1" in res.stderr
    assert "(2 from before, 1 now)" in res.stderr and res.stdout == ""


def test_compare_nearest_keeps_the_agreement_table(cli, d):
    res = cli("compare", d / "run.h5", d / "run.h5", "--bank", d / "bank.h5", "--nearest")
    assert res.exit_code == 0, res.stderr
    assert "agreement with run over 3 samples" in res.stdout and "nearest training image" in res.stdout
    res = cli("compare", d / "run.h5", d / "run.h5", "--bank", d / "bank.h5", "--nearest", "--json")
    assert json.loads(res.stdout)["agreement"]["num_samples"] == 3


def test_readme_names_every_format_and_the_default_of_n():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    from elscli.cli.bank_cmds import SourceFormat

    line = next(ln for ln in readme.splitlines() if "`--format " in ln)
    listed = line.split("`--format ")[1].split("`")[0].split("|")
    assert set(listed) == {f.value for f in SourceFormat}
    assert "16 (with `--from-seeds`: all the file's samples)" in readme


@pytest.mark.parametrize("exc, says", [(ZeroDivisionError("division by zero"), "division by zero"),
                                       (MemoryError(), "out of memory"),
                                       (KeyError("best"), "missing key 'best'")])
def test_an_internal_error_is_one_line_without_a_python_exception_name(cli, d, monkeypatch, exc, says):
    """An unexpected exception (a bug, not bad input) names the command and the failure in words, never the
    exception's class, asks for ELSCLI_DEBUG=1 output, and exits 3 — not 1 (bad input) nor 2 (usage)."""
    import elscli.info

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(elscli.info, "describe_file", broken)
    line = fails_cleanly(cli, d, "info", d / "bank.h5", says=("internal error in info", says, "ELSCLI_DEBUG=1"),
                         never=(type(exc).__name__, "Traceback"), code=3)
    assert line.startswith("elscli: internal error in info: ")
    monkeypatch.setenv("ELSCLI_DEBUG", "1")             # debugging: the exception itself, with its traceback
    with pytest.raises(type(exc)):
        cli("info", d / "bank.h5")


def test_reason_never_names_a_class_or_a_temporary_file():
    """The words shown after a user's path: an OSError's reason without its (temporary) file name, the missing
    key of a KeyError, plain words for message-less exceptions."""
    import zipfile

    from elscli.errors import reason

    err = FileNotFoundError(2, "No such file or directory", "/proc/.b.h5.tmp-15260-abc")
    assert reason(err) == "No such file or directory"
    assert reason(KeyError("times")) == "missing key 'times'"
    assert reason(EOFError()) == "the file ends early (truncated?)"
    assert reason(ValueError("first line\nsecond line")) == "first line"
    for e in (zipfile.BadZipFile(), RuntimeError(), MemoryError()):
        r = reason(e)
        assert r and type(e).__name__ not in r and "\n" not in r


# ----------------------------------------------------------------------- the bad-input sweep's last kinds
def test_a_corrupt_compressed_source_is_one_line_naming_it(cli, tmp_path):
    """A gzip stream that is corrupt (zlib's own error) or breaks off: one line naming the file, never an
    internal error."""
    import gzip

    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(40))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gzip.compress(np.random.default_rng(0).bytes(200000))[:2000])
    for src in (bad, cut):
        fails_cleanly(cli, tmp_path, "build-bank", src, "-o", tmp_path / "b.h5", says=(str(src), "corrupt or truncated"))
    fails_cleanly(cli, tmp_path, "build-bank", bad, "--format", "cifar", "-o", tmp_path / "b.h5", says=(str(bad),))


def test_an_input_is_never_its_own_output(cli, d, tmp_path):
    """build-bank B -o B --force, sample --bank B -o B --force, locality-scan -r R -o R: refused in one line,
    the input untouched (the same file found by inode, so another spelling counts too)."""
    import shutil

    bank = tmp_path / "bank.h5"
    shutil.copy(d / "bank.h5", bank)
    other_spelling = tmp_path / "." / "bank.h5"
    fails_cleanly(cli, tmp_path, "build-bank", bank, "-o", other_spelling, "--size", "0", "--force",
                  says=("is the input", "bank.h5"))
    fails_cleanly(cli, tmp_path, "sample", "--bank", bank, "-o", bank, "--force", "--patch-size", "3",
                  says=("is the input",))
    fails_cleanly(cli, tmp_path, "sample", "--bank", bank, "--png", bank, "--force", "--patch-size", "3",
                  "-o", tmp_path / "r.h5", says=("--png", "is the input"))
    fails_cleanly(cli, tmp_path, "locality-scan", "-r", bank, "--bank", d / "bank.h5", "-o", bank, "--force",
                  says=("is the input",))


@pytest.mark.parametrize("args, says", [
    (["sample", "--machine", "wiener", "--patch-size", "3"], "machine 'wiener' has no parameter 'patch_size'"),
    (["sample", "--machine", "is", "--schedule", "paper:MNIST_ResNet_zeros"], "machine 'is' has no parameter 'patch_size'"),
    (["mosaic", "{run}", "--max-pngs", "-1", "-o", "{tmp}/mos"], "--max-pngs must be 0 or more"),
    (["locality-scan", "-r", "{run}", "--machine", "ls", "--batch-size", "0", "-o", "{tmp}/s.json"],
     "--batch-size must be at least 1"),
    (["locality-scan", "-r", "{run}", "--machine", "ls", "-o", "{tmp}/s.json", "--plot", "{tmp}/figs",
      "--overlay", "paper:NOPE"], "unknown paper schedule"),
])
def test_options_refused_before_any_work(cli, d, tmp_path, args, says):
    """Options a machine or command cannot use are refused before anything is written (no run file, no
    schedule JSON, no mosaic directory)."""
    args = [a.format(run=d / "run.h5", tmp=tmp_path) for a in args]
    if args[0] == "sample":
        args += ["--bank", str(d / "bank.h5"), "--steps", "2", "-n", "1", "-o", str(tmp_path / "r.h5")]
    else:
        args += ["--bank", str(d / "bank.h5")] if args[0] == "locality-scan" else []
    fails_cleanly(cli, tmp_path, *args, says=(says,))


def test_no_message_is_built_from_an_exception_class_name():
    """Messages say why in words (elscli.errors.reason), never ``type(exc).__name__``: a guard over the sources."""
    import re

    root = Path(__file__).resolve().parents[1] / "elscli"
    pattern = re.compile(r"type\((exc|e|err|error)\)\.__name__|(exc|err)\.__class__\.__name__")
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
