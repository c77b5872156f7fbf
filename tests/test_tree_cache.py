"""Patch trees kept on disk (machines.set_tree_cache): built once, loaded by other processes, keyed by the
bank's content, the dictionary and P; results bitwise the same as without the cache."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from elscli import machines
from elscli.bank import Bank
from elscli.machines import patch_dictionary


@pytest.fixture(scope="module")
def digits(shared_data):
    g = np.load(shared_data / "golden" / "reference-scores-mnist.npz")
    codes = np.round((g["bank_images"][:12] + 1.0) * 127.5).astype(np.uint8)
    return Bank.from_arrays(codes, np.arange(12) % 2)


class Trees:
    """The machines' in-memory caches of trees and dictionaries, emptied as in a new process, and the counts
    of trees built and loaded since the test began."""

    def __init__(self):
        self.start = dict(patch_dictionary.TREE_STATS)

    def new_process(self):
        patch_dictionary._TREES.clear()
        patch_dictionary._DICTIONARIES.clear()

    @property
    def stats(self):
        return {k: patch_dictionary.TREE_STATS[k] - self.start[k] for k in self.start}


@pytest.fixture
def fresh_trees():
    """Empty in-memory caches; the disk cache switched off afterwards."""
    trees = Trees()
    trees.new_process()
    yield trees
    machines.set_tree_cache(None)


def query(bank, t=0.3, seed=0):
    from elscli.noise import scales

    a, b = scales(t)
    rng = np.random.default_rng(seed)
    return a * bank.images[3].astype(np.float64) + b * rng.standard_normal(bank.shape)


def test_a_tree_is_built_once_then_loaded(digits, fresh_trees, tmp_path, monkeypatch):
    x = query(digits)
    want = machines.denoise_with_provenance("bbels", x, 0.3, digits, 3)     # no disk cache
    assert fresh_trees.stats == {"built": 1, "loaded": 0}
    machines.set_tree_cache(tmp_path / "trees")
    fresh_trees.new_process()
    got = machines.denoise_with_provenance("bbels", x, 0.3, digits, 3)
    assert fresh_trees.stats == {"built": 2, "loaded": 0}
    assert len(list((tmp_path / "trees").glob("*.npz"))) == 1
    fresh_trees.new_process()                          # a new process
    again = machines.denoise_with_provenance("bbels", x, 0.3, digits, 3)
    assert fresh_trees.stats == {"built": 2, "loaded": 1}
    for res in (got, again):
        np.testing.assert_array_equal(res[0], want[0])
        for name in ("image", "row", "col", "weight", "entropy"):
            np.testing.assert_array_equal(getattr(res[1], name), getattr(want[1], name))


def test_other_banks_dictionaries_and_sizes_do_not_share_a_file(digits, fresh_trees, tmp_path, monkeypatch):
    machines.set_tree_cache(tmp_path)
    x = query(digits, t=0.1)
    machines.denoise("bbels", x, 0.1, digits, 3)
    machines.denoise("bbels", x, 0.1, digits, 3, label=1)                   # another index set
    machines.denoise("bbels", x, 0.1, digits, 5)                            # another P (tree at low noise)
    codes = digits.codes.copy()
    codes[0, 0, 10, 10] ^= 1
    other = Bank.from_arrays(codes, digits.labels)                          # one pixel differs
    fresh_trees.new_process()
    want = machines.denoise("bbels", x, 0.1, other, 3)
    assert fresh_trees.stats == {"built": 4, "loaded": 0}
    assert len(list(tmp_path.glob("*.npz"))) == 4
    fresh_trees.new_process()
    np.testing.assert_array_equal(machines.denoise("bbels", x, 0.1, other, 3), want)
    fresh_trees.new_process()
    machines.denoise("bbels", x, 0.1, np.array(digits.images), 3)          # the same pixels as a raw array
    assert fresh_trees.stats == {"built": 4, "loaded": 2}
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_an_unreadable_file_is_rebuilt(digits, fresh_trees, tmp_path, monkeypatch):
    machines.set_tree_cache(tmp_path)
    x = query(digits)
    want = machines.denoise("bbels", x, 0.3, digits, 3)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(path.read_bytes()[:1000])                              # truncated
    fresh_trees.new_process()
    np.testing.assert_array_equal(machines.denoise("bbels", x, 0.3, digits, 3), want)
    assert fresh_trees.stats == {"built": 2, "loaded": 0}
    fresh_trees.new_process()
    machines.denoise("bbels", x, 0.3, digits, 3)
    assert fresh_trees.stats == {"built": 2, "loaded": 1}


def test_array_tasks_starting_at_once(digits, tmp_path):
    """Three processes evaluate with one cache directory at the same time: each gets the same result, and
    the directory ends with one whole file."""
    bank_path = tmp_path / "bank.h5"
    digits.save(bank_path)
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from elscli import machines
        from elscli.bank import Bank
        machines.set_tree_cache({str(tmp_path / 'trees')!r})
        bank = Bank.open({str(bank_path)!r})
        x = np.random.default_rng(0).standard_normal(bank.shape)
        np.save(sys.argv[1], machines.denoise("bbels", x, 0.5, bank, 3))
        print(machines.patch_dictionary.TREE_STATS)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"out{i}.npy")], stdout=subprocess.PIPE,
                              text=True) for i in range(3)]
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = [np.load(tmp_path / f"out{i}.npy") for i in range(3)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert [p.name for p in (tmp_path / "trees").iterdir()] == [p.name for p in (tmp_path / "trees").glob("*.npz")]
    assert len(list((tmp_path / "trees").glob("*.npz"))) == 1


def test_the_cli_keeps_trees_where_told(cli, digits, fresh_trees, tmp_path, monkeypatch):
    bank_path = tmp_path / "bank.h5"
    digits.save(bank_path)
    trees = tmp_path / "trees"
    monkeypatch.setenv("ELSCLI_TREE_CACHE", str(trees))
    for out in ("a.h5", "b.h5"):
        fresh_trees.new_process()
        res = cli("sample", "--bank", bank_path, "--machine", "bbels", "--patch-size", "3", "-n", "1", "--steps", "2",
                  "-o", tmp_path / out, "--quiet")
        assert res.exit_code == 0, res.stderr
    assert len(list(trees.glob("*.npz"))) == 1
    assert fresh_trees.stats == {"built": 1, "loaded": 1}
    from elscli.runs import Run

    np.testing.assert_array_equal(Run.open(tmp_path / "a.h5").final, Run.open(tmp_path / "b.h5").final)
    assert patch_dictionary._TREE_STORE is None                  # the command's setting ends with it
    monkeypatch.setenv("ELSCLI_TREE_CACHE", "off")
    res = cli("sample", "--bank", bank_path, "--machine", "bbels", "--patch-size", "3", "-n", "1", "--steps", "2",
              "-o", tmp_path / "c.h5", "--quiet")
    assert res.exit_code == 0
    assert len(list(trees.glob("*.npz"))) == 1
