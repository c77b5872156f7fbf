"""The on-disk array cache (elscli/array_cache.py): keys by content, atomic writes, misses never errors."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from elscli.array_cache import ArrayCache, content_key


def arrays(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    return {"patches": rng.standard_normal((n, 9)).astype(np.float32), "counts": rng.integers(1, 5, n),
            "first": rng.integers(0, 99, (n, 3))}


def test_round_trip_and_misses(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    key = content_key("bank-hash", np.arange(5), 3)
    assert cache.load(key, ["patches", "counts", "first"]) is None            # absent
    a = arrays()
    assert cache.store(key, a) == cache.path(key)
    got = cache.load(key, ["patches", "counts", "first"])
    for name in a:
        np.testing.assert_array_equal(got[name], a[name])
        assert got[name].dtype == a[name].dtype
    assert cache.load(key, ["patches", "counts"]) is None                     # other names: a miss
    other = content_key("bank-hash", np.arange(5), 5)
    os.replace(cache.path(key), cache.path(other))                           # a file under the wrong name
    assert cache.load(other, ["patches", "counts", "first"]) is None
    cache.path(key).write_bytes(b"PK\x03\x04 truncated")                     # unreadable: a miss
    assert cache.load(key, ["patches", "counts", "first"]) is None
    assert [p.name for p in (tmp_path / "c").iterdir() if p.suffix == ".tmp"] == []


def test_keys_depend_on_every_part():
    base = content_key("h", np.arange(4, dtype=np.int64), 3)
    assert base == content_key("h", np.arange(4, dtype=np.int64), 3)
    assert base != content_key("h2", np.arange(4, dtype=np.int64), 3)
    assert base != content_key("h", np.arange(4, dtype=np.int32), 3)           # dtype
    assert base != content_key("h", np.arange(4, dtype=np.int64).reshape(2, 2), 3)   # shape
    assert base != content_key("h", np.array([0, 1, 2, 4]), 3)
    assert base != content_key("h", np.arange(4, dtype=np.int64), 5)
    assert base != content_key("h", 3, np.arange(4, dtype=np.int64))          # order


def test_unwritable_directory_caches_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ArrayCache(blocker / "sub")
    assert cache.store("k", arrays()) is None
    assert cache.load("k", ["patches"]) is None


def test_concurrent_writers_and_readers_see_whole_files(tmp_path):
    """Three processes store the same key over and over while this one reads: every read is a miss or the
    complete arrays, and no temporary file is left behind."""
    d = tmp_path / "c"
    key = content_key("concurrent")
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_array_cache import arrays
        from elscli.array_cache import ArrayCache
        c = ArrayCache({str(d)!r})
        for _ in range(15):
            assert c.store({key!r}, arrays(n=200000)) is not None
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    want = arrays(n=200000)
    cache = ArrayCache(d)
    while any(p.poll() is None for p in procs):
        got = cache.load(key, list(want))
        if got is not None:
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
    assert all(p.wait() == 0 for p in procs)
    assert cache.load(key, list(want)) is not None
    assert sorted(p.name for p in d.iterdir()) == [f"{key}.npz"]
