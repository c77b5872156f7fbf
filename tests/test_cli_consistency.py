"""``elscli consistency`` through the real entry point: the table, JSON, CSV and plots on real runs and a
reference, the agreement with the reference, the sweep, and bad input (one line on stderr, exit 1)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from elscli import reference as R
from elscli.analysis import consistency as C
from elscli.bank import Bank, build_bank
from elscli.noise import time_grid

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A bank of 40 bundled digits, an LS run of 6 samples, an IS run from its seeds, and a 'network'
    reference from the same seeds whose finals are 3 training digits and 3 digits with shuffled 4x4 blocks."""
    from elscli import runs
    from tests.test_consistency import shuffle_blocks

    d = tmp_path_factory.mktemp("consistency")
    full, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    pick = np.arange(0, 1000, 25)
    bank = Bank.from_arrays(full.images[pick], full.labels[pick])
    bank.save(d / "bank.h5")
    runs.sample(d / "bank.h5", machine="ls", patch_size=5, steps=3, num_samples=6, seed=1, output=d / "ls.h5")
    in_memory = Bank.from_arrays(full.images[pick], full.labels[pick])         # never saved: no path recorded
    runs.sample(in_memory, machine="is", from_seeds=d / "ls.h5", output=d / "is.h5")
    run = runs.Run.open(d / "ls.h5")
    finals = np.concatenate([full.images[[1, 301, 601]], shuffle_blocks(full.images[[2, 302, 602]])])
    times = np.asarray(run.times)
    x = np.zeros((6, len(times)) + finals.shape[1:], np.float32)
    x[:, 0] = run.seeds
    x[:, -1] = finals
    R.write(R.Reference(seeds=np.asarray(run.seeds), times=times, x=x,
                        eps=np.zeros((6, len(times) - 1) + finals.shape[1:], np.float32),
                        labels=np.full(6, -1, np.int64)), d / "net.npz")
    rgb = Bank.from_arrays(np.zeros((4, 3, 32, 32), np.uint8))
    rgb.save(d / "rgb.h5")
    return d


def one_line_error(res, *needles):
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elscli: error:"), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert res.stdout == ""


def test_table_json_csv_and_plots(cli, files, tmp_path):
    d = files
    res = cli("consistency", d / "ls.h5", d / "is.h5", "--bank", d / "bank.h5", "--reference", d / "net.npz")
    assert res.exit_code == 0, res.stderr
    for needle in ("spatial consistency against", "median [q1–q3]", "bank", "network", "ls", "is",
                   "inconsistent samples: network vs each run", "Cohen's κ"):
        assert needle in res.stdout, needle

    res = cli("consistency", d / "ls.h5", d / "is.h5", "--bank", d / "bank.h5", "--reference", d / "net.npz",
              "--json", "--plot", tmp_path / "figs")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["score_features"] == ["components", "end_points"] and out["level"] == 0.95
    assert out["bank"]["images"] == 40 and out["bank"]["inconsistent_fraction"] <= 0.05
    assert set(out["inputs"]) == {"network", "ls", "is"}
    # the reference: its three shuffled-block digits are inconsistent, its three training digits are not
    net = [r for r in out["per_sample"] if r["input"] == "network"]
    assert [r["inconsistent"] for r in net] == [False, False, False, True, True, True]
    assert out["inputs"]["network"]["inconsistent_count"] == 3
    assert out["inputs"]["is"]["copy_fraction"] == 1.0          # IS copies the training digits
    # the agreement rows are the 2x2 tables of the per-sample flags, matched by seeds (same order here)
    for name in ("ls", "is"):
        flags = [r["inconsistent"] for r in out["per_sample"] if r["input"] == name]
        a = C.agreement([r["inconsistent"] for r in net], flags).as_dict()
        got = out["agreement_with_reference"][name]
        assert {k: got[k] for k in a if k != "spearman_tail"} == {k: v for k, v in a.items() if k != "spearman_tail"}
        assert got["spearman_tail"] is None or -1 <= got["spearman_tail"] <= 1
    assert len(out["per_sample"]) == 18
    names = {Path(p).name for p in out["plots"]}
    assert names == {"histograms.png", "grid-network.png", "grid-ls.png", "grid-is.png", "agreement.png", "paired.png"}
    for p in out["plots"]:
        assert Path(p).stat().st_size > 5000

    res = cli("consistency", d / "ls.h5", "--bank", d / "bank.h5", "--csv")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 6
    assert list(rows[0]) == ["input", "sample", "label", "ink_fraction", "components", "holes", "end_points",
                             "branch_points", "tail_probability", "bank_percentile", "inconsistent", "copy"]


