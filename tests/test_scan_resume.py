"""locality-scan at scale: stopping and resuming (a partial scan file, --resume, signals, hard kills), progress
lines in batch logs, the table's quartiles as patch sizes, and scans along forward-noised held-out images."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from elscli import machines
from elscli import reference as R
from elscli.analysis import aggregate as A
from elscli.analysis import scan as S
from elscli.analysis.calibrate import calibrate
from elscli.bank import Bank
from elscli.errors import ElscliError
from elscli.noise import scales, time_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"
TRUE_SCHEDULE = [9, 7, 5, 5, 3]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A bank of 24 digits (16x16 crops) and a 'network' that is bbELS with TRUE_SCHEDULE, recorded with 6
    samples on 5 steps and 4 held-out digits noised forward to the same times."""
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    d = tmp_path_factory.mktemp("scan")
    g = np.load(GOLDEN)["bank_images"][:, :, 8:24, 8:24]
    bank = Bank.from_arrays(np.round((g[:24] + 1) * 127.5).astype(np.uint8))
    bank.save(d / "bank.h5")
    times = time_grid(5)
    by_time = {round(float(t), 9): p for t, p in zip(times[:-1], TRUE_SCHEDULE)}

    def eps_fn(x, t, labels):
        a, b = scales(t)
        return (x - a * machines.denoise("bbels", x, t, bank, by_time[round(float(t), 9)])) / b

    seeds = np.random.default_rng(1).standard_normal((6, 1, 16, 16)).astype(np.float32)
    held_out = g[40:44]
    R.record(eps_fn, seeds, times, path=d / "net.npz", forward_images=held_out)
    return d, bank


