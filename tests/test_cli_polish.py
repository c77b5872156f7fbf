"""First-contact polish, through the real entry point: bad option values in elscli's own words (never the
parser's or the OS's: "Input should be…", "Value error, …", "[Errno 20]"), stdout carrying only data, odd
patch sizes said as such, ``info --verify`` whole off a terminal, options that would be accepted and ignored
refused, ``compare --nearest`` against another bank warned about, and the run summary's rate without the
kernels' compile time."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"

#: Wording of the libraries under elscli that must never reach a user's one-line error.
LEAKS = ("Input should", "Value error", "[Errno", "Errno ", "Traceback", "pydantic", "Invalid value for")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A 16x16 bank (12 labelled digits) and another bank, an npz source, a reference recorded from LS
    (with eps), an LS run from its seeds and its two shards, a mosaic-able run."""
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    from elscli import machines, runs
    from elscli import reference as R
    from elscli.bank import Bank
    from elscli.noise import scales, time_grid

    d = tmp_path_factory.mktemp("polish")
    golden = np.load(GOLDEN)["bank_images"]
    imgs = np.ascontiguousarray(golden[:12, :, 8:24, 8:24])
    bank = Bank.from_arrays(imgs, np.arange(12) % 3)
    bank.save(d / "bank.h5")
    Bank.from_arrays(np.ascontiguousarray(golden[12:20, :, 8:24, 8:24])).save(d / "other.h5")
    codes = np.round((imgs + 1) * 127.5).clip(0, 255).astype(np.uint8)
    np.savez(d / "imgs.npz", images=codes, labels=np.arange(12) % 3)
    times = time_grid(2)

    def eps_fn(x, t, labels):
        a, b = scales(t)
        return (x - a * machines.denoise("ls", x, t, bank, 3)) / b

    seeds = np.stack([np.random.default_rng([i, 0]).standard_normal((1, 16, 16)) for i in range(3)]).astype(np.float32)
    R.record(eps_fn, seeds, times, path=d / "net.npz")
    runs.sample(bank, machine="ls", patch_size=3, from_seeds=d / "net.npz", output=d / "run.h5")
    for i in range(2):
        runs.sample(bank, machine="ls", patch_size=3, steps=2, num_samples=2, shard=(i, 2),
                    output=d / "shard-{shard}.h5")
    return d


def one_line(res, code=1):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == code, (res.exit_code, res.stderr)
    assert len(lines) == 1, res.stderr
    assert res.stdout == ""
    for leak in LEAKS:
        assert leak not in lines[0], (leak, lines[0])
    return lines[0]


# ------------------------------------------------------------------ 1: our words, naming the option
@pytest.mark.parametrize("args, says, code", [
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--limit", "-5"], ("--limit must be at least 1", "'-5'"), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--limit", "0"], ("--limit must be at least 1",), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--size", "-1"], ("--size must be at least 0",), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--value-range", "1,-1"],
     ("--value-range must be one of -1,1 | 0,1 | 0,255 | none", "'1,-1'"), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "-f", "jpeg"], ("--format must be one of idx |", "'jpeg'"), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--layout", "xy"], ("--layout must be one of nchw | nhwc",), 2),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--limit", "3", "--subset-seed", "-3"],
     ("--subset-seed must be a non-negative integer",), 1),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--steps", "many"], ("--steps must be a whole number",
                                                                                 "'many'"), 2),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--seed", str(2 ** 70)],
     ("--seed must be at most 9223372036854775807",), 1),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--seed", "-1"], ("--seed must be a non-negative integer",), 1),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--schedule-scale", "x"],
     ("--schedule-scale must be a number",), 2),
    (["mosaic", "{d}/run.h5", "--tolerance=abc"], ("--tolerance must be a number", "'abc'"), 2),
    (["mosaic", "{d}/run.h5", "--bank", "{d}/bank.h5", "--tolerance", "nan"], ("--tolerance must be a number >= 0",), 1),
    (["export", "{d}/run.h5", "-o", "{tmp}/pngs", "--scale", "1.5"], ("--scale must be a whole number",), 2),
    (["consistency", "{d}/run.h5", "--bank", "{d}/bank.h5", "--level", "1"], ("--level",), 1),
])
def test_bad_option_values_in_our_words(cli, d, tmp_path, args, says, code):
    line = one_line(cli(*[a.format(d=d, tmp=tmp_path) for a in args]), code)
    for s in says:
        assert s in line, (s, line)


