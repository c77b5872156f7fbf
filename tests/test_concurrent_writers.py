"""Two real processes writing the same output (issue 13, item 1): the second — with --force or without —
is refused with one line and touches nothing; the first finishes with exit 0 and a whole file.

The first process pauses itself at a deterministic point — right after it has taken the claim on its output
(the flock on ``.NAME.lock``), or right after it has created its ``RUN.h5.partial`` — says so on a pipe and
waits until the test closes its stdin.  The second therefore always meets a live writer, whatever the
machine's load; the first is then let go and must finish as if nothing had happened.  (An earlier version
froze the first with SIGSTOP once /proc/locks showed its lock: under load the test process could be
descheduled between seeing the lock and sending the signal, and a short first writer — build-bank, a small
locality-scan — had finished and released its claim by then, so the second "got through".)"""
from __future__ import annotations

import contextlib
import hashlib
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from elscli.bank import Bank, build_bank
from elscli.outputs import claim_output, lock_path_for

REPO = Path(__file__).resolve().parents[1]
MNIST_1K = REPO / "sample_data" / "mnist-1k"


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.pop("ELSCLI_DEBUG", None)
    return e


def elscli_args(*args):
    return [sys.executable, "-m", "elscli", *map(str, args)]


def snapshot(d: Path) -> dict:
    """Every file under d (hidden ones included) with its size and content hash."""
    return {str(p.relative_to(d)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(d.rglob("*")) if p.is_file()}


def holds_flock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds a flock on ``path`` (Linux: /proc/locks lists FLOCK pid dev:inode)."""
    try:
        ino = os.stat(path).st_ino
        table = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return False
    for line in table.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[4] == str(pid) and f[5].rsplit(":", 1)[-1] == str(ino):
            return True
    return False


# The first writer, run through the real entry point (or a script) with a pause hook: after its claim on the
# output is taken (hook "claim") or after its RUN.h5.partial is created (hook "partial") it writes "paused"
# on the pipe fd it was given and blocks reading stdin until the test closes it.  Nothing else is changed.
PAUSED_WRITER = textwrap.dedent("""
    import os, sys
    fd, target, hook, argv = int(sys.argv[1]), os.path.realpath(sys.argv[2]), sys.argv[3], sys.argv[4:]
    paused = []

    def pause():
        if not paused:
            paused.append(True)
            os.write(fd, b"paused\\n")
            os.close(fd)
            sys.stdin.read()

    if hook == "claim":
        import elscli.outputs as O
        acquire = O._acquire

        def _acquire(lock, what, wait):
            fd_lock = acquire(lock, what, wait)
            if os.path.realpath(what) == target:
                pause()
            return fd_lock

        O._acquire = _acquire
    elif hook == "partial":
        import elscli.runs.execute as E
        open_partial = E._open_partial

        def _open_partial(*args, **kwargs):
            f = open_partial(*args, **kwargs)
            pause()
            return f

        E._open_partial = _open_partial
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<script>", "exec"), {"__name__": "__main__"})
    else:
        from elscli.cli import main
        main(argv)
""")


def start_paused(args, cwd, output: Path, hook: str = "claim", timeout: float = 300.0) -> subprocess.Popen:
    """Start the first writer (``args``: elscli's arguments, or ``["-c", SCRIPT, ...]``) and return once it
    has paused at ``hook`` (see PAUSED_WRITER) — a deterministic signal, not a race with the scheduler."""
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, str(w), str(output), hook, *map(str, args)],
                            cwd=cwd, env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, pass_fds=(w,))
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], timeout)
        said = os.read(r, 64) if ready else b""
    finally:
        os.close(r)
    if said != b"paused\n":
        proc.kill()
        pytest.fail(f"the first writer did not pause at {hook!r} of {output} ({said!r}): {proc.communicate()}")
    return proc


def assert_claim_held(proc: subprocess.Popen, output: Path) -> None:
    """The paused first writer really holds the flock on the output's lock file (/proc/locks, Linux)."""
    if Path("/proc/locks").exists():
        assert holds_flock(proc.pid, lock_path_for(output)), f"pid {proc.pid} holds no claim on {output}"


def assert_refused(res: subprocess.CompletedProcess, output: Path) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and lines[0].startswith("elscli: error: "), res.stderr
    assert "being written by another process" in lines[0] and output.name in lines[0]
    assert res.stdout == ""


def second_writer_is_refused(first_args, second_args, output: Path, cwd: Path):
    """Run the first writer (``first_args``: see :func:`start_paused`) until it has claimed ``output``, run
    the second (must be refused, touching nothing), let the first finish (exit 0); returns the first's
    (stdout, stderr)."""
    first = start_paused(first_args, cwd, output)
    try:
        assert_claim_held(first, output)
        before = snapshot(cwd)
        second = subprocess.run(second_args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
        after = snapshot(cwd)
        assert_refused(second, output)
        assert after == before
        out, err = first.communicate(input="", timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert not lock_path_for(output).exists()                     # released and removed
    assert not [p for p in os.listdir(cwd) if ".tmp-" in p]        # no temporary left
    return out, err


@pytest.mark.parametrize("force", [True, False], ids=["second-with-force", "second-without"])
def test_build_bank(tmp_path, mnist_dir, force):
    out = tmp_path / "b.h5"
    second_writer_is_refused(["build-bank", mnist_dir, "-o", out, "--json"],
                             elscli_args("build-bank", MNIST_1K, "-o", out, *(["--force"] if force else [])),
                             out, tmp_path)
    bank = Bank.open(out)                                          # whole, and the first writer's
    assert bank.content_hash == build_bank(mnist_dir)[0].content_hash


def test_locality_scan_outputs(tmp_path):
    """--scan-out and the schedule JSON are claimed before the scan runs."""
    rng = np.random.default_rng(0)
    from elscli import reference as R
    from elscli.noise import time_grid

    bank = Bank.from_arrays(rng.integers(0, 256, (40, 1, 12, 12), dtype=np.uint8))
    bank.save(tmp_path / "bank.h5")
    seeds = rng.standard_normal((6, 1, 12, 12)).astype(np.float32)
    R.record(lambda x, t, labels: 0.3 * x, seeds, time_grid(6), path=tmp_path / "net.npz")
    scan = tmp_path / "scan.h5"
    common = ["locality-scan", "-r", "net.npz", "--bank", "bank.h5", "--machine", "els", "--candidates", "3:9",
              "--quiet"]
    second_writer_is_refused([*common, "--scan-out", scan, "-o", "s.json"],
                             elscli_args(*common, "--scan-out", scan, "--force"), scan, tmp_path)
    from elscli.analysis.scan import Scan

    assert Scan.read(scan).complete and (tmp_path / "s.json").exists()
    # the schedule JSON is claimed from the start as well
    second_writer_is_refused([*common, "-o", "t.json"],
                             elscli_args(*common, "-o", "t.json", "--force"), tmp_path / "t.json", tmp_path)


def test_reference_record(tmp_path):
    """elscli.reference.record claims its file before running the network."""
    script = textwrap.dedent("""
        import sys, numpy as np
        from elscli import reference as R
        from elscli.errors import ElscliError
        from elscli.noise import time_grid
        seeds = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
        try:
            R.record(lambda x, t, labels: 0.5 * x, seeds, time_grid(50), path=sys.argv[1], force=len(sys.argv) > 2)
        except ElscliError as exc:          # the library's error, shown as the CLI shows it
            sys.exit(print(f"elscli: error: {exc}", file=sys.stderr) or 1)
    """)
    out = tmp_path / "net.h5"
    second_writer_is_refused(["-c", script, out], [sys.executable, "-c", script, out, "force"],
                             out, tmp_path)
    from elscli import reference as R

    assert R.read(out).num_samples == 3


def test_a_claim_is_held_once_per_process_and_nests(tmp_path):
    """Claims of one output nest within a process (a command holding it may write it); the lock file goes
    when the outermost claim ends; an existing output is checked under the claim."""
    out = tmp_path / "x.h5"
    with claim_output(out) as p:
        with claim_output(out, force=True):
            p.write_bytes(b"x")
        assert lock_path_for(out).exists()
    assert not lock_path_for(out).exists()
    from elscli.errors import ElscliError

    with pytest.raises(ElscliError, match="exists; pass --force"):
        with claim_output(out):
            pass
    assert not lock_path_for(out).exists() and out.read_bytes() == b"x"


# ------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def bank200(tmp_path_factory, mnist_dir):
    d = tmp_path_factory.mktemp("bank200")
    bank, _ = build_bank(mnist_dir, limit=200, subset_seed=0)
    bank.save(d / "b.h5")
    return d / "b.h5"


@pytest.mark.parametrize("second", [["--force"], ["--resume"], []], ids=["force", "resume", "plain"])
def test_sample_a_refused_second_run_touches_nothing(bank200, tmp_path, second):
    """The issue's commands: a run writing cw.h5.partial, and a second `sample -o cw.h5` (--force, --resume
    or neither) started while it runs.  The second is refused in one line and touches nothing (the partial
    keeps every byte); the first finishes with exit 0 and a whole file, equal to an undisturbed run."""
    common = ["sample", "--bank", bank200, "-n", 4, "--steps", 10, "--threads", 1, "--batch-size", 1, "--quiet"]
    first = start_paused([*common, "-o", "cw.h5"], tmp_path, tmp_path / "cw.h5", hook="partial")
    try:
        assert (tmp_path / "cw.h5.partial").exists()
        assert_claim_held(first, tmp_path / "cw.h5")
        before = snapshot(tmp_path)
        res = subprocess.run(elscli_args(*common, "-o", "cw.h5", *second), cwd=tmp_path, env=env(),
                             capture_output=True, text=True, timeout=300)
        after = snapshot(tmp_path)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("elscli: error: "), res.stderr
        assert after == before
        out, err = first.communicate(input="", timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert sorted(os.listdir(tmp_path)) == ["cw.h5"]
    from elscli.runs import Run

    got = Run.open(tmp_path / "cw.h5")
    assert got.complete
    subprocess.run(elscli_args(*common, "-o", "alone.h5"), cwd=tmp_path, env=env(), check=True, timeout=600)
    want = Run.open(tmp_path / "alone.h5")
    for k in ("final", "seeds", "prov_image", "prov_weight"):
        np.testing.assert_array_equal(got.arrays[k], want.arrays[k])


def test_sample_png_is_claimed_from_the_start(bank200, tmp_path):
    """--png GRID is claimed with the run: another run drawing the same grid (--force) is refused."""
    common = ["sample", "--bank", bank200, "-n", 2, "--steps", 10, "--threads", 1, "--batch-size", 1, "--quiet"]
    first = start_paused([*common, "-o", "a.h5", "--png", "grid.png"], tmp_path, tmp_path / "a.h5", hook="partial")
    try:
        assert_claim_held(first, tmp_path / "grid.png")
        before = snapshot(tmp_path)
        res = subprocess.run(elscli_args(*common, "-o", "b.h5", "--png", "grid.png", "--force"), cwd=tmp_path,
                             env=env(), capture_output=True, text=True, timeout=300)
        assert snapshot(tmp_path) == before
        assert_refused(res, tmp_path / "grid.png")
        out, err = first.communicate(input="", timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "grid.png"]


def test_merge_and_export(bank200, tmp_path):
    common = ["sample", "--bank", bank200, "-n", 4, "--steps", 2, "--quiet"]
    for i in range(2):
        subprocess.run(elscli_args(*common, "--shard", f"{i}/2", "-o", "r.h5"), cwd=tmp_path, env=env(),
                       check=True, timeout=600)
    shards = ["r-shard0of2.h5", "r-shard1of2.h5"]
    m = tmp_path / "m.h5"
    second_writer_is_refused(["merge", *shards, "-o", m],
                             elscli_args("merge", *shards, "-o", m, "--force"), m, tmp_path)
    # export is over in milliseconds: another process holds its claim instead, as a live export would
    for target in ("f.npz", "pngs"):
        out = tmp_path / target
        with held_by_another_process(out):
            before = snapshot(tmp_path)
            res = subprocess.run(elscli_args("export", m, "-o", out, "--force"), cwd=tmp_path, env=env(),
                                 capture_output=True, text=True, timeout=300)
            assert_refused(res, out)
            assert snapshot(tmp_path) == before
        subprocess.run(elscli_args("export", m, "-o", out), cwd=tmp_path, env=env(), check=True, timeout=300)
    assert len(list((tmp_path / "pngs").glob("sample_*.png"))) == 4
    assert np.load(tmp_path / "f.npz")["final"].shape[0] == 4
    assert not [p for p in tmp_path.rglob(".*")]                  # no lock or temporary file left


@contextlib.contextmanager
def held_by_another_process(output: Path):
    """Another process holds the claim on ``output`` for the block (as a writer of it would)."""
    script = ("import sys\nfrom elscli.outputs import claim_output\n"
              "with claim_output(sys.argv[1], check=False):\n    print('held', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(output)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate(input="", timeout=60)
    assert holder.returncode == 0


def test_bundled_bank_cache_built_once_by_concurrent_tasks(tmp_path):
    """Array tasks all starting at once on the bundled bank: one builds it, the others wait and use it."""
    script = f"from elscli.runs import default_bank_path; print(default_bank_path({str(tmp_path / 'cache')!r}))"
    e = env()
    procs = [subprocess.Popen([sys.executable, "-c", script], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1
    assert len(Bank.open(paths.pop())) == 1000
    assert sorted(p.name.startswith(".") for p in (tmp_path / "cache").iterdir()) == [False]