def run_cli(d, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update({"ELSCLI_TREE_CACHE": "off", **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "elscli", "locality-scan", "-r", "net.npz", "--bank", "bank.h5",
                             "--machine", "bbels", *args], cwd=d, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_stop_and_resume_give_the_uninterrupted_scan(setting):
    d, bank = setting
    ref = R.read(d / "net.npz")
    full = S.scan(ref, bank, "bbels", [3, 5, 7, 9], batch_size=4)
    saved = []
    calls = iter(range(1000))
    part = S.scan(ref, bank, "bbels", [3, 5, 7, 9], batch_size=4, checkpoint=lambda sc: saved.append(sc.done.sum()),
                  should_stop=lambda: next(calls) >= 7)
    assert not part.finished and part.done.sum() == saved[-1] > 0
    assert np.isnan(part.similarity[~part.done]).all()
    assert (part.best[~part.done.all(axis=1)] == -1).all()
    with pytest.raises(ElscliError, match="unfinished"):
        part.schedule()
    resumed = S.scan(ref, bank, "bbels", [3, 5, 7, 9], batch_size=3, resume=part)     # other batches: same values
    assert resumed.finished
    np.testing.assert_array_equal(resumed.similarity, full.similarity)
    np.testing.assert_array_equal(resumed.best, full.best)
    with pytest.raises(ElscliError, match="cannot resume"):
        S.scan(ref, bank, "bbels", [3, 5, 7], resume=part)
    with pytest.raises(ElscliError, match="cannot resume: the scan file has metric"):
        S.scan(ref, bank, "bbels", [3, 5, 7, 9], metric="l2", resume=part)


def test_unfinished_scans_do_not_merge(setting, tmp_path):
    d, bank = setting
    ref = R.read(d / "net.npz")
    calls = iter(range(1000))
    part = S.scan(ref, bank, "bbels", [3, 5], shard=(0, 2), should_stop=lambda: next(calls) >= 2)
    other = S.scan(ref, bank, "bbels", [3, 5], shard=(1, 2))
    from elscli.analysis.scan_merge import merge

    with pytest.raises(ElscliError, match="unfinished"):
        merge([part, other])
    part.write(tmp_path / "p.h5")
    back = S.Scan.read(tmp_path / "p.h5")
    np.testing.assert_array_equal(back.done, part.done)
    assert not back.finished


def wait_for(path: Path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_cli_interrupt_then_resume(setting, tmp_path, how):
    """The scan works in SCAN.h5.partial: a signal stops it after the evaluation in flight (exit 128 +
    signal, the scan file keeps what is computed, a hint says --resume); a hard kill leaves the partial file,
    which blocks a plain rerun and is continued by --resume.  Either way the result is the uninterrupted
    scan's."""
    d, _ = setting
    for name in ("net.npz", "bank.h5"):
        (tmp_path / name).symlink_to(d / name)
    args = ["--candidates", "3:19", "--scan-out", "scan.h5", "-o", "s.json"]
    proc = run_cli(tmp_path, *args, env={"ELSCLI_PROGRESS_INTERVAL": "0"})
    wait_for(tmp_path / "scan.h5.partial", proc)
    proc.send_signal(getattr(signal, how))
    out, err = proc.communicate(timeout=300)
    if how == "SIGKILL":
        assert proc.returncode == -9
        assert (tmp_path / "scan.h5.partial").exists() and not (tmp_path / "scan.h5").exists()
        again = run_cli(tmp_path, *args)
        _, err2 = again.communicate(timeout=300)
        assert again.returncode == 1 and "--resume" in err2 and "interrupted scan" in err2
    else:
        assert proc.returncode == 128 + getattr(signal, how), err
        assert f"stopped by {how}" in err and "--resume" in err
        assert not (tmp_path / "scan.h5.partial").exists()
        part = S.Scan.read(tmp_path / "scan.h5")
        assert 0 < part.done.sum() < part.done.size
        assert not (tmp_path / "s.json").exists()
        again = run_cli(tmp_path, *args)
        _, err2 = again.communicate(timeout=300)
        assert again.returncode == 1 and "unfinished scan" in err2 and "--resume" in err2
    resumed = run_cli(tmp_path, *args, "--resume", "--json")
    out3, err3 = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err3
    assert not (tmp_path / "scan.h5.partial").exists()
    fresh = run_cli(tmp_path, "--candidates", "3:19", "--scan-out", "fresh.h5", "--quiet")
    assert fresh.wait(timeout=600) == 0
    a, b = S.Scan.read(tmp_path / "scan.h5"), S.Scan.read(tmp_path / "fresh.h5")
    assert a.finished
    np.testing.assert_array_equal(a.similarity, b.similarity)
    assert (tmp_path / "s.json").exists()


def test_progress_lines_in_a_batch_log(setting, tmp_path, monkeypatch):
    """Not a terminal: plain lines with the steps done, the similarities computed of samples x candidates x
    steps, and an ETA; a final line with the total time."""
    d, bank = setting
    log = io.StringIO()
    calibrate(reference=d / "net.npz", bank=bank, machine="bbels", candidates="3:7", quiet=False,
              progress_stream=log, handle_signals=False, progress_interval=0)
    lines = log.getvalue().strip().splitlines()
    assert len(lines) >= 5
    total = 6 * 3 * 5
    assert all(f"/{total} similarities" in ln and "/5 steps" in ln for ln in lines)
    assert all("ETA" in ln for ln in lines[:-1]) and " in " in lines[-1]
    assert lines[-1].startswith(f"locality-scan bbels: 5/5 steps, {total}/{total} similarities (100%)")


def test_quartiles_are_patch_sizes():
    best = np.array([[3, 11], [5, 11], [7, 13], [9, 15], [11, 15], [13, 17]])     # 6 samples, 2 steps
    sp = A.spread(best)
    np.testing.assert_array_equal(sp["q1"], [5, 11])
    np.testing.assert_array_equal(sp["median"], [7, 13])
    np.testing.assert_array_equal(sp["q3"], [11, 15])
    for q in sp.values():
        assert all(int(v) in set(best[:, j]) for j, v in enumerate(q))
    interpolated = np.percentile(best, 25, axis=0)
    assert interpolated[0] not in set(best[:, 0])                                   # what the table used to show


def test_cli_table_prints_sizes(cli, tmp_path):
    """Four samples whose best sizes at the one step are 3, 5, 9 and 11: the table's quartiles are sizes of
    those (3–11), not interpolated even numbers (the linear quartiles 4.5 and 9.5 printed as 4–10)."""
    cands = np.array([3, 5, 7, 9, 11])
    sim = np.zeros((4, 5, 1))
    for i, k in enumerate([0, 1, 3, 4]):
        sim[i, k, 0] = 1.0
    S.Scan(sample_index=np.arange(4), candidates=cands, times=np.array([0.5]), similarity=sim, machine="bbels",
           num_reference_samples=4).write(tmp_path / "s.h5")
    res = cli("locality-scan", tmp_path / "s.h5")
    assert res.exit_code == 0, res.stderr
    (row,) = [ln for ln in res.stdout.splitlines() if ln.startswith("│ 0.500")]
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[1] == "5" and cells[2] == "3–11" and cells[3] == "3–11"
    res = cli("locality-scan", tmp_path / "s.h5", "--json")
    step = __import__("json").loads(res.stdout)["per_step"][0]
    assert (step["q1"], step["q3"]) == (3, 11)


def test_forward_states_recover_the_schedule(setting, tmp_path):
    """Along held-out digits noised forward, the 'network' (bbELS with TRUE_SCHEDULE) is best matched by its
    own size at every step."""
    d, bank = setting
    ref = R.read(d / "net.npz")
    assert ref.forward is not None and ref.forward.eps.shape == (4, 5, 1, 16, 16)
    sc = S.scan(ref, bank, "bbels", [3, 5, 7, 9, 11], states="forward")
    assert sc.states == "forward" and sc.best.shape == (4, 5)
    np.testing.assert_array_equal(sc.best, np.array(TRUE_SCHEDULE)[None, :].repeat(4, 0))
    cal = calibrate(reference=d / "net.npz", bank=bank, machine="bbels", candidates="3:11", states="forward",
                    scan_out=tmp_path / "fw.h5", output=tmp_path / "fw.json", handle_signals=False)
    assert list(cal.schedule.patch_sizes) == TRUE_SCHEDULE and cal.warnings == []
    assert S.Scan.read(tmp_path / "fw.h5").states == "forward"
    with pytest.raises(ElscliError, match="different states"):
        from elscli.analysis.scan_merge import merge

        merge([S.scan(ref, bank, "bbels", [3, 5], states="forward", shard=(0, 2)),
               S.scan(ref, bank, "bbels", [3, 5], shard=(1, 2))])


def test_forward_images_in_the_bank_are_flagged(setting, tmp_path):
    d, bank = setting
    ref = R.read(d / "net.npz")
    leaky = R.Reference(seeds=ref.seeds, times=ref.times, x=ref.x, eps=ref.eps, labels=ref.labels,
                        forward=R.ForwardStates(x0=bank.images[:2].copy(), noise=ref.forward.noise[:2],
                                                times=ref.forward.times, eps=ref.forward.eps[:2],
                                                labels=ref.forward.labels[:2]))
    R.write(leaky, tmp_path / "leaky.npz")
    cal = calibrate(reference=tmp_path / "leaky.npz", bank=bank, machine="ls", candidates="3,5", states="forward",
                    handle_signals=False)
    assert any("not held out" in w for w in cal.warnings)


def test_forward_section_errors(setting, tmp_path):
    d, bank = setting
    ref = R.read(d / "net.npz")
    plain = R.Reference(seeds=ref.seeds, times=ref.times, x=ref.x, eps=ref.eps, labels=ref.labels)
    with pytest.raises(ElscliError, match="no forward-noised states"):
        S.scan(plain, bank, "ls", [3], states="forward")
    with pytest.raises(ElscliError, match="--states must be one of"):
        S.scan(ref, bank, "ls", [3], states="backward")
    with pytest.raises(ElscliError, match="forward_images must be"):
        R.record(lambda x, t, l: x, ref.seeds, time_grid(2), forward_images=np.zeros((2, 1, 8, 8)))
    np.savez(tmp_path / "torn.npz", seeds=ref.seeds, times=ref.times, forward_x0=ref.forward.x0)
    with pytest.raises(ElscliError, match="forward-noised section lacks"):
        R.read(tmp_path / "torn.npz")


def test_resume_with_nothing_to_resume_says_so_and_scans(setting, tmp_path):
    """--resume on a scan file that does not exist yet (an array task's first attempt) scans from the start
    and says so in one line; the result is the plain scan's."""
    d, _ = setting
    for name in ("net.npz", "bank.h5"):
        (tmp_path / name).symlink_to(d / name)
    proc = run_cli(tmp_path, "--candidates", "3:5", "--scan-out", "scan.h5", "--resume", "--quiet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "nothing to resume at 'scan.h5'" in err and "from the beginning" in err
    plain = run_cli(tmp_path, "--candidates", "3:5", "--scan-out", "plain.h5", "--quiet")
    _, err2 = plain.communicate(timeout=300)
    assert plain.returncode == 0 and "nothing to resume" not in err2
    a, b = S.Scan.read(tmp_path / "scan.h5"), S.Scan.read(tmp_path / "plain.h5")
    np.testing.assert_array_equal(a.similarity, b.similarity)