@pytest.mark.parametrize("args, says", [
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--label", str(10 ** 20)], "--label must be at most"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "-n", "-" + str(10 ** 20)], "--num-samples must be at most"),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--size", str(10 ** 20)], "--size must be at most"),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--size", "999999"], "--size must be at most 16384"),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--label", str(10 ** 20)], "--label must be at most"),
    (["mosaic", "{d}/run.h5", "-o", "{tmp}/m", "--max-pngs", str(10 ** 20)], "--max-pngs must be at most"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--patch-size", str(10 ** 18 + 1)],
     "patch sizes must be at most 65535"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--patch-size", "3", "--schedule-scale", "1e308"],
     "into about 10^308: patch sizes must be at most 65535"),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "--candidates", "3:" + str(10 ** 20),
      "-o", "{tmp}/s.json"], "patch sizes must be at most 65535"),
    (["export", "{d}/run.h5", "-o", "{tmp}/pngs", "--scale", "100000"], "at most 16384 (--scale 1024 or less"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--machine", "scfdm", "--sigma", "1e300"],
     "sigma must be at most 1e+150"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--machine", "is", "--temperature", "1e-320"],
     "temperature must be at least 1e-100"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--patch-size", "3", "--steps", str(10 ** 16)],
     "out of memory"),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--patch-size", "3", "-n", str(10 ** 16)], "out of memory"),
])
def test_numbers_far_too_large_are_said_so(cli, d, tmp_path, args, says):
    """Integers beyond 64 bits, patch sizes, image sizes and PNG sides beyond any use, and counts whose arrays
    cannot exist: one line in elscli's words (never "Python int too large to convert to C long", never an
    internal error)."""
    line = one_line(cli(*[a.format(d=d, tmp=tmp_path) for a in args]))
    assert says in line and "internal error" not in line and "C long" not in line, line
    assert not any(tmp_path.iterdir())


def test_option_words_maps_the_parsers_phrases():
    from elscli.errors import option_words

    assert option_words("Input should be greater than or equal to 1") == "must be at least 1"
    assert option_words("Input should be less than 3") == "must be less than 3"
    assert option_words("Input should be a valid integer, unable to parse string as an integer") == \
        "must be a whole number"
    assert option_words("Value error, '1,-1' is not one of '-1,1', '0,1', 'none'.") == "must be one of -1,1 | 0,1 | none"
    assert option_words("-5 is not in the range x>=1.") == "must be at least 1"
    assert option_words("Value error, something new") == "something new"


@pytest.mark.parametrize("make, says", [
    (lambda t: (t / "afile").write_text("x") and t / "afile" / "sub", "'{t}/afile' is a file, not a directory"),
    (lambda t: (t / "afile").write_text("x") and t / "afile", "it is a file, not a directory"),
])
def test_an_unusable_cache_directory_in_our_words(cli, tmp_path, monkeypatch, make, says):
    cache = make(tmp_path)
    monkeypatch.setenv("ELSCLI_CACHE", str(cache))
    monkeypatch.delenv("ELSCLI_BANK", raising=False)
    line = one_line(cli("sample", "-n", "1", "--steps", "2", "-o", tmp_path / "r.h5"))
    assert "ELSCLI_CACHE" in line and says.format(t=tmp_path) in line, line


def test_an_unwritable_cache_directory_is_said_so(tmp_path, monkeypatch):
    import os

    from elscli.errors import ElscliError
    from elscli.sample_data import usable_cache_dir

    assert usable_cache_dir(tmp_path / "c") == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.setattr(os, "access", lambda *a, **k: False)        # root may write anywhere: pretend
    with pytest.raises(ElscliError, match="is not writable; set ELSCLI_CACHE"):
        usable_cache_dir(tmp_path / "c")


def test_reason_drops_errno():
    from elscli.errors import reason

    assert reason(NotADirectoryError(20, "Not a directory", "/x/y")) == "Not a directory"