def test_figures_have_no_overlapping_texts(cli, files, tmp_path, monkeypatch):
    """Every figure of --plot: no title over the column numbers (the paired grid's suptitle sat on its "#k"
    titles), no label over a panel or outside the figure — for 6 samples and for the paired grid's 16 columns."""
    from figures import capture_layout_faults

    d = files
    faults = capture_layout_faults(monkeypatch)
    res = cli("consistency", d / "ls.h5", d / "is.h5", "--bank", d / "bank.h5", "--reference", d / "net.npz",
              "--plot", tmp_path / "figs")
    assert res.exit_code == 0, res.stderr
    assert set(faults) == {"histograms.png", "grid-network.png", "grid-ls.png", "grid-is.png", "agreement.png",
                           "paired.png"}
    assert all(v == [] for v in faults.values()), "; ".join(f"{k}: {f}" for k, v in faults.items() for f in v)


def test_values_match_the_library(cli, files):
    """The CLI's per-sample numbers are the library's on the same finals."""
    d = files
    res = cli("consistency", d / "ls.h5", "--bank", d / "bank.h5", "--json", "--features",
              "components,holes,end_points,branch_points", "--threshold", "0.2")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    bank = Bank.open(d / "bank.h5")
    from elscli.runs import Run

    run = Run.open(d / "ls.h5")
    dist = C.BankDistribution.from_images(bank.images, bank.labels, score_features=C.FEATURES, threshold=0.2)
    topo = C.topology(run.final, 0.2)
    s = dist.score(topo, run.labels)
    assert [r["components"] for r in out["per_sample"]] == topo["components"].tolist()
    assert [r["end_points"] for r in out["per_sample"]] == topo["end_points"].tolist()
    assert np.allclose([r["tail_probability"] for r in out["per_sample"]], s.tail)
    assert out["threshold"] == 0.2


def test_reference_alone(cli, files):
    res = cli("consistency", "--bank", files / "bank.h5", "--reference", files / "net.npz", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert list(out["inputs"]) == ["network"] and "agreement_with_reference" not in out


def test_the_bank_recorded_in_the_run_is_the_default(cli, files, monkeypatch):
    monkeypatch.delenv("ELSCLI_BANK", raising=False)
    res = cli("consistency", files / "ls.h5", "--json")          # sampled from the bank's path: recorded
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["bank"]["images"] == 40 and out["bank_path"] == str(files / "bank.h5")
    one_line_error(cli("consistency", files / "is.h5"), "give --bank")     # sampled from an in-memory bank


@pytest.mark.parametrize("args, needles", [
    ([], ("give run files",)),
    (["{d}/ls.h5", "--bank", "{d}/rgb.h5"], ("line images", "3 channels")),
    (["{d}/ls.h5", "--bank", "{d}/bank.h5", "--json", "--csv"], ("--json or --csv",)),
    (["{d}/ls.h5", "--bank", "{d}/nope.h5"], ("does not exist",)),
    (["{d}/ls.h5", "--bank", "{d}/bank.h5", "--features", "components,loops"], ("unknown feature 'loops'",)),
    (["{d}/ls.h5", "--bank", "{d}/bank.h5", "--level", "1.5"], ("level",)),
    (["{d}/ls.h5", "--bank", "{d}/bank.h5", "--sweep"], ("--sweep needs at least two runs",)),
    (["{d}/ls.h5", "{d}/is.h5", "--bank", "{d}/bank.h5", "--sweep"], ("same schedule scale 1",)),
    (["{d}/missing.h5", "--bank", "{d}/bank.h5"], ("does not exist",)),
    (["{d}/bank.h5", "--bank", "{d}/bank.h5"], ("bank",)),
])
def test_bad_input_is_one_line(cli, files, args, needles):
    res = cli("consistency", *[a.format(d=files) for a in args])
    one_line_error(res, *needles)


def test_real_network_and_bank(cli, shared_data, tmp_path):
    """The command on the real fixtures: the ResNet's 32 finals against all of mnist-5k."""
    bank = tmp_path / "mnist5k.h5"
    assert cli("build-bank", shared_data / "mnist-5k", "-o", bank).exit_code == 0
    ref = shared_data / "reference-resnet-mnist" / "trajectories.npz"
    res = cli("consistency", "--bank", bank, "--reference", ref, "--json", "--plot", tmp_path)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["bank"]["images"] == 5000 and out["bank"]["inconsistent_fraction"] <= 0.05
    assert len(out["per_sample"]) == 32 and out["inputs"]["network"]["samples"] == 32
    # what the README reports: the briefly trained network's mosaics are often more complex than any digit
    assert out["inputs"]["network"]["inconsistent_fraction"] > 2 * out["bank"]["inconsistent_fraction"]
    assert (tmp_path / "grid-network.png").exists() and (tmp_path / "histograms.png").exists()
