"""The analysis commands through the real entry point: compare, mosaic, locality-scan; bad input; and the
end-to-end check on real data (reference-resnet-mnist against mnist-5k, few samples so it runs in CI)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from elscli import machines
from elscli import reference as R
from elscli.noise import scales, time_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOLDEN = SHARED / "golden" / "reference-scores-mnist.npz"
REF_NPZ = SHARED / "reference-resnet-mnist" / "trajectories.npz"
TRUE_SCHEDULE = [7, 5, 3]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny bank file, a reference recorded from LS with TRUE_SCHEDULE, and LS/IS runs from its seeds."""
    if not GOLDEN.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    from elscli import runs
    from elscli.bank import Bank

    d = tmp_path_factory.mktemp("analysis")
    imgs = np.ascontiguousarray(np.load(GOLDEN)["bank_images"][:16, :, 8:24, 8:24])
    bank = Bank.from_arrays(imgs)
    bank.save(d / "bank.h5")
    times = time_grid(3)

    def eps_fn(x, t, labels):
        a, b = scales(t)
        P = TRUE_SCHEDULE[int(np.argmin(np.abs(times[:-1] - t)))]
        return (x - a * machines.denoise("ls", x, t, bank, P)) / b

    seeds = np.random.default_rng(3).standard_normal((4, 1, 16, 16)).astype(np.float32)
    R.record(eps_fn, seeds, times, path=d / "net.npz")
    runs.sample(bank, machine="ls", patch_size=3, from_seeds=d / "net.npz", output=d / "ls.h5")
    runs.sample(bank, machine="is", from_seeds=d / "net.npz", output=d / "is.h5")
    other = np.random.default_rng(9).standard_normal((4, 1, 16, 16)).astype(np.float32)
    R.record(eps_fn, other, times, path=d / "other-seeds.npz")
    Bank.from_arrays(np.load(GOLDEN)["bank_images"][:4]).save(d / "bank32.h5")
    np.savez(d / "noeps.npz", seeds=seeds, times=times, x=np.zeros((4, 4, 1, 16, 16), np.float32))
    return d


def one_line_error(res, *needles):
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elscli: error:"), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert res.stdout == ""


def test_compare_montage_rows_say_what_they_are(cli, files, tmp_path, monkeypatch):
    """The side-by-side grid labels the reference's row by what it is (the network, and its file), not by the
    file's stem ("net"), and each run's row by its machine; no text overlaps another or a panel."""
    from figures import capture_layout_faults

    from elscli.analysis import plots

    d = files
    labels = {}
    real = plots.side_by_side

    def spy(columns, path, **kw):
        labels["rows"] = list(columns)
        return real(columns, path, **kw)

    monkeypatch.setattr(plots, "side_by_side", spy)
    faults = capture_layout_faults(monkeypatch)
    (d / "run-1.h5").write_bytes((d / "ls.h5").read_bytes())       # a run whose name is not its machine
    res = cli("compare", d / "net.npz", d / "run-1.h5", "--baseline", d / "is.h5", "--plot", tmp_path / "p")
    assert res.exit_code == 0, res.stderr
    assert labels["rows"] == ["network (net.npz)", "ls (run-1.h5)", "is"]
    res = cli("compare", d / "is.h5", d / "ls.h5", "--plot", tmp_path / "q")     # a run as the reference
    assert res.exit_code == 0, res.stderr
    assert labels["rows"] == ["is", "ls"]
    assert faults and all(v == [] for v in faults.values()), "; ".join(f"{k}: {f}" for k, v in faults.items() for f in v)