# ------------------------------------------------------------------ 2: stdout carries only data
def _commands(d, tmp):
    B = ["--bank", str(d / "bank.h5")]
    return [      # (args, stdout: "" nothing | "json" | "csv" | "table": data, but no "wrote" line)
        (["build-bank", d / "imgs.npz", "-o", tmp / "b.h5", "--size", "0"], ""),
        (["build-bank", d / "imgs.npz", "-o", tmp / "b2.h5", "--size", "0", "--json"], "json"),
        (["sample", *B, "--patch-size", "3", "--steps", "2", "-n", "1", "-o", tmp / "r.h5", "--png", tmp / "g.png"], ""),
        (["sample", *B, "--patch-size", "3", "--steps", "2", "-n", "1", "-o", tmp / "r2.h5", "--json"], "json"),
        (["merge", d / "shard-0.h5", d / "shard-1.h5", "-o", tmp / "m.h5"], ""),
        (["merge", d / "shard-0.h5", d / "shard-1.h5", "-o", tmp / "m2.h5", "--json"], "json"),
        (["export", d / "run.h5", "-o", tmp / "f.npz"], ""),
        (["export", d / "run.h5", "-o", tmp / "pngs"], ""),
        (["export", d / "run.h5", "-o", tmp / "f2.npz", "--json"], "json"),
        (["info", d / "run.h5"], "table"),
        (["compare", d / "net.npz", d / "run.h5", "--plot", tmp / "cmp"], "table"),
        (["compare", d / "net.npz", d / "run.h5", "--csv"], "csv"),
        (["compare", d / "net.npz", d / "run.h5", *B, "--nearest", "--json"], "json"),
        (["mosaic", d / "run.h5", *B, "-o", tmp / "mos", "--max-pngs", "1"], "table"),
        (["mosaic", d / "run.h5", "--json"], "json"),
        (["locality-scan", "-r", d / "net.npz", *B, "-m", "ls", "--candidates", "3,5", "-o", tmp / "s.json",
          "--scan-out", tmp / "s.h5", "--plot", tmp / "sc", "--quiet"], "table"),
        (["locality-scan", "--sweep", "3", *B, "-m", "ls", "-n", "1", "--steps", "2", "--plot", tmp / "sw",
          "--quiet"], "table"),
        (["consistency", d / "run.h5", *B, "--plot", tmp / "cons"], "table"),
        (["consistency", d / "run.h5", *B, "--csv"], "csv"),
    ]


def test_stdout_carries_only_data(cli, d, tmp_path):
    """Every command: notes such as "wrote FILE" go to stderr; a command whose result is a file prints nothing
    on stdout unless asked for JSON; --json/--csv print exactly that."""
    for args, kind in _commands(d, tmp_path):
        res = cli(*args)
        assert res.exit_code == 0, (args, res.stderr)
        if kind == "":
            assert res.stdout == "", (args, res.stdout)
            assert "elscli: wrote " in res.stderr, (args, res.stderr)
        elif kind == "json":
            json.loads(res.stdout)
        elif kind == "csv":
            assert res.stdout.splitlines()[0].count(",") >= 1 and "wrote" not in res.stdout, (args, res.stdout)
        else:
            assert res.stdout.strip(), args
        assert not re.search(r"^\s*(elscli: )?wrote ", res.stdout, re.M), (args, res.stdout)
        if "--plot" in args or "-o" in args and kind == "table" and args[0] != "info":
            assert "elscli: wrote " in res.stderr, (args, res.stderr)


# ------------------------------------------------------------------ 3: odd-only options say "odd"
@pytest.mark.parametrize("args, says", [
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "--candidates", "4:8", "-o", "{tmp}/s.json"],
     ("--candidates '4:8'", "must be odd", "even size 4", "5:8")),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "--candidates", "4,6", "-o", "{tmp}/s.json"],
     ("must be odd", "4, 6 are even")),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "--candidates", "3,5,8", "-o", "{tmp}/s.json"],
     ("must be odd", "8 is even")),
    (["locality-scan", "--sweep", "4,6", "--bank", "{d}/bank.h5"], ("--sweep '4,6'", "must be odd", "4, 6 are even")),
    (["locality-scan", "--sweep", "2:6", "--bank", "{d}/bank.h5"], ("--sweep '2:6'", "must be odd", "even size 2")),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--patch-size", "4"], ("--patch-size 4", "must be odd", "4 is even")),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--schedule", "6"], ("--schedule 6", "must be odd", "6 is even")),
    (["sample", "--bank", "{d}/bank.h5", "-o", "{tmp}/r.h5", "--schedule", "{tmp}/even.json"],
     ("even.json", "must be odd", "4, 6 are even")),
])
def test_even_patch_sizes_are_said_to_be_even(cli, d, tmp_path, args, says):
    (tmp_path / "even.json").write_text('{"times": [1.0, 0.5, 0.2], "patch_sizes": [4, 6, 7]}')
    line = one_line(cli(*[a.format(d=d, tmp=tmp_path) for a in args]))
    assert "cannot read" not in line, line
    for s in says:
        assert s in line, (s, line)


