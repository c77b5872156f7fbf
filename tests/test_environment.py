"""The environment belongs to the CLI edge (issue 13, items 2 and 3).

- Slurm job arrays whose task IDs are not 0..N-1: an arithmetic array ``--array=MIN-MAX:STEP`` maps task ID to
  shard (ID - MIN)/STEP of COUNT (1-based and stepped arrays included); IDs that cannot be mapped (a list such as
  ``--array=1,3,5``, a resubmission of some tasks) give one error naming the Slurm variables and asking for
  ``--shard I/N`` — in ``sample`` and ``locality-scan`` alike.
- The library reads no Slurm or thread variables: ``elscli.sample(...)`` and the sweep compute every sample and
  use Numba's thread setting whatever ``SLURM_*`` says.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import elscli
from elscli.bank import Bank, build_bank
from elscli.cli import environment
from elscli.errors import ElscliError

REPO = Path(__file__).resolve().parents[1]
SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
         "SLURM_ARRAY_TASK_COUNT", "SLURM_CPUS_PER_TASK")


def array_env(ids, task):
    """The variables Slurm sets in the task with ID ``task`` of ``sbatch --array=ids``: a ``range`` stands for
    ``--array=MIN-MAX:STEP``, a list for ``--array=a,b,c`` (whose STEP Slurm reports as 1)."""
    step = ids.step if isinstance(ids, range) else 1
    ids = sorted(ids)
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(ids[0]), "SLURM_ARRAY_TASK_MAX": str(ids[-1]),
            "SLURM_ARRAY_TASK_STEP": str(step), "SLURM_ARRAY_TASK_COUNT": str(len(ids))}


@pytest.fixture
def clean_env(monkeypatch):
    for k in SLURM:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory) -> Path:
    """12 digits of the bundled sample data, centre-cropped to 16x16, as a bank file."""
    full, _ = build_bank(REPO / "sample_data" / "mnist-1k")
    idx = np.concatenate([full.indices_for(c)[:3] for c in (0, 1, 2, 3)])
    path = tmp_path_factory.mktemp("env") / "small.h5"
    Bank.from_arrays(np.ascontiguousarray(full.codes[idx][:, :, 8:24, 8:24]), full.labels[idx]).save(path)
    return path


# ------------------------------------------------------------------------------ the mapping itself
@pytest.mark.parametrize("ids", [range(0, 5), range(1, 6), range(0, 5, 2), range(1, 8, 3), range(7, 8)])
def test_every_task_of_an_arithmetic_array_gets_its_own_shard(ids):
    """0-based, 1-based, stepped and single-task arrays: the tasks cover shards 0..COUNT-1 exactly once."""
    shards = [environment.shard_from_slurm(array_env(ids, task)) for task in ids]
    assert shards == [(k, len(ids)) for k in range(len(ids))]


def test_the_example_of_the_issue():
    """sbatch --array=0-4:2: IDs 0, 2, 4 are shards 0/3, 1/3, 2/3 (shard 1 was never computed before)."""
    env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "4",
           "SLURM_ARRAY_TASK_STEP": "2"}
    assert [environment.shard_from_slurm({**env, "SLURM_ARRAY_TASK_ID": str(i)}) for i in (0, 2, 4)] == \
        [(0, 3), (1, 3), (2, 3)]


@pytest.mark.parametrize("ids, task", [([1, 3, 5], 3),         # the issue's list
                                       ([1, 3, 5, 9], 3),     # a list: not an arithmetic range
                                       ([3, 7], 7),           # a resubmission of two failed tasks of 0-9
                                       ([0, 1, 2, 9], 9)])    # a range plus one more task
def test_ids_that_cannot_be_mapped_ask_for_an_explicit_shard(ids, task):
    with pytest.raises(ElscliError) as err:
        environment.shard_from_slurm(array_env(ids, task))
    msg = str(err.value)
    assert "--shard I/N" in msg and f"SLURM_ARRAY_TASK_ID={task}" in msg and "SLURM_ARRAY_TASK_COUNT" in msg
    assert "\n" not in msg


def test_malformed_or_inconsistent_variables_are_refused():
    with pytest.raises(ElscliError, match="not integers"):
        environment.shard_from_slurm({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"})
    with pytest.raises(ElscliError, match="SLURM_ARRAY_TASK_COUNT"):
        environment.shard_from_slurm({"SLURM_ARRAY_TASK_ID": "1"})
    with pytest.raises(ElscliError, match="--shard I/N"):      # an ID that is not one of the array's
        environment.shard_from_slurm({**array_env(range(0, 6, 2), 0), "SLURM_ARRAY_TASK_ID": "3"})


def test_outside_an_array_and_explicit_shards():
    assert environment.shard_from_slurm({}) is None
    assert environment.resolve_shard(None, {}) == (0, 1)
    assert environment.resolve_shard(None, array_env(range(1, 4), 3)) == (2, 3)
    unmappable = array_env([1, 3, 5, 9], 5)
    assert environment.resolve_shard("1/4", unmappable) == (1, 4)       # an explicit shard wins, unread env
    assert environment.resolve_threads(None, {"SLURM_CPUS_PER_TASK": "3"}) == 3
    with pytest.raises(ElscliError, match="SLURM_CPUS_PER_TASK"):
        environment.resolve_threads(None, {"SLURM_CPUS_PER_TASK": "many"})


# ------------------------------------------------------------------------------ the commands
def test_sample_in_a_stepped_array_task(cli, small_bank, tmp_path, clean_env):
    for k, v in array_env(range(0, 5, 2), 4).items():
        clean_env.setenv(k, v)
    res = cli("sample", "--bank", small_bank, "-n", 7, "--steps", 2, "-o", tmp_path / "r-{shard}.h5", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["shard"] == "2/3" and out["output"] == str(tmp_path / "r-2.h5")
    assert elscli.Run.open(tmp_path / "r-2.h5").sample_ids.tolist() == [2, 5]


def test_sample_and_locality_scan_refuse_unmappable_tasks(cli, small_bank, tmp_path, clean_env):
    for k, v in array_env([1, 3, 5], 3).items():
        clean_env.setenv(k, v)
    for args in (["sample", "--bank", small_bank, "-n", 4, "--steps", 2, "-o", tmp_path / "r.h5", "-q"],
                 ["locality-scan", "-r", tmp_path / "ref.npz", "--bank", small_bank, "--machine", "ls",
                  "--scan-out", tmp_path / "s-{shard}.h5", "-q"]):
        res = cli(*args)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("elscli: error:"), res.stderr
        assert "SLURM_ARRAY_TASK_ID=3" in lines[0] and "--shard I/N" in lines[0]
        res = cli(*args, "--shard", "1/3")        # the explicit shard the message asks for is taken
        assert "SLURM_ARRAY_TASK" not in res.stderr
    assert elscli.Run.open(tmp_path / "r-shard1of3.h5").sample_ids.tolist() == [1]


def test_locality_scan_in_a_one_based_array_task(cli, small_bank, tmp_path, clean_env):
    from elscli import reference as R
    from elscli.noise import time_grid

    seeds = np.random.default_rng(0).standard_normal((5, 1, 16, 16)).astype(np.float32)
    R.record(lambda x, t, labels: 0.1 * x, seeds, time_grid(2), path=tmp_path / "ref.npz")
    for k, v in array_env(range(1, 4), 2).items():
        clean_env.setenv(k, v)
    res = cli("locality-scan", "-r", tmp_path / "ref.npz", "--bank", small_bank, "--machine", "ls",
              "--candidates", "3,5", "--scan-out", tmp_path / "s-{shard}.h5", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["scan_file"] == str(tmp_path / "s-1.h5")
    from elscli.analysis.scan import Scan

    scan = Scan.read(tmp_path / "s-1.h5")
    assert scan.shard == "1/3" and scan.sample_index.tolist() == [1, 4]


# ------------------------------------------------------------------------------ the library
def test_the_library_reads_no_slurm_variables(small_bank, tmp_path, clean_env):
    """Inside an array task, a script's elscli.sample computes every sample it is asked for, with Numba's
    thread setting, not SLURM_CPUS_PER_TASK; an explicit shard is still honoured."""
    import numba

    for k, v in array_env(range(0, 5, 2), 2).items():
        clean_env.setenv(k, v)
    clean_env.setenv("SLURM_CPUS_PER_TASK", "1")
    run = elscli.sample(small_bank, num_samples=3, steps=2, output=tmp_path / "lib.h5")
    assert run.sample_ids.tolist() == [0, 1, 2] and run.params["shard"] == "0/1" and run.path == tmp_path / "lib.h5"
    assert run.params["threads"] == numba.get_num_threads()
    if numba.get_num_threads() > 1:
        assert run.params["threads"] != 1
    part = elscli.sample(small_bank, num_samples=3, steps=2, shard="1/2")
    assert part.sample_ids.tolist() == [1]


def test_the_sweep_reads_no_slurm_variables(small_bank, tmp_path, clean_env):
    from elscli.analysis.sweep import sweep

    for k, v in array_env(range(0, 5, 2), 2).items():
        clean_env.setenv(k, v)
    pts = sweep(Bank.open(small_bank), "ls", [3], num_samples=3, steps=2, run_dir=tmp_path)
    assert [p.patch_size for p in pts] == [3]
    assert elscli.Run.open(tmp_path / "sweep-ls-P3.h5").sample_ids.tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------ elscli's own variables
def test_elscli_variables_are_read_by_the_edge():
    """ELSCLI_PROGRESS_INTERVAL, ELSCLI_CACHE, ELSCLI_SAMPLE_DATA, ELSCLI_TREE_CACHE: read in
    elscli.cli.environment, with the library's defaults when unset."""
    from elscli.progress import DEFAULT_INTERVAL

    assert environment.progress_interval({"ELSCLI_PROGRESS_INTERVAL": "0.5"}) == 0.5
    assert environment.progress_interval({}) == DEFAULT_INTERVAL == 10.0
    assert environment.progress_interval({"ELSCLI_PROGRESS_INTERVAL": "often"}) == DEFAULT_INTERVAL
    assert environment.cache_dir({"ELSCLI_CACHE": "/c"}) == Path("/c")
    assert environment.cache_dir({}) == Path.home() / ".cache" / "elscli"
    assert environment.tree_cache_dir({"ELSCLI_CACHE": "/c"}) == Path("/c/patch-trees")
    assert environment.tree_cache_dir({"ELSCLI_CACHE": "/c", "ELSCLI_TREE_CACHE": "off"}) is None
    assert environment.sample_data_dir({"ELSCLI_SAMPLE_DATA": "/s"}) == Path("/s")
    assert environment.sample_data_dir({}) is None


