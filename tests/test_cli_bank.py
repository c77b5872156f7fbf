"""`elscli build-bank` and `elscli info` end to end: round trips on real files and every bad input."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from elscli.bank import Bank
from elscli.readers import load_images, read_raw

from conftest import cifar_pixels


def assert_clean_failure(res, *, code=1, names=(), out_dir=None, out_name=None):
    """One line on stderr naming the problem (and file), the exit code, no traceback, no output left."""
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("elscli: error: "), res.stderr
    for n in names:
        assert n in res.stderr, (n, res.stderr)
    assert res.stdout == ""
    if out_dir is not None:
        left = sorted(p.name for p in out_dir.iterdir())
        assert not any(n.startswith(".") and ".tmp-" in n for n in left), left
        if out_name is not None:
            assert out_name not in left


# ------------------------------------------------------------------------------------------ round trips
def test_build_bank_sample_data_and_info(cli, sample_mnist_dir, tmp_path):
    out = tmp_path / "bank.h5"
    res = cli("build-bank", sample_mnist_dir, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""                                   # the summary of the file written is a note
    assert "n_images" in res.stderr and "1000" in res.stderr
    bank = Bank.open(out)
    ref = load_images(sample_mnist_dir)  # the reader's output after the 28 -> 32 resize
    assert np.array_equal(bank.codes, ref.images) and np.array_equal(bank.labels, ref.labels)
    info = cli("info", out, "--json")
    assert info.exit_code == 0 and info.stderr == ""
    d = json.loads(info.stdout)
    assert d["n_images"] == 1000 and d["labels"] == {str(k): 100 for k in range(10)}
    assert d["content_hash"] == bank.content_hash and d["params"]["size"] == 32
    assert d["source"]["reader"] == "idx"
    table = cli("info", out, "--verify")
    assert table.exit_code == 0 and "content_hash" in table.stdout and "verified" in table.stdout


def test_size0_equals_idx_source_pixels(cli, mnist_dir, tmp_path):
    out = tmp_path / "b.h5"
    res = cli("build-bank", mnist_dir, "-o", out, "--size", "0", "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)  # stdout carries only the JSON
    assert summary["image_shape"] == [1, 28, 28]
    raw = gzip.open(mnist_dir / "train-images-idx3-ubyte.gz").read()
    src = np.frombuffer(raw, np.uint8, offset=16).reshape(5000, 28, 28)
    bank = Bank.open(out)
    assert np.array_equal(bank.codes[:, 0], src)
    assert np.array_equal(bank.images, (src[:, None].astype(np.float64) / 127.5 - 1).astype(np.float32))


def test_photo_tiles_roundtrip(cli, photo_tiles_dir, tmp_path):
    res = cli("build-bank", photo_tiles_dir, "-o", tmp_path / "t.h5", "--size", "0")
    assert res.exit_code == 0, res.stderr
    bank = Bank.open(tmp_path / "t.h5")
    cls = sorted(p.name for p in photo_tiles_dir.iterdir())
    files = [f for c in cls for f in sorted((photo_tiles_dir / c).glob("*.png"))]
    src = np.stack([np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1) for f in files])
    assert np.array_equal(bank.codes, src) and bank.shape == (3, 32, 32)
    assert bank.source["label_names"] == {str(k): c for k, c in enumerate(cls)}
    res = cli("build-bank", photo_tiles_dir, "-o", tmp_path / "g.h5", "--size", "16", "--grayscale",
              "--classes", "0,3", "--json")
    assert res.exit_code == 0, res.stderr
    g = Bank.open(tmp_path / "g.h5")
    sel = [i for i in range(512) if i // 64 in (0, 3)]
    ref = np.stack([np.asarray(Image.open(files[i]).convert("L").resize((16, 16), Image.BILINEAR)) for i in sel])
    assert np.array_equal(g.codes[:, 0], ref) and g.classes.tolist() == [0, 3]


def test_cifar_tar_roundtrip(cli, cifar10_dir, cifar10_tar, tmp_path):
    res = cli("build-bank", cifar10_tar, "-o", tmp_path / "c.h5", "--size", "0", "--json")
    assert res.exit_code == 0, res.stderr
    bank = Bank.open(tmp_path / "c.h5")
    p1, l1 = cifar_pixels(cifar10_dir / "data_batch_1")
    p2, l2 = cifar_pixels(cifar10_dir / "data_batch_2")
    assert np.array_equal(bank.codes, np.concatenate([p1, p2]))
    assert np.array_equal(bank.labels, np.concatenate([l1, l2]))


def test_cifar100_coarse_cli(cli, cifar100_dir, tmp_path):
    res = cli("build-bank", cifar100_dir, "-o", tmp_path / "c.h5", "--coarse", "--format", "cifar", "--json")
    assert res.exit_code == 0, res.stderr
    assert Bank.open(tmp_path / "c.h5").labels.tolist() == [1, 2, 3, 1, 0, 19]


def test_npz_float_roundtrip(cli, tmp_path):
    x = np.random.default_rng(5).uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", images=x, labels=np.arange(6) % 2)
    res = cli("build-bank", tmp_path / "f.npz", "-o", tmp_path / "f.h5", "--size", "0", "--value-range", "0,1",
              "--json")
    assert res.exit_code == 0, res.stderr
    bank = Bank.open(tmp_path / "f.h5")
    assert not bank.eight_bit
    expect = (x.transpose(0, 3, 1, 2).astype(np.float64) * 2 - 1).astype(np.float32)
    assert np.array_equal(bank.images, expect)


def test_bank_subset_and_dedup(cli, sample_mnist_dir, tmp_path):
    assert cli("build-bank", sample_mnist_dir, "-o", tmp_path / "all.h5").exit_code == 0
    res = cli("build-bank", tmp_path / "all.h5", "-o", tmp_path / "sevens.h5", "--classes", "7", "--size", "0",
              "--limit", "30", "--subset-seed", "1", "--json")
    assert res.exit_code == 0, res.stderr
    parent, sub = Bank.open(tmp_path / "all.h5"), Bank.open(tmp_path / "sevens.h5")
    assert len(sub) == 30 and sub.classes.tolist() == [7]
    assert sub.source["parent_content_hash"] == parent.content_hash
    rows = [r for a, b in sub.source["selection"]["source_indices"] for r in range(a, b)]
    assert np.array_equal(sub.codes, parent.codes[rows])
    # dedup: a bank built from itself twice over an npz holds each image once
    codes = np.concatenate([parent.codes[:5], parent.codes[:5]])
    np.save(tmp_path / "dup.npy", codes)
    res = cli("build-bank", tmp_path / "dup.npy", "-o", tmp_path / "d.h5", "--size", "0", "--dedup", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["duplicates_dropped"] == 5
    assert "dropped 5 duplicate" in res.stderr


def test_force_overwrites(cli, sample_mnist_dir, tmp_path):
    out = tmp_path / "b.h5"
    assert cli("build-bank", sample_mnist_dir, "-o", out, "--limit", "10").exit_code == 0
    assert cli("build-bank", sample_mnist_dir, "-o", out, "--limit", "20", "--force").exit_code == 0
    assert len(Bank.open(out)) == 20


def test_info_generic_and_other_formats(cli, tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "somebody.else"
        f.create_dataset("grid", data=np.zeros((3, 4)))
    res = cli("info", p, "--json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["format"] == "somebody.else" and d["datasets"]["grid"].startswith("3×4")


# ------------------------------------------------------------------------------------------ bad input
def test_missing_path(cli, tmp_path):
    res = cli("build-bank", tmp_path / "nope", "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("nope", "does not exist"), out_dir=tmp_path, out_name="b.h5")


def test_unknown_format(cli, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"\x01\x02\x03" * 50)
    res = cli("build-bank", tmp_path / "data.bin", "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("unknown format", "data.bin"), out_dir=tmp_path, out_name="b.h5")


def _idx(path, arr, magic):
    arr = np.asarray(arr, np.uint8)
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes())


def test_idx_wrong_magic(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _idx(src / "train-images-idx3-ubyte", np.zeros((2, 4, 4)), 2051)
    _idx(src / "train-labels-idx1-ubyte", np.zeros((2, 4, 4)), 2051)
    res = cli("build-bank", src / "train-images-idx3-ubyte", "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("train-labels-idx1-ubyte", "magic number 2051, expected 2049"),
                         out_dir=tmp_path, out_name="b.h5")


def test_idx_wrong_magic_forced(cli, tmp_path):
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x02" + b"\x00" * 40)
    res = cli("build-bank", tmp_path / "x-images-idx3-ubyte", "-o", tmp_path / "b.h5", "--format", "idx")
    assert_clean_failure(res, names=("x-images-idx3-ubyte", "magic number 2050"), out_dir=tmp_path, out_name="b.h5")


def test_idx_truncated(cli, tmp_path):
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 6, 6)), 2051)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-20])
    res = cli("build-bank", tmp_path / "train-images-idx3-ubyte", "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("train-images-idx3-ubyte", "truncated"), out_dir=tmp_path, out_name="b.h5")


def test_mixed_sizes_with_size0(cli, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "a.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(src / "b.png")
    res = cli("build-bank", src, "-o", tmp_path / "b.h5", "--size", "0")
    assert_clean_failure(res, names=("mixed sizes", "b.png", "--size"), out_dir=tmp_path, out_name="b.h5")


def test_label_count_mismatch(cli, tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 1, 4, 4), np.uint8), labels=np.arange(2))
    res = cli("build-bank", tmp_path / "d.npz", "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("label count 2 != image count 3", "d.npz"), out_dir=tmp_path, out_name="b.h5")


def test_label_count_mismatch_idx(cli, tmp_path):
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4)), 2051)
    _idx(tmp_path / "train-labels-idx1-ubyte", [1, 2, 3, 4], 2049)
    res = cli("build-bank", tmp_path, "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("label count 4", "image count 3", "train-labels-idx1-ubyte"),
                         out_dir=tmp_path, out_name="b.h5")


def test_empty_selection(cli, tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 1, 4, 4), np.uint8), labels=[0, 1, 1])
    res = cli("build-bank", tmp_path / "d.npz", "-o", tmp_path / "b.h5", "--classes", "7")
    assert_clean_failure(res, names=("empty selection", "label 7", "d.npz"), out_dir=tmp_path, out_name="b.h5")


def test_output_dir_missing(cli, sample_mnist_dir, tmp_path):
    res = cli("build-bank", sample_mnist_dir, "-o", tmp_path / "nodir" / "b.h5")
    assert_clean_failure(res, names=("nodir", "does not exist"))
    assert not (tmp_path / "nodir").exists()


def test_output_dir_not_writable(cli, sample_mnist_dir, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.geteuid() == 0:  # root ignores permission bits: simulate what access() reports for other users
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, m, **kw: False if str(p) == str(ro) else real(p, m, **kw))
        res = cli("build-bank", sample_mnist_dir, "-o", ro / "b.h5")
        assert_clean_failure(res, names=("not writable", "ro"))
        assert list(ro.iterdir()) == []
    finally:
        os.chmod(ro, 0o755)


def test_existing_output_without_force(cli, sample_mnist_dir, tmp_path):
    out = tmp_path / "b.h5"
    out.write_bytes(b"precious")
    res = cli("build-bank", sample_mnist_dir, "-o", out)
    assert_clean_failure(res, names=("b.h5", "--force"))
    assert out.read_bytes() == b"precious"


def test_info_corrupt_and_truncated(cli, sample_mnist_dir, tmp_path):
    out = tmp_path / "b.h5"
    assert cli("build-bank", sample_mnist_dir, "-o", out).exit_code == 0
    data = out.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 3])
    assert_clean_failure(cli("info", tmp_path / "trunc.h5"), names=("trunc.h5",))
    (tmp_path / "garbage.h5").write_bytes(os.urandom(4096))
    assert_clean_failure(cli("info", tmp_path / "garbage.h5"), names=("garbage.h5", "not a readable HDF5"))
    assert_clean_failure(cli("info", tmp_path / "missing.h5"), names=("missing.h5", "does not exist"))
    # flip bytes inside the pixel data: fletcher32 / the content hash catch it with --verify
    bad = bytearray(data)
    with h5py.File(out, "r") as f:
        off = f["images"].id.get_chunk_info(0).byte_offset
    for i in range(off + 100, off + 120):
        bad[i] ^= 0xFF
    (tmp_path / "flipped.h5").write_bytes(bytes(bad))
    assert_clean_failure(cli("info", tmp_path / "flipped.h5", "--verify"), names=("flipped.h5",))
    assert_clean_failure(cli("build-bank", tmp_path / "flipped.h5", "-o", tmp_path / "x.h5"),
                         names=("flipped.h5",), out_dir=tmp_path, out_name="x.h5")


@pytest.mark.parametrize("args", [
    ["build-bank", "SRC"],                                  # no -o
    ["build-bank", "SRC", "-o", "OUT", "--format", "tiff"],  # not a format choice
    ["build-bank", "SRC", "-o", "OUT", "--size", "-1"],
    ["build-bank", "SRC", "-o", "OUT", "--value-range", "0,9"],
    ["build-bank", "SRC", "-o", "OUT", "--limit", "0"],
    ["info"],
])
def test_usage_errors_exit_2(cli, sample_mnist_dir, tmp_path, args):
    args = [str(sample_mnist_dir) if a == "SRC" else str(tmp_path / "o.h5") if a == "OUT" else a for a in args]
    res = cli(*args)
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "o.h5").exists()


# ------------------------------------------------------------------------------------------ real processes
def test_subprocess_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "elscli", "build-bank", str(tmp_path / "nope"), "-o",
                        str(tmp_path / "b.h5")], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "ELSCLI_DEBUG"})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("elscli: error: ") and "nope" in r.stderr


def test_bank_commands_do_not_import_numba():
    code = "import sys, elscli.cli.bank_cmds, elscli.bank, elscli.readers; print('numba' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_read_raw_matches_cli_limit(sample_mnist_dir, cli, tmp_path):
    res = cli("build-bank", sample_mnist_dir, "-o", tmp_path / "b.h5", "--limit", "7", "--size", "0", "--json")
    assert res.exit_code == 0
    raw = read_raw(sample_mnist_dir)
    assert np.array_equal(Bank.open(tmp_path / "b.h5").codes, raw.images[:7])


def test_params_record_command_line(cli, sample_mnist_dir, tmp_path):
    assert cli("build-bank", sample_mnist_dir, "-o", tmp_path / "b.h5", "--limit", "3").exit_code == 0
    with h5py.File(tmp_path / "b.h5", "r") as f:
        params = json.loads(f.attrs["params"])
    assert params["argv"][:1] == ["build-bank"] and "--limit" in params["argv"] and params["limit"] == 3


def test_corrupt_image_in_folder(cli, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "a.png")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    res = cli("build-bank", src, "-o", tmp_path / "b.h5")
    assert_clean_failure(res, names=("b.png", "not a readable image"), out_dir=tmp_path, out_name="b.h5")


def test_forced_format_on_wrong_file(cli, tmp_path):
    (tmp_path / "x.dat").write_bytes(b"hello world" * 10)
    res = cli("build-bank", tmp_path / "x.dat", "-o", tmp_path / "b.h5", "--format", "npy")
    assert_clean_failure(res, names=("x.dat",), out_dir=tmp_path, out_name="b.h5")


def test_info_on_directory(cli, tmp_path):
    assert_clean_failure(cli("info", tmp_path), names=("directory",))


def test_readme_quick_start_matches_ci():
    """The README's quick start has exactly two commands, and the second ends with .ci/run's test command."""
    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("\n", 1)[1].strip() for b in section.split("```bash")[1:]]
    blocks = [b.split("```", 1)[0].strip() for b in blocks]
    assert len(blocks) == 2 and all("\n" not in b for b in blocks)
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    test_cmd = ci[-1].strip()
    assert test_cmd.startswith("python -m pytest")
    assert blocks[1].endswith("&& " + test_cmd)
    # the main job: `elscli sample` on the bundled sample_data bank (its default), writing a run and a grid
    assert "pip install" in blocks[0] and "elscli sample" in blocks[0] and "--bank" not in blocks[0]
    assert "--png" in blocks[0]


def test_rgb_from_grey(cli, sample_mnist_dir, tmp_path):
    res = cli("build-bank", sample_mnist_dir, "-o", tmp_path / "rgb.h5", "--rgb", "--limit", "5", "--json")
    assert res.exit_code == 0, res.stderr
    b = Bank.open(tmp_path / "rgb.h5")
    ref = load_images(sample_mnist_dir, limit=5)
    assert b.shape == (3, 32, 32) and all(np.array_equal(b.codes[:, c], ref.images[:, 0]) for c in range(3))


def test_debug_env_shows_traceback(tmp_path):
    env = dict(os.environ, ELSCLI_DEBUG="1")
    r = subprocess.run([sys.executable, "-m", "elscli", "build-bank", str(tmp_path / "nope"), "-o",
                        str(tmp_path / "b.h5")], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "Traceback" in r.stderr and "ElscliError" in r.stderr


def test_value_range_warning_on_stderr_and_in_info(cli, tmp_path):
    """Images on [0, 1] under the default --value-range -1,1: built, but one warning line on stderr, and the
    warning kept in the bank for `info` to show."""
    x = np.random.default_rng(5).uniform(0, 1, (4, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = cli("build-bank", tmp_path / "x.npy", "-o", tmp_path / "b.h5", "--size", 0, "--json")
    assert res.exit_code == 0, res.stderr
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("elscli: warning: ")]
    assert len(warn) == 1 and "--value-range 0,1" in warn[0]
    info = json.loads(cli("info", tmp_path / "b.h5", "--json").stdout)
    assert info["warnings"] == [warn[0][len("elscli: warning: "):]]
    table = cli("info", tmp_path / "b.h5")
    assert "warnings" in table.stdout and "value-range" in table.stdout
    res = cli("build-bank", tmp_path / "x.npy", "-o", tmp_path / "c.h5", "--size", 0, "--value-range", "0,1")
    assert res.exit_code == 0 and "elscli: warning" not in res.stderr
    assert "warnings" not in json.loads(cli("info", tmp_path / "c.h5", "--json").stdout)