def test_parse_candidates_tells_even_from_unreadable():
    from elscli.analysis.scan import parse_candidates
    from elscli.errors import ElscliError

    assert parse_candidates("3:9") == [3, 5, 7, 9] and parse_candidates("1-5,9") == [1, 3, 5, 9]
    for spec, says in (("4:8", "even size 4"), ("8:4", "is empty"), ("0:5", "even size 0"), ("-3:5", "-3, -1 are not"),
                       ("3:5:2", "cannot read"), ("x", "cannot read")):
        with pytest.raises(ElscliError, match=re.escape(says)):
            parse_candidates(spec)


# ------------------------------------------------------------------ 4: info --verify whole off a terminal
def test_info_verify_is_not_cut_off_a_terminal(cli, d):
    from elscli.runs.verify import verify_run  # noqa: F401  (the checks listed come from the library)

    for f in ("run.h5", "bank.h5"):
        res = cli("info", d / f, "--verify")
        assert res.exit_code == 0, res.stderr
        assert "…" not in res.stdout, res.stdout
        checks = json.loads(cli("info", d / f, "--verify", "--json").stdout)["verified"]
        lines = [ln.strip() for ln in res.stdout.splitlines()]
        for c in checks:                    # each check whole, on one line
            assert any(ln.endswith(c) for ln in lines), (c, res.stdout)
    res = cli("info", d / "bank.h5")        # long provenance values whole too
    src = json.loads(cli("info", d / "bank.h5", "--json").stdout)
    assert "…" not in res.stdout and src["content_hash"] in res.stdout


# ------------------------------------------------------------------ 5: options accepted and ignored
@pytest.mark.parametrize("args, says", [
    (["export", "{d}/run.h5", "-o", "{tmp}/f.npz", "--scale", "4"], ("--scale", ".npz", "drop --scale")),
    (["export", "{d}/run.h5", "-o", "{tmp}/f.npz", "--channels", "0"], ("--channels", "drop --channels")),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--subset-seed", "3"], ("--subset-seed", "give --limit too")),
    (["build-bank", "{d}/imgs.npz", "-o", "{tmp}/b.h5", "--coarse"], ("--coarse", "drop --coarse")),
    (["build-bank", "{d}/bank.h5", "-o", "{tmp}/b.h5", "--layout", "nhwc"], ("--layout", "drop --layout")),
    (["build-bank", "{d}/bank.h5", "-o", "{tmp}/b.h5", "--value-range", "0,1"], ("--value-range", "drop --value-range")),
    (["mosaic", "{d}/run.h5", "--tolerance", "0.1"], ("--tolerance", "needs --bank")),
    (["mosaic", "{d}/run.h5", "--max-pngs", "3"], ("--max-pngs", "-o DIR")),
    (["consistency", "{d}/run.h5", "--bank", "{d}/bank.h5", "--grid-size", "4"], ("--grid-size", "--plot DIR")),
    (["compare", "{d}/net.npz", "{d}/run.h5", "--bank", "{d}/bank.h5"], ("--bank", "--nearest")),
    (["compare", "{d}/net.npz", "{d}/run.h5", "--per-sample", "--json"], ("--per-sample", "--json")),
    (["compare", "{d}/net.npz", "{d}/run.h5", "--per-sample", "--csv"], ("--per-sample", "--csv")),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--batch-size", "4"], ("--sweep or --batch-size",)),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--candidates", "3,5"], ("--sweep or --candidates",)),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--metric", "l2"], ("--sweep or --metric",)),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--aggregate", "mode"], ("--sweep or --aggregate",)),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--states", "forward"], ("--sweep or --states",)),
    (["locality-scan", "--sweep", "3", "--bank", "{d}/bank.h5", "--resume"], ("--sweep or --resume",)),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "-o", "{tmp}/s.json", "--steps", "4"],
     ("--steps is for --sweep only",)),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "-o", "{tmp}/s.json", "-n", "4"],
     ("--num-samples is for --sweep only",)),
    (["locality-scan", "-r", "{d}/net.npz", "--bank", "{d}/bank.h5", "-m", "ls", "-o", "{tmp}/s.json", "--seed", "1"],
     ("--seed is for --sweep only",)),
])
def test_options_that_would_be_ignored_are_refused(cli, d, tmp_path, args, says):
    line = one_line(cli(*[a.format(d=d, tmp=tmp_path) for a in args]))
    for s in says:
        assert s in line, (s, line)
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())