def test_sample_without_a_bank_follows_the_variables(cli, tmp_path, monkeypatch):
    """`elscli sample` without --bank builds the bundled bank from $ELSCLI_SAMPLE_DATA into $ELSCLI_CACHE and
    writes progress lines every $ELSCLI_PROGRESS_INTERVAL seconds; the library, given none of them, ignores
    the variables (its own defaults)."""
    import io
    import shutil

    data = tmp_path / "data"
    shutil.copytree(REPO / "sample_data" / "mnist-1k", data / "mnist-1k")
    monkeypatch.setenv("ELSCLI_SAMPLE_DATA", str(data))
    monkeypatch.setenv("ELSCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ELSCLI_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("ELSCLI_BANK", raising=False)
    res = cli("sample", "--machine", "ls", "-p", 3, "-n", 2, "--steps", 3, "-o", tmp_path / "r.h5")
    assert res.exit_code == 0, res.stderr
    banks = list((tmp_path / "cache").glob("sample-mnist-1k-*.h5"))
    assert len(banks) == 1 and elscli.Run.open(tmp_path / "r.h5").params["bank"] == str(banks[0])
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("sample: ")]
    assert len(progress) == 7, res.stderr           # a line at every one of the 6 steps, and the final one
    log = io.StringIO()
    elscli.sample(banks[0], machine="ls", patch_size=3, num_samples=2, steps=3, quiet=False, progress_stream=log)
    assert len(log.getvalue().strip().splitlines()) == 1           # the library's 10 s: only the final line
    log = io.StringIO()
    elscli.sample(banks[0], machine="ls", patch_size=3, num_samples=2, steps=3, quiet=False, progress_stream=log,
                  progress_interval=0)
    assert len(log.getvalue().strip().splitlines()) == 7