def test_compare_table_json_csv_plots(cli, files, tmp_path):
    d = files
    res = cli("compare", d / "net.npz", d / "ls.h5", "--baseline", d / "is.h5")
    assert res.exit_code == 0, res.stderr
    assert "agreement with net over 4 samples" in res.stdout and "beats is" in res.stdout
    res = cli("compare", d / "net.npz", d / "ls.h5", "--baseline", d / "is.h5", "--json", "--plot", tmp_path / "p")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["num_samples"] == 4 and set(out["inputs"]) == {"ls", "is"}
    assert 0 <= out["inputs"]["ls"]["fraction_beats_baseline"] <= 1
    assert len(out["per_sample"]) == 8
    assert {Path(p).name for p in out["plots"]} == {"scatter-ls.png", "side-by-side.png"}
    res = cli("compare", d / "net.npz", d / "ls.h5", "--csv")
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "sample,input,machine,r,r2,cosine,mse" and len(lines) == 5
    res = cli("compare", d / "is.h5", d / "ls.h5", "--bank", d / "bank.h5", "--nearest", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["inputs"]["is"]["copy_fraction"] == 1.0           # IS memorises
    assert out["inputs"]["ls"]["copy_fraction"] < 1.0


def test_compare_bad_input(cli, files):
    d = files
    one_line_error(cli("compare", d / "net.npz", d / "other-seeds.npz"), "match no sample")
    one_line_error(cli("compare", d / "net.npz", REF_NPZ if REF_NPZ.exists() else d / "bank32.h5"))
    one_line_error(cli("compare", d / "net.npz", d / "missing.h5"), "does not exist")
    one_line_error(cli("compare", d / "net.npz", d / "bank.h5"), "elscli.bank")
    one_line_error(cli("compare", d / "net.npz"), "at least two")
    one_line_error(cli("compare", d / "ls.h5", "--nearest"), "--bank")


def test_compare_warns_on_time_grids(cli, files, tmp_path):
    from elscli import runs
    from elscli.bank import Bank

    bank = Bank.open(files / "bank.h5")
    run = runs.sample(bank, machine="ls", patch_size=3, from_seeds=files / "net.npz")
    run.arrays["times"] = np.array([0.95, 0.5, 0.2, 0.0])
    run.save(tmp_path / "shifted.h5")
    res = cli("compare", files / "net.npz", tmp_path / "shifted.h5")
    assert res.exit_code == 0 and "warning: time grids differ" in res.stderr


def test_locality_scan_recovers_schedule(cli, files, tmp_path):
    d = files
    res = cli("locality-scan", "-r", d / "net.npz", "--bank", d / "bank.h5", "--machine", "ls",
              "--candidates", "3:9", "-o", tmp_path / "s.json", "--scan-out", tmp_path / "scan.h5",
              "--plot", tmp_path, "--overlay", "paper:MNIST_ResNet_zeros", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["schedule"]["patch_sizes"] == TRUE_SCHEDULE
    assert json.loads((tmp_path / "s.json").read_text())["patch_sizes"] == TRUE_SCHEDULE
    assert (tmp_path / "schedule-ls.png").exists() and (tmp_path / "scan.h5").exists()
    # shards, then merge
    for i in range(2):
        res = cli("locality-scan", "-r", d / "net.npz", "--bank", d / "bank.h5", "--machine", "ls",
                  "--candidates", "3:9", "--shard", f"{i}/2", "--scan-out", tmp_path / "part-{shard}.h5", "-q")
        assert res.exit_code == 0, res.stderr
    res = cli("locality-scan", tmp_path / "part-0.h5", "-o", tmp_path / "merged.json")
    assert res.exit_code == 1 and "partial scan" in res.stderr
    res = cli("locality-scan", tmp_path / "part-0.h5", "-o", tmp_path / "subset.json", "--allow-partial")
    assert res.exit_code == 0 and "covers 2 of 4" in res.stderr
    res = cli("locality-scan", tmp_path / "part-0.h5", tmp_path / "part-1.h5", "-o", tmp_path / "merged.json")
    assert res.exit_code == 0, res.stderr
    written = json.loads((tmp_path / "merged.json").read_text())
    assert written["patch_sizes"] == TRUE_SCHEDULE and written["noise_schedule"] == "cosine-legacy"
    # ... it names the reference's noise schedule: sampling on another one is refused, nothing written
    res = cli("sample", "--bank", d / "bank.h5", "--machine", "ls", "--schedule", tmp_path / "merged.json",
              "--noise-schedule", "linear", "-n", 1, "-o", tmp_path / "other.h5", "-q")
    one_line_error(res, "calibrated on noise schedule 'cosine-legacy', not 'linear'")
    assert not list(tmp_path.glob("other.h5*"))
    # the schedule drives sampling
    res = cli("sample", "--bank", d / "bank.h5", "--machine", "ls", "--schedule", tmp_path / "merged.json",
              "--from-seeds", d / "net.npz", "-o", tmp_path / "cal.h5", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["patch_sizes"] == TRUE_SCHEDULE


def test_locality_scan_bad_input(cli, files, tmp_path):
    d = files
    base = ["locality-scan", "-r", d / "net.npz", "--bank", d / "bank.h5", "-q"]
    one_line_error(cli(*base, "--candidates", "3,4"), "odd")
    one_line_error(cli("locality-scan", "-r", d / "noeps.npz", "--bank", d / "bank.h5", "-q"), "no 'eps'")
    one_line_error(cli("locality-scan", "-r", d / "net.npz", "--bank", d / "bank32.h5", "-q"), "shape")
    one_line_error(cli(*base, "--metric", "dot"), "metric")
    one_line_error(cli(*base, "--shard", "0/2"), "--scan-out")
    one_line_error(cli(*base, "--machine", "is"), "no patch size to calibrate")
    one_line_error(cli("locality-scan", "-r", d / "net.npz", "-q"), "--bank")
    one_line_error(cli("locality-scan"), "--reference")
    one_line_error(cli("locality-scan", d / "bank.h5"), "elscli.scan")


def test_mosaic_and_sweep_commands(cli, files, tmp_path):
    d = files
    res = cli("mosaic", d / "ls.h5", "--bank", d / "bank.h5", "-o", tmp_path, "--max-pngs", "2", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["num_samples"] == 4 and len(out["pngs"]) == 2 and 0 <= out["mean_local_consistency"] <= 1
    res = cli("mosaic", d / "is.h5")
    assert res.exit_code == 0 and "distinct sources" in res.stdout
    one_line_error(cli("mosaic", d / "net.npz"), "elscli.run")
    res = cli("locality-scan", "--sweep", "3,31", "--bank", d / "bank.h5", "--machine", "ls", "-n", "3",
              "--steps", "5", "--plot", tmp_path, "--json", "-q")
    assert res.exit_code == 0, res.stderr
    pts = json.loads(res.stdout)["points"]
    assert [p["patch_size"] for p in pts] == [3, 31] and pts[1]["copy_fraction"] == 1.0
    assert (tmp_path / "sweep-ls.png").exists()


# ----------------------------------------------------------------------------- end to end on real data

def mnist_bank_images(n):
    """The first n digits of mnist-5k, resized 28->32 with Pillow bilinear on the 8-bit image."""
    from PIL import Image

    with gzip.open(SHARED / "mnist-5k" / "train-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    im = np.stack([np.asarray(Image.fromarray(u).resize((32, 32), Image.BILINEAR)) for u in raw])
    return (im.astype(np.float32) / 127.5 - 1)[:, None]


@pytest.mark.slow
def test_end_to_end_real_reference(cli, tmp_path):
    """Calibrate bbELS on the real network's trajectories, sample bbELS and IS from its seeds, compare.

    CI-sized: 2 samples, a 150-image slice of mnist-5k and 3 candidates (the documented full run in the README
    uses all 32 samples and all 5,000 images)."""
    if not REF_NPZ.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    from elscli.bank import Bank

    Bank.from_arrays(mnist_bank_images(150)).save(tmp_path / "bank.h5")
    ref = R.read(REF_NPZ)
    small = R.Reference(seeds=ref.seeds[:2], times=ref.times, x=ref.x[:2], eps=ref.eps[:2], labels=ref.labels[:2],
                        schedule=ref.schedule)
    R.write(small, tmp_path / "net.npz")
    res = cli("locality-scan", "-r", tmp_path / "net.npz", "--bank", tmp_path / "bank.h5", "--machine", "bbels",
              "--candidates", "3,9,15", "-o", tmp_path / "bbels.json", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    sched = json.loads(res.stdout)["schedule"]
    assert set(sched["patch_sizes"]) <= {3, 9, 15} and len(sched["patch_sizes"]) == 20
    assert sched["patch_sizes"][-1] <= sched["patch_sizes"][0]        # coarse to fine
    for machine, extra in (("bbels", ["--schedule", tmp_path / "bbels.json"]), ("is", [])):
        res = cli("sample", "--bank", tmp_path / "bank.h5", "--machine", machine, *extra, "--from-seeds",
                  tmp_path / "net.npz", "-o", tmp_path / f"{machine}.h5", "-q")
        assert res.exit_code == 0, res.stderr
    res = cli("compare", tmp_path / "net.npz", tmp_path / "bbels.h5", "--baseline", tmp_path / "is.h5", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    r2_bbels = out["inputs"]["bbels"]["r2"]["median"]
    r2_is = out["inputs"]["is"]["r2"]["median"]
    assert r2_bbels > r2_is + 0.2 and r2_bbels > 0.4, (r2_bbels, r2_is)   # measured: 0.61 vs 0.18