def test_bank_from_the_environment_is_not_refused(cli, d, monkeypatch):
    """ELSCLI_BANK set for other commands: compare without --nearest does not use it, and does not refuse it."""
    monkeypatch.setenv("ELSCLI_BANK", str(d / "bank.h5"))
    res = cli("compare", d / "net.npz", d / "run.h5", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["num_samples"] == 3


def test_export_npz_without_png_options_still_works(cli, d, tmp_path):
    res = cli("export", d / "run.h5", "-o", tmp_path / "f.npz")
    assert res.exit_code == 0, res.stderr
    res = cli("export", d / "run.h5", "-o", tmp_path / "pngs", "--scale", "2", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["files"] == 3
    from PIL import Image

    assert Image.open(next((tmp_path / "pngs").iterdir())).size == (32, 32)


# ------------------------------------------------------------------ 6: --nearest against another bank
def test_compare_nearest_warns_about_another_bank(cli, d):
    res = cli("compare", d / "net.npz", d / "run.h5", "--bank", d / "other.h5", "--nearest")
    assert res.exit_code == 0, res.stderr
    warns = [ln for ln in res.stderr.splitlines() if "warning" in ln]
    assert len(warns) == 1 and "run.h5" in warns[0] and "another bank" in warns[0], res.stderr
    js = json.loads(cli("compare", d / "net.npz", d / "run.h5", "--bank", d / "other.h5", "--nearest",
                        "--json").stdout)
    assert js["inputs"]["run"]["same_bank"] is False and js["inputs"]["net"]["same_bank"] is None
    res = cli("compare", d / "net.npz", d / "run.h5", "--bank", d / "bank.h5", "--nearest")
    assert res.exit_code == 0 and "warning" not in res.stderr, res.stderr


# ------------------------------------------------------------------ 7: the run summary's rate
def test_run_records_its_compile_seconds(d, monkeypatch):
    """runs.sample keeps the seconds the progress display counted as compiling (here: a watch that says
    everything was compiling, so they are the whole sampling loop), never more than the run took."""
    from elscli import runs
    from elscli.bank import Bank
    from elscli.runs import execute

    bank = Bank.open(d / "bank.h5")
    run = runs.sample(bank, machine="ls", patch_size=3, steps=2, num_samples=2, quiet=True)
    assert 0.0 <= run.compile_seconds <= run.elapsed

    class AllCompiling(execute.CompileWatch):
        @property
        def seconds(self) -> float:
            return 1e9

    monkeypatch.setattr(execute, "CompileWatch", AllCompiling)
    run = runs.sample(bank, machine="ls", patch_size=3, steps=2, num_samples=2, quiet=True)
    # the progress bar's window (the sampling loop) is all compiling: more than nothing, clamped to the run
    # (not the watch's 1e9); how much of elapsed the loop is depends on the machine's speed, so no ratio
    assert 0.0 < run.compile_seconds <= run.elapsed


def test_sample_rate_leaves_compile_time_out(cli, d, tmp_path, monkeypatch):
    """The summary's s/sample is (elapsed - compile) / samples, as the progress lines count it; the compile
    time is stated apart (here 7 s of compiling added to a real run)."""
    from elscli import runs

    real = runs.sample

    def with_compile(*a, **k):
        run = real(*a, **k)
        run.elapsed += 7.0
        run.compile_seconds += 7.0
        return run

    monkeypatch.setattr(runs, "sample", with_compile)
    res = cli("sample", "--bank", d / "bank.h5", "--patch-size", "3", "--steps", "2", "-n", "2",
              "-o", tmp_path / "r.h5", "--json")
    assert res.exit_code == 0, res.stderr
    js = json.loads(res.stdout)
    assert js["compile_seconds"] >= 7.0
    assert js["seconds_per_sample"] == pytest.approx((js["seconds"] - js["compile_seconds"]) / 2, abs=1e-3)
    assert js["seconds_per_sample"] < 3.5            # 7 s of compile over 2 samples would make it > 3.5
    res = cli("sample", "--bank", d / "bank.h5", "--patch-size", "3", "--steps", "2", "-n", "2",
              "-o", tmp_path / "r2.h5")
    assert res.exit_code == 0 and "s compiling kernels, not in the rate" in res.stderr, res.stderr
    rate = float(re.search(r", ([0-9.e+-]+) s/sample", res.stderr).group(1))
    assert rate < 3.5, res.stderr
