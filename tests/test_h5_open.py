"""Every way elscli opens an HDF5 file, while the same process already holds that file open with h5py.

HDF5 refuses a second open in one process with other file-locking flags than the first; elscli reads files
without a lock, so a file opened by the user (h5py's default locking) used to be called "corrupt or
truncated".  A file held open for reading must read as usual, whatever ``locking=`` it was opened with; a
file held open for writing is refused as such, in one line, never called corrupt."""
import json

import h5py
import numpy as np
import pytest

import elscli
from elscli import reference as R
from elscli.analysis import compare as C
from elscli.analysis import scan as S
from elscli.bank import Bank, describe_bank
from elscli.errors import ElscliError
from elscli.noise import time_grid
from elscli.runs import Run, read_seed_source


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A bank, a run, a scan and an HDF5 reference, written by elscli."""
    d = tmp_path_factory.mktemp("held")
    rng = np.random.default_rng(0)
    bank = Bank.from_arrays(rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8), np.arange(6) % 2)
    bank.save(d / "bank.h5")
    elscli.sample(bank, machine="is", num_samples=2, steps=2, output=d / "run.h5", threads=1)
    seeds = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    R.record(lambda x, t, labels: 0.5 * x, seeds, time_grid(2), path=d / "ref.h5")
    sc = S.Scan(sample_index=np.arange(2), candidates=np.array([3, 5]), times=time_grid(2)[:-1],
                similarity=rng.uniform(size=(2, 2, 2)), machine="ls", num_reference_samples=2)
    sc.write(d / "scan.h5")
    return d


READERS = {
    "Bank.open": lambda d: len(Bank.open(d / "bank.h5")),
    "describe_bank": lambda d: describe_bank(str(d / "bank.h5"))["n_images"],
    "Run.open": lambda d: len(Run.open(d / "run.h5")),
    "--from-seeds run": lambda d: read_seed_source(d / "run.h5").seeds.shape[0],
    "--from-seeds reference": lambda d: read_seed_source(d / "ref.h5").seeds.shape[0],
    "Scan.read": lambda d: len(S.Scan.read(d / "scan.h5").sample_index),
    "describe_scan": lambda d: S.describe_scan(d / "scan.h5")["samples"],
    "reference.read": lambda d: R.read(d / "ref.h5").num_samples,
    "is_reference_file": lambda d: R.is_reference_file(d / "ref.h5"),
    "compare.load_outputs": lambda d: len(C.load_outputs(d / "run.h5").seeds),
}
HELD = {"Bank.open": "bank.h5", "describe_bank": "bank.h5", "Run.open": "run.h5", "--from-seeds run": "run.h5",
        "--from-seeds reference": "ref.h5", "Scan.read": "scan.h5", "describe_scan": "scan.h5",
        "reference.read": "ref.h5", "is_reference_file": "ref.h5", "compare.load_outputs": "run.h5"}


@pytest.mark.parametrize("locking", [None, True, False, "best-effort"], ids=lambda v: f"locking={v}")
@pytest.mark.parametrize("reader", list(READERS))
def test_a_file_held_open_for_reading_reads_as_usual(files, reader, locking):
    want = READERS[reader](files)
    with h5py.File(files / HELD[reader], "r", locking=locking) as held:
        assert READERS[reader](files) == want
        assert held["/"].attrs["format"]                 # the user's handle still works after elscli's close
    assert READERS[reader](files) == want


@pytest.mark.parametrize("name", ["bank.h5", "run.h5", "scan.h5", "ref.h5"])
def test_info_on_a_held_file(cli, files, name):
    want = json.loads(cli("info", files / name, "--json").stdout)
    with h5py.File(files / name, "r"):
        res = cli("info", files / name, "--json")
        assert res.exit_code == 0, res.stderr
        assert json.loads(res.stdout) == want


@pytest.mark.parametrize("reader", ["Bank.open", "Run.open", "Scan.read", "reference.read"])
def test_a_file_held_open_for_writing_is_refused_as_such(files, reader, tmp_path):
    import shutil

    shutil.copytree(files, tmp_path / "copy")
    d = tmp_path / "copy"
    with h5py.File(d / HELD[reader], "r+") as writer:
        with pytest.raises(ElscliError) as exc:
            READERS[reader](d)
        msg = str(exc.value)
        assert "open for writing elsewhere in this process" in msg and "corrupt" not in msg
        assert "\n" not in msg
        writer.attrs["still_mine"] = 1                    # the writer's handle is untouched
    assert READERS[reader](d)
