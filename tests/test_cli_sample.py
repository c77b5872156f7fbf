"""`elscli sample`, `merge`, `export` as users run them: real subprocesses for shards, threads and SIGTERM,
the in-process runner for bad input (one-line errors, exit 1, nothing lost)."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from elscli.bank import Bank, build_bank
from elscli.runs import Run

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("sample_ids", "done", "seeds", "labels", "times", "patch_sizes", "final", "prov_image", "prov_row",
            "prov_col", "prov_weight", "prov_entropy")


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    """Two real banks from the bundled sample data: 12 digits and 100 digits, centre-cropped to 16x16."""
    d = tmp_path_factory.mktemp("banks")
    full, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    small = np.concatenate([full.indices_for(c)[:3] for c in (0, 1, 2, 3)])
    every10 = np.arange(0, len(full), 10)
    for name, idx in (("small", small), ("b100", every10)):
        Bank.from_arrays(np.ascontiguousarray(full.codes[idx][:, :, 8:24, 8:24]), full.labels[idx]).save(d / f"{name}.h5")
    return {"small": d / "small.h5", "b100": d / "b100.h5"}


def env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.pop("ELSCLI_DEBUG", None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def elscli(*args, cwd, check=True, **env_extra):
    p = subprocess.run([sys.executable, "-m", "elscli", *map(str, args)], cwd=cwd, env=env(**env_extra),
                       capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"elscli {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def assert_same_run(a, b):
    ra, rb = Run.open(a), Run.open(b)
    for k in DATASETS:
        x, y = ra.arrays[k], rb.arrays[k]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert np.array_equal(x, y), k


# ------------------------------------------------------------------------------------------ clusters
def test_slurm_array_shards_then_merge_equal_one_process(banks, tmp_path):
    common = ["sample", "--bank", banks["small"], "-n", 7, "--seed", 3, "--steps", 4, "--quiet"]
    procs = [subprocess.Popen([sys.executable, "-m", "elscli", *map(str, common), "-o", "run-{shard}.h5"], cwd=tmp_path,
                              env=env(SLURM_ARRAY_TASK_ID=i, SLURM_ARRAY_TASK_COUNT=3),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    elscli(*common, "-o", "single.h5", cwd=tmp_path)
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert [Run.open(tmp_path / f"run-{i}.h5").sample_ids.tolist() for i in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    m = elscli("merge", "run-0.h5", "run-1.h5", "run-2.h5", "-o", "merged.h5", "--json", cwd=tmp_path)
    assert json.loads(m.stdout)["samples"] == 7
    assert_same_run(tmp_path / "single.h5", tmp_path / "merged.h5")


def test_thread_count_does_not_change_a_bit(banks, tmp_path):
    """1 thread and 2 (really two: each process starts Numba with NUMBA_NUM_THREADS=2, whatever the cores;
    --threads overrides SLURM_CPUS_PER_TASK) give the same bits."""
    common = ["sample", "--bank", banks["b100"], "-n", 2, "--seed", 1, "--steps", 3, "--quiet", "--label", 5]
    elscli(*common, "--threads", 1, "-o", "t1.h5", cwd=tmp_path, NUMBA_NUM_THREADS=2)
    elscli(*common, "--threads", 2, "-o", "t2.h5", cwd=tmp_path, NUMBA_NUM_THREADS=2, SLURM_CPUS_PER_TASK=1)
    assert Run.open(tmp_path / "t1.h5").params["threads"] == 1
    assert Run.open(tmp_path / "t2.h5").params["threads"] == 2
    assert_same_run(tmp_path / "t1.h5", tmp_path / "t2.h5")


PROCESSES = {"ddim": [], "ddpm": ["--noise-schedule", "linear", "--eta", 1],
             "heun-edm": ["--noise-schedule", "edm", "--sampler", "heun", "--grid", "edm"]}


@pytest.mark.parametrize("process", list(PROCESSES))
def test_sigterm_then_resume_equals_uninterrupted(banks, tmp_path, process):
    """Interrupted by SIGTERM, resumed with the command the hint gives: the same bits as one uninterrupted run,
    for deterministic DDIM, DDPM ancestral sampling (its injected noise included) and Heun on the EDM grid."""
    common = ["sample", "--bank", banks["b100"], "-n", 8, "--seed", 7, "--steps", 8, "--batch-size", 1,
              *PROCESSES[process]]
    p = subprocess.Popen([sys.executable, "-m", "elscli", *map(str, common), "-o", "run.h5", "--force"],
                         cwd=tmp_path, env=env(ELSCLI_PROGRESS_INTERVAL=0), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    for line in p.stderr:  # plain progress lines: "sample: 1/8 samples, ..."
        if line.startswith("sample: ") and not line.startswith("sample: 0/") or time.monotonic() > deadline:
            break
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "--resume" in err
    part = Run.open(tmp_path / "run.h5")
    assert 1 <= part.done.sum() < 8
    assert np.isnan(part.final[~part.done]).all() and not np.isnan(part.final[part.done]).any()
    assert not (tmp_path / "run.h5.partial").exists()
    hint = shlex.split(err.split("continue with: ")[1].splitlines()[0])   # the command the hint gives, as is
    assert hint[0] == "elscli" and "--resume" in hint and "--force" not in hint
    elscli(*hint[1:], "--quiet", cwd=tmp_path)
    elscli(*common, "-o", "whole.h5", "--quiet", cwd=tmp_path)
    assert Run.open(tmp_path / "run.h5").complete
    assert_same_run(tmp_path / "whole.h5", tmp_path / "run.h5")
    whole, resumed = Run.open(tmp_path / "whole.h5"), Run.open(tmp_path / "run.h5")
    assert (whole.noise is None) == (process != "ddpm")
    if whole.noise is not None:
        assert np.array_equal(whole.noise, resumed.noise) and whole.noise[:, :-1].std() > 0.5


# ------------------------------------------------------------------------------------------ outputs
def test_json_png_export(cli, banks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("sample", "--bank", banks["small"], "-n", 3, "--steps", 3, "--labels", "random", "-o", "r.h5",
            "--png", "grid.png", "--save-trajectory", "--json", "--quiet")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["samples_done"] == 3 and payload["complete"] and payload["steps"] == 3
    # nothing on stderr but the warning that the default (MNIST 32x32) paper schedule meets 16x16 images
    assert [ln for ln in r.stderr.splitlines() if "calibrated for MNIST (1×32×32" not in ln] == [], r.stderr
    run = Run.open("r.h5")
    assert run.x.shape == (3, 4, 1, 16, 16) and run.attrs["command_line"].startswith("elscli sample --bank")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    info = json.loads(cli("info", "r.h5", "--json").stdout)           # grid times shown to 6 decimals
    assert info["times"] == info["params"]["times"] == [1.0, 0.666667, 0.333333, 0.0]
    r = cli("export", "r.h5", "-o", "f.npz")
    assert r.exit_code == 0 and (tmp_path / "f.npz").exists()
    r = cli("export", "r.h5", "-o", "pngs", "--scale", 3, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["files"] == 3
    assert len(list((tmp_path / "pngs").glob("sample_*.png"))) == 3


def test_plain_progress_lines_go_to_stderr(cli, banks, tmp_path, monkeypatch):
    monkeypatch.setenv("ELSCLI_PROGRESS_INTERVAL", "0")
    r = cli("sample", "--bank", banks["small"], "-n", 2, "--steps", 2, "-o", tmp_path / "r.h5")
    assert r.exit_code == 0
    assert "sample: 2/2 samples, 4/4 steps (100%)" in r.stderr
    assert r.stdout == "" and "elscli: wrote " in r.stderr


# ------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def workdir(banks, tmp_path):
    (tmp_path / "even.json").write_text('{"times": [1.0, 0.5], "patch_sizes": [3, 4]}')
    (tmp_path / "empty.json").write_text('{"times": [], "patch_sizes": []}')
    np.savez(tmp_path / "ref28.npz", seeds=np.zeros((2, 1, 28, 28), np.float32), times=np.linspace(1, 0, 4))
    seeds16 = np.zeros((2, 1, 16, 16), np.float32)
    np.savez(tmp_path / "lin.npz", seeds=seeds16, times=np.linspace(1, 0, 4), schedule="linear")
    np.savez(tmp_path / "custom.npz", seeds=seeds16, times=[1.0, 0.6, 0.1, 0.0], schedule="linear")
    np.savez(tmp_path / "ddpm-no-noise.npz", seeds=seeds16, times=np.linspace(1, 0, 4), schedule="linear",
             sampler="ddim", eta=1.0)
    (tmp_path / "linear-cal.json").write_text('{"times": [1.0, 0.5], "patch_sizes": [5, 3], "noise_schedule": "linear"}')
    good = Path(banks["small"]).read_bytes()
    (tmp_path / "corrupt.h5").write_bytes(good[: len(good) // 2])
    (tmp_path / "existing.h5").write_bytes(b"an earlier result")
    return tmp_path


BAD_SAMPLE = [
    (["--schedule", "even.json"], "odd"),
    (["--schedule", "empty.json"], "no entries"),
    (["--label", "7"], "label 7 is not in the bank"),
    (["--from-seeds", "ref28.npz"], "seeds have shape (1, 28, 28) but the bank's images are (1, 16, 16)"),
    (["--shard", "3/3"], "--shard 3/3"),
    (["--labels", "some"], "--labels takes only 'random'"),
    (["--label", "1", "--labels", "random"], "not both"),
    (["--patch-size", "3", "--schedule", "5"], "not both"),
    (["-o", "existing.h5"], "exists; pass --force"),
    (["--png", "existing.h5"], "exists; pass --force"),
    (["--bank", "corrupt.h5"], "corrupt"),
    # the reverse process (issue 16)
    (["--sampler", "rk4"], "unknown sampler 'rk4' (known: ddim, euler, heun)"),
    (["--noise-schedule", "sigmoid"], "unknown noise schedule 'sigmoid'"),
    (["--grid", "karras"], "unknown grid 'karras' (known: uniform, edm)"),
    (["--eta", "-0.1"], "--eta must lie in [0, 1]"),
    (["--eta", "1.5"], "--eta must lie in [0, 1]"),
    (["--sampler", "heun", "--eta", "1"], "--eta applies to the ddim sampler only"),
    (["--sampler", "euler", "--eta", "0.5"], "--eta applies to the ddim sampler only"),
    (["--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--start-time", "0"], "--start-time must lie in (0, 1]"),
    (["--noise-schedule", "edm", "--grid", "edm", "--start-time", "1e-9"], "the edm grid needs sigma(start_time)"),
    (["--schedule", "linear-cal.json"], "calibrated on noise schedule 'linear', not 'cosine-legacy'"),
    (["--from-seeds", "lin.npz", "--noise-schedule", "cosine"], "recorded with noise schedule 'linear', not 'cosine'"),
    (["--from-seeds", "lin.npz", "--start-time", "0.5"], "--start-time cannot be combined with --from-seeds"),
    (["--from-seeds", "custom.npz", "--steps", "5"], "has a custom time grid; give --grid with --steps"),
    (["--from-seeds", "ddpm-no-noise.npz"], "holds no 'noise'"),
    # a root seed that nothing would use (the starting states, and any noise, are the file's)
    (["--from-seeds", "lin.npz", "--seed", "3"], "--seed is not used with --from-seeds here"),
    (["--from-seeds", "lin.npz", "--seed", "0"], "--seed is not used with --from-seeds here"),
]


@pytest.mark.parametrize("args, message", BAD_SAMPLE, ids=["".join(a) for a, _ in BAD_SAMPLE])
def test_bad_sample_input(cli, banks, workdir, args, message, monkeypatch):
    monkeypatch.chdir(workdir)
    before = {p.name: p.read_bytes() for p in workdir.iterdir()}
    base = ["sample", "-n", 2, "-o", "out.h5", "--quiet"]
    if "--from-seeds" not in args:
        base += ["--steps", 2]
    if "--bank" not in args:
        base += ["--bank", banks["small"]]
    r = cli(*base, *args)
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elscli: error: ") and message in lines[0], r.stderr
    after = {p.name: p.read_bytes() for p in workdir.iterdir()}
    assert after == before  # nothing written, nothing lost


def test_merging_shards_of_different_runs_is_refused(cli, banks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for seed, shard in ((1, "0/2"), (2, "1/2")):
        r = cli("sample", "--bank", banks["small"], "-n", 4, "--steps", 2, "--seed", seed, "--shard", shard,
                "-o", f"s{seed}.h5", "--quiet")
        assert r.exit_code == 0, r.stderr
    r = cli("merge", "s1-shard0of2.h5", "s2-shard1of2.h5", "-o", "m.h5")
    assert r.exit_code == 1 and "not a shard of the same run" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "m.h5").exists()
    r = cli("merge", "s1-shard0of2.h5", "-o", "m.h5")
    assert r.exit_code == 1 and "2 of 4 samples are missing" in r.stderr
    r = cli("merge", "s1-shard0of2.h5", "-o", "m.h5", "--allow-missing")
    assert r.exit_code == 0 and len(Run.open("m.h5")) == 2


def test_resume_of_a_finished_run_does_nothing(cli, banks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["sample", "--bank", banks["small"], "-n", 2, "--steps", 2, "-o", "r.h5", "--quiet", "--json"]
    assert cli(*args).exit_code == 0
    before = Run.open("r.h5").final.copy()
    r = cli(*args, "--resume")
    assert r.exit_code == 0 and json.loads(r.stdout)["samples_computed"] == 0
    np.testing.assert_array_equal(Run.open("r.h5").final, before)


# ------------------------------------------------------------------------------------------ progress
def test_progress_plain_lines_quiet_and_rate():
    import io

    from elscli.progress import Progress

    buf = io.StringIO()
    with Progress(40, "sample", unit="step", group=(10, "samples"), stream=buf, interval=0) as bar:
        for _ in range(40):
            bar.advance()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 41  # one per advance with interval 0, and a final one
    assert lines[9].startswith("sample: 1/4 samples, 10/40 steps (25%)") and "ETA" in lines[9]
    assert lines[-1].startswith("sample: 4/4 samples, 40/40 steps (100%)") and " in " in lines[-1]
    quiet = io.StringIO()
    with Progress(5, "x", quiet=True, stream=quiet, interval=0) as bar:
        bar.advance(5)
        bar.log("hello")
    assert quiet.getvalue() == ""
    slow = io.StringIO()
    with Progress(5, "scan", unit="candidate", stream=slow, interval=3600) as bar:
        bar.advance(2)
    assert slow.getvalue().splitlines() == [slow.getvalue().splitlines()[-1]]  # only the closing line
    assert "2/5 candidates (40%)" in slow.getvalue()


def test_resume_with_nothing_to_resume_says_so_and_runs(cli, banks, tmp_path, monkeypatch):
    """An array task that always passes --resume starts its first attempt that way: the run is made, and a
    one-line note says there was nothing to resume (before, it started silently)."""
    monkeypatch.chdir(tmp_path)
    args = ["sample", "--bank", banks["small"], "-n", 2, "--steps", 2, "--quiet"]
    r = cli(*args, "-o", "r.h5", "--resume")
    assert r.exit_code == 0, r.stderr
    assert "nothing to resume at 'r.h5'" in r.stderr and "from the beginning" in r.stderr
    assert Run.open("r.h5").complete
    assert cli(*args, "-o", "plain.h5").exit_code == 0
    np.testing.assert_array_equal(Run.open("r.h5").final, Run.open("plain.h5").final)
    r = cli(*args, "-o", "r.h5", "--resume")      # a finished run: nothing computed, no such note
    assert r.exit_code == 0 and "nothing to resume" not in r.stderr
