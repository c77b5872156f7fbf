"""A sweep of bad inputs across every command, each run through the real ``elscli`` entry point.

Each case is one command line a user might type by mistake (a missing or foreign file, a bad option value,
an output that cannot be written, a file that would be overwritten, a partial input...).  A case is
**clean** when the command

- exits with a non-zero code,
- prints exactly one line on stderr (stderr is a pipe, not a terminal), and no traceback, no Python exception
  name (``BadZipFile:``...) and no ``internal error`` (an unexpected exception: a bug),
- leaves the work directory as it found it: no new file or directory, no file changed,
- says it in elscli's words: none of the libraries' wording ("Input should be…", "Value error, …", "[Errno N]")
  and, where a case names them, the words it must say (the option, "must be odd", …).

Usage (the fixtures are made with the elscli under test, in a fresh temporary directory)::

    python benchmarks/bad_inputs.py                      # the elscli of this environment
    python benchmarks/bad_inputs.py --elscli /path/to/venv/bin/elscli --json sweep.json
    python benchmarks/bad_inputs.py -k sample            # only cases whose id contains "sample"

It prints one line per unclean case (what went wrong, and the stderr) and a count of clean cases; cases of
commands the elscli under test does not have are counted apart ("n/a").  The first run compiles the kernels
(a few minutes); the cases themselves take a few seconds each.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

FIXTURES = r"""
import json, sys
import numpy as np, h5py
from pathlib import Path
fx = Path(sys.argv[1])
rng = np.random.default_rng(0)
# 16x16 grey "digits" of two classes, and a RGB set
imgs = np.zeros((12, 1, 16, 16), np.uint8)
for i in range(12):
    imgs[i, 0, 3:13, 6 + (i % 2) * 3:9 + (i % 2) * 3] = 255
    imgs[i, 0, rng.integers(16), rng.integers(16)] = 200
np.savez(fx / "imgs.npz", images=imgs, labels=np.arange(12) % 2)
np.save(fx / "rgb.npy", rng.integers(0, 256, (6, 3, 16, 16)).astype(np.uint8))
np.save(fx / "int16.npy", (imgs.astype(np.int16) * 100 // 255))
np.save(fx / "uint16.npy", imgs.astype(np.uint16) * 257)
nan = imgs.astype(np.float32) / 127.5 - 1; nan[0, 0, 0, 0] = np.nan
np.save(fx / "nan.npy", nan)
np.save(fx / "five_d.npy", np.zeros((2, 1, 1, 16, 16), np.uint8))
np.save(fx / "table.npy", np.zeros((10, 5), np.float32))
np.save(fx / "empty.npy", np.zeros((0, 1, 16, 16), np.uint8))
np.save(fx / "bool.npy", np.zeros((4, 1, 16, 16), bool))
np.save(fx / "channels5.npy", np.zeros((4, 5, 16, 16), np.uint8))
np.savez(fx / "nolabels-keys.npz", foo=imgs, bar=imgs)
np.savez(fx / "badlabels.npz", images=imgs, labels=np.arange(5))
np.save(fx / "float01.npy", (imgs / 255 * 0.9 + 0.05 + 0.001 * rng.random(imgs.shape)).astype(np.float32))
# a reference trajectory with the seeds elscli's sample 0..2 of root seed 0 start from
S, T = 3, 3
seeds = np.stack([np.random.default_rng([i, 0]).standard_normal((1, 16, 16)) for i in range(S)]).astype(np.float32)
times = np.linspace(1.0, 0.0, T + 1)
x = np.concatenate([seeds[:, None], 0.5 * rng.standard_normal((S, T, 1, 16, 16)).astype(np.float32)], axis=1)
eps = rng.standard_normal((S, T, 1, 16, 16)).astype(np.float32)
np.savez(fx / "ref.npz", seeds=seeds, labels=np.full(S, -1), times=times, x=x, eps=eps,
         schedule=np.array("cosine-legacy"))
np.savez(fx / "ref-noeps.npz", seeds=seeds, labels=np.full(S, -1), times=times, x=x, schedule=np.array("cosine-legacy"))
np.savez(fx / "ref-8x8.npz", seeds=seeds[..., :8, :8], labels=np.full(S, -1), times=times, x=x[..., :8, :8],
         eps=eps[..., :8, :8], schedule=np.array("cosine-legacy"))
np.savez(fx / "ref-other-seeds.npz", seeds=seeds + 1, labels=np.full(S, -1), times=times, x=x + 1, eps=eps,
         schedule=np.array("cosine-legacy"))
raw = (fx / "ref.npz").read_bytes()
(fx / "trunc.npz").write_bytes(raw[: len(raw) // 2])
(fx / "text.txt").write_text("not a training set\n")
(fx / "afile").write_text("a plain file\n")
(fx / "empty.h5").write_bytes(b"")
(fx / "notjson.json").write_text("{not json")
(fx / "even.json").write_text(json.dumps({"times": [1.0, 0.5], "patch_sizes": [4, 3]}))
(fx / "mismatch.json").write_text(json.dumps({"times": [1.0, 0.5], "patch_sizes": [3]}))
(fx / "badmagic.idx").write_bytes(b"\x00\x00\x08\x09" + bytes(64))
(fx / "emptydir").mkdir()
(fx / "pngs").mkdir()
(fx / "pngs" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
(fx / "badzip.zip").write_bytes(b"PK\x03\x04" + bytes(40))
(fx / "bad.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(40))
with h5py.File(fx / "foreign.h5", "w") as f:
    f["data"] = np.zeros(3)
"""

NAN_BANK = r"""
import sys, h5py, numpy as np
from elscli.bank import compute_content_hash
path = sys.argv[1]
with h5py.File(path, "r+") as f:
    img = f["images"][()]
    img[0, 0, 0, 0] = np.nan
    attrs = dict(f["images"].attrs)
    del f["images"]
    d = f.create_dataset("images", data=img, chunks=True, compression="gzip", fletcher32=True)
    for k, v in attrs.items():
        d.attrs[k] = v
    f.attrs["content_hash"] = compute_content_hash(img, f["labels"][()])
"""


#: Cases of these commands are "n/a" for an elscli that lacks the command (older versions).
COMMANDS = ("info", "build-bank", "sample", "merge", "export", "compare", "mosaic", "locality-scan", "consistency")


def truncate(src: Path, dst: Path) -> None:
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) // 2])


class Sweep:
    def __init__(self, elscli: str, root: Path, timeout: float) -> None:
        self.elscli = elscli
        self.python = str(Path(elscli).resolve().parent / "python")
        self.root = root
        self.timeout = timeout
        self.env = dict(os.environ, ELSCLI_CACHE=str(root.parent / "elscli-cache"), COLUMNS="100",
                        ELSCLI_PROGRESS_INTERVAL="1000")
        self.env.pop("ELSCLI_DEBUG", None)
        self.env.pop("ELSCLI_BANK", None)
        for k in list(self.env):
            if k.startswith("SLURM_"):
                del self.env[k]
        self.commands = self._commands()

    def _commands(self) -> List[str]:
        out = subprocess.run([self.elscli, "--help"], capture_output=True, text=True, env=self.env).stdout
        names = []
        for line in out.splitlines():
            parts = line.strip("│ ").split()
            if parts and parts[0].replace("-", "").isalpha() and parts[0].islower():
                names.append(parts[0])
        return names

    def run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([self.elscli, *args], cwd=self.root, capture_output=True, text=True, env=self.env,
                           timeout=max(self.timeout, 7200.0), stdin=subprocess.DEVNULL)   # the first compiles
        if check and p.returncode != 0:
            raise SystemExit(f"fixture command failed: elscli {' '.join(args)}\n{p.stderr}")
        return p

    def fixtures(self) -> None:
        fx = self.root / "fx"
        fx.mkdir()
        subprocess.run([self.python, "-c", FIXTURES, str(fx)], check=True, env=self.env)
        self.run(["build-bank", "fx/imgs.npz", "-o", "fx/bank.h5", "--size", "0"])
        self.run(["build-bank", "fx/rgb.npy", "-o", "fx/rgb.h5", "--size", "0"])
        self.run(["build-bank", "fx/imgs.npz", "-o", "fx/bank-other.h5", "--size", "0", "--limit", "10"])
        self.run(["build-bank", "fx/float01.npy", "-o", "fx/nanbank.h5", "--size", "0", "--value-range", "0,1"])
        subprocess.run([self.python, "-c", NAN_BANK, str(fx / "nanbank.h5")], check=True, env=self.env)
        common = ["--bank", "fx/bank.h5", "--steps", "3", "--patch-size", "3", "--quiet"]
        print("bad_inputs: sampling the fixture runs (the first compiles the kernels)...", file=sys.stderr)
        self.run(["sample", *common, "-n", "3", "-o", "fx/run.h5"])
        self.run(["sample", *common, "-n", "3", "--seed", "1", "-o", "fx/run-seed1.h5"])
        self.run(["sample", *common, "-n", "4", "--shard", "0/2", "-o", "fx/shard-0.h5"])
        self.run(["sample", *common, "-n", "4", "--shard", "1/2", "-o", "fx/shard-1.h5"])
        self.run(["sample", *common, "-n", "3", "--machine", "ls", "-o", "fx/run-ls.h5"])
        self.run(["sample", "--bank", "fx/rgb.h5", "--steps", "3", "--patch-size", "3", "--quiet", "-n", "2",
                  "-o", "fx/run-rgb.h5"])
        self.run(["locality-scan", "-r", "fx/ref.npz", "--bank", "fx/bank.h5", "--machine", "ls", "--candidates",
                  "3,5", "--shard", "0/2", "--scan-out", "fx/scan-{shard}.h5", "--quiet"])
        truncate(fx / "bank.h5", fx / "trunc.h5")
        truncate(fx / "run.h5", fx / "trunc-run.h5")
        (fx / "afile").touch()

    # ------------------------------------------------------------------------------------- checking
    def snapshot(self) -> Dict[str, Tuple[int, int]]:
        snap = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for d in dirnames:
                snap[os.path.join(dirpath, d) + "/"] = (0, 0)
            for fn in filenames:
                p = os.path.join(dirpath, fn)
                st = os.lstat(p)
                snap[p] = (st.st_size, st.st_mtime_ns)
        return snap

    def restore(self, before: Dict[str, Tuple[int, int]], after: Dict[str, Tuple[int, int]]) -> None:
        for p in sorted(set(after) - set(before), reverse=True):
            if p.endswith("/"):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)

    def check(self, case: "Case") -> dict:
        if case.command not in self.commands and case.command != "":
            return {"id": case.id, "status": "n/a", "why": f"no command {case.command!r}"}
        if case.setup is not None:
            case.setup(self.root)
        before = self.snapshot()
        t0 = time.monotonic()
        try:
            env = self.env if case.env is None else {**self.env, **{k: v.format(root=self.root) for k, v in case.env.items()}}
            p = subprocess.run([self.elscli, *case.args], cwd=self.root, capture_output=True, text=True, env=env,
                               timeout=self.timeout, stdin=subprocess.DEVNULL)
            rc, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired as exc:
            rc, err = None, (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        seconds = time.monotonic() - t0
        after = self.snapshot()
        left = sorted(set(after) - set(before))
        changed = sorted(p for p in before if p in after and after[p] != before[p] and not p.endswith("/"))
        gone = sorted(set(before) - set(after))
        self.restore(before, after)
        if case.teardown is not None:
            case.teardown(self.root)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        problems = []
        if rc is None:
            problems.append("timed out")
        elif rc == 0:
            problems.append("exit code 0")
        if "Traceback" in err:
            problems.append("traceback")
        if "internal error" in err:
            problems.append("internal error (a bug, not a message about the input)")
        names = sorted(set(re.findall(r"\b[A-Z][A-Za-z]*(?:Error|Exception|File)\b(?=:)", err)))
        if names:
            problems.append(f"Python exception name {', '.join(names)}")
        if len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines")
        leaks = [w for w in LIBRARY_WORDING if w in err]
        if leaks:
            problems.append(f"library wording {', '.join(map(repr, leaks))}")
        missing = [w for w in case.says if w not in err]
        if missing:
            problems.append(f"does not say {', '.join(map(repr, missing))}")
        rel = lambda ps: [os.path.relpath(p.rstrip("/"), self.root) + ("/" if p.endswith("/") else "") for p in ps]
        if left:
            problems.append(f"left {', '.join(rel(left))}")
        if changed:
            problems.append(f"changed {', '.join(rel(changed))}")
        if gone:
            problems.append(f"removed {', '.join(rel(gone))}")
        return {"id": case.id, "args": list(case.args), "status": "clean" if not problems else "unclean",
                "problems": problems, "exit_code": rc, "stderr": err, "seconds": round(seconds, 2)}


#: Wording of the libraries under elscli (pydantic through Typer, the OS) that must never reach a user.
LIBRARY_WORDING = ("Input should", "Value error,", "[Errno", "Invalid value for")


class Case:
    def __init__(self, id: str, args: Sequence[str], setup: Optional[Callable[[Path], None]] = None,
                 teardown: Optional[Callable[[Path], None]] = None, says: Sequence[str] = (),
                 env: Optional[Dict[str, str]] = None) -> None:
        self.says = list(says)
        self.env = env
        self.id = id
        self.args = list(args)
        self.command = self.args[0] if self.args and self.args[0] in COMMANDS else ""
        self.setup = setup
        self.teardown = teardown


def _write(name: str, content: bytes = b"x"):
    def setup(root: Path) -> None:
        (root / name).write_bytes(content)

    def teardown(root: Path) -> None:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return setup, teardown


def _copy(src: str, dst: str):
    def setup(root: Path) -> None:
        shutil.copyfile(root / src, root / dst)

    def teardown(root: Path) -> None:
        for p in root.glob(dst + "*"):
            p.unlink()
    return setup, teardown


def _png_dir(name: str, png: str):
    def setup(root: Path) -> None:
        (root / name).mkdir()
        (root / name / png).write_bytes(b"x")

    def teardown(root: Path) -> None:
        shutil.rmtree(root / name, ignore_errors=True)
    return setup, teardown


def cases() -> List[Case]:
    B = ["--bank", "fx/bank.h5"]
    S = ["sample", *B, "--steps", "3", "--patch-size", "3", "--quiet"]
    LS = ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "ls", "--candidates", "3,5", "--quiet"]
    C = []
    add = lambda id, args, setup=None, teardown=None: C.append(Case(id, args, setup, teardown))
    # ---- the command line itself
    add("cli-unknown-command", ["frobnicate"])
    add("cli-unknown-option", ["--frobnicate"])
    add("cli-sample-unknown-option", ["sample", "--frobnicate"])
    add("cli-info-no-file", ["info"])
    add("cli-build-bank-missing-o", ["build-bank", "fx/imgs.npz"])
    add("cli-build-bank-size-negative", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--size", "-1"])
    add("cli-build-bank-format-unknown", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--format", "jpeg"])
    add("cli-sample-steps-not-int", [*S, "--steps", "many", "-o", "r.h5"])
    add("cli-sample-seed-not-int", [*S, "--seed", "x", "-o", "r.h5"])
    add("cli-merge-no-files", ["merge", "-o", "m.h5"])
    add("cli-export-no-output", ["export", "fx/run.h5"])
    add("cli-compare-no-files", ["compare"])
    add("cli-mosaic-tolerance-not-float", ["mosaic", "fx/run.h5", "--tolerance", "x"])
    add("cli-consistency-level-not-float", ["consistency", "fx/run.h5", *B, "--level", "x"])
    # ---- info
    add("info-missing", ["info", "nope.h5"])
    add("info-directory", ["info", "fx/emptydir"])
    add("info-text", ["info", "fx/text.txt"])
    add("info-empty", ["info", "fx/empty.h5"])
    add("info-truncated-bank", ["info", "fx/trunc.h5"])
    add("info-truncated-run", ["info", "fx/trunc-run.h5"])
    add("info-truncated-npz", ["info", "fx/trunc.npz"])
    add("info-verify-nan-bank", ["info", "fx/nanbank.h5", "--verify"])
    add("info-npy-images", ["info", "fx/int16.npy"])
    # ---- build-bank: sources
    add("bank-source-missing", ["build-bank", "nope", "-o", "b.h5"])
    add("bank-source-text", ["build-bank", "fx/text.txt", "-o", "b.h5"])
    add("bank-source-empty-dir", ["build-bank", "fx/emptydir", "-o", "b.h5"])
    add("bank-source-truncated-npz", ["build-bank", "fx/trunc.npz", "-o", "b.h5"])
    add("bank-source-int16", ["build-bank", "fx/int16.npy", "-o", "b.h5", "--size", "0"])
    add("bank-source-uint16", ["build-bank", "fx/uint16.npy", "-o", "b.h5", "--size", "0"])
    add("bank-source-nan", ["build-bank", "fx/nan.npy", "-o", "b.h5", "--size", "0"])
    add("bank-source-5d", ["build-bank", "fx/five_d.npy", "-o", "b.h5"])
    add("bank-source-table", ["build-bank", "fx/table.npy", "-o", "b.h5"])
    add("bank-source-no-images", ["build-bank", "fx/empty.npy", "-o", "b.h5"])
    add("bank-source-bool", ["build-bank", "fx/bool.npy", "-o", "b.h5"])
    add("bank-source-5-channels", ["build-bank", "fx/channels5.npy", "-o", "b.h5"])
    add("bank-source-npz-no-images-key", ["build-bank", "fx/nolabels-keys.npz", "-o", "b.h5"])
    add("bank-source-npz-bad-labels", ["build-bank", "fx/badlabels.npz", "-o", "b.h5"])
    add("bank-source-bad-idx", ["build-bank", "fx/badmagic.idx", "-o", "b.h5", "--format", "idx"])
    add("bank-source-bad-png", ["build-bank", "fx/pngs", "-o", "b.h5"])
    add("bank-source-bad-zip", ["build-bank", "fx/badzip.zip", "-o", "b.h5"])
    add("bank-source-bad-tar", ["build-bank", "fx/bad.tar.gz", "-o", "b.h5"])
    add("bank-source-truncated-bank", ["build-bank", "fx/trunc.h5", "-o", "b.h5"])
    add("bank-source-foreign-h5", ["build-bank", "fx/foreign.h5", "-o", "b.h5"])
    add("bank-source-forced-wrong-format", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--format", "cifar"])
    add("bank-source-single-png", ["build-bank", "fx/pngs/a.png", "-o", "b.h5"])
    # ---- build-bank: options
    add("bank-classes-absent", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--classes", "7"])
    add("bank-classes-junk", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--classes", "seven"])
    add("bank-classes-empty", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--classes", ","])
    add("bank-limit-zero", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--limit", "0"])
    add("bank-layout-wrong", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--layout", "nhwc"])
    add("bank-value-range-wrong", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--value-range", "0,2"])
    add("bank-float-wrong-range", ["build-bank", "fx/nan.npy", "-o", "b.h5", "--value-range", "0,1"])
    add("bank-rgb-from-bank-size0-mixed", ["build-bank", "fx/rgb.h5", "-o", "b.h5", "--classes", "1"])
    # ---- build-bank: outputs
    add("bank-out-missing-dir", ["build-bank", "fx/imgs.npz", "-o", "nodir/b.h5"])
    add("bank-out-under-file", ["build-bank", "fx/imgs.npz", "-o", "fx/afile/b.h5"])
    add("bank-out-proc", ["build-bank", "fx/imgs.npz", "-o", "/proc/b.h5", "--size", "0"])
    add("bank-out-exists", ["build-bank", "fx/imgs.npz", "-o", "fx/bank.h5", "--size", "0"])
    add("bank-out-is-dir", ["build-bank", "fx/imgs.npz", "-o", "fx/emptydir", "--size", "0"])
    add("bank-out-is-source", ["build-bank", "fx/bank.h5", "-o", "fx/bank.h5", "--size", "0", "--force"])
    # ---- sample: inputs
    add("sample-bank-missing", ["sample", "--bank", "nope.h5", "-o", "r.h5"])
    add("sample-bank-text", ["sample", "--bank", "fx/text.txt", "-o", "r.h5"])
    add("sample-bank-truncated", ["sample", "--bank", "fx/trunc.h5", "-o", "r.h5"])
    add("sample-bank-is-run", ["sample", "--bank", "fx/run.h5", "-o", "r.h5"])
    add("sample-bank-npz", ["sample", "--bank", "fx/imgs.npz", "-o", "r.h5", "--steps", "3", "--patch-size", "3"])
    add("sample-machine-unknown", [*S, "--machine", "foo", "-o", "r.h5"])
    add("sample-patch-even", ["sample", *B, "--patch-size", "4", "-o", "r.h5"])
    add("sample-patch-zero", ["sample", *B, "--patch-size", "0", "-o", "r.h5"])
    add("sample-patch-too-big-els", ["sample", *B, "--machine", "els", "--patch-size", "31", "-o", "r.h5"])
    add("sample-patch-and-schedule", [*S, "--schedule", "3", "-o", "r.h5"])
    add("sample-schedule-unknown-paper", ["sample", *B, "--schedule", "paper:NOPE", "-o", "r.h5"])
    add("sample-schedule-missing-json", ["sample", *B, "--schedule", "nope.json", "-o", "r.h5"])
    add("sample-schedule-not-json", ["sample", *B, "--schedule", "fx/notjson.json", "-o", "r.h5"])
    add("sample-schedule-even", ["sample", *B, "--schedule", "fx/even.json", "-o", "r.h5"])
    add("sample-schedule-mismatch", ["sample", *B, "--schedule", "fx/mismatch.json", "-o", "r.h5"])
    add("sample-steps-zero", [*S, "--steps", "0", "-o", "r.h5"])
    add("sample-steps-negative", [*S, "--steps", "-3", "-o", "r.h5"])
    add("sample-start-time-2", [*S, "--start-time", "2", "-o", "r.h5"])
    add("sample-start-time-0", [*S, "--start-time", "0", "-o", "r.h5"])
    add("sample-start-time-nan", [*S, "--start-time", "nan", "-o", "r.h5"])
    add("sample-n-zero", [*S, "-n", "0", "-o", "r.h5"])
    add("sample-n-negative", [*S, "-n", "-2", "-o", "r.h5"])
    add("sample-label-absent", [*S, "--label", "7", "-o", "r.h5"])
    add("sample-labels-junk", [*S, "--labels", "all", "-o", "r.h5"])
    add("sample-label-and-labels", [*S, "--label", "1", "--labels", "random", "-o", "r.h5"])
    add("sample-from-seeds-missing", [*S, "--from-seeds", "nope.npz", "-o", "r.h5"])
    add("sample-from-seeds-truncated", [*S, "--from-seeds", "fx/trunc.npz", "-o", "r.h5"])
    add("sample-from-seeds-text", [*S, "--from-seeds", "fx/text.txt", "-o", "r.h5"])
    add("sample-from-seeds-shape", [*S, "--from-seeds", "fx/ref-8x8.npz", "-o", "r.h5"])
    add("sample-from-seeds-bank", [*S, "--from-seeds", "fx/bank.h5", "-o", "r.h5"])
    add("sample-from-seeds-and-seed", [*S, "--from-seeds", "fx/ref.npz", "--seed", "3", "-n", "2", "-o", "r.h5"])
    add("sample-shard-out-of-range", [*S, "--shard", "2/2", "-o", "r.h5"])
    add("sample-shard-junk", [*S, "--shard", "half", "-o", "r.h5"])
    add("sample-threads-zero", [*S, "--threads", "0", "-o", "r.h5"])
    add("sample-batch-zero", [*S, "--batch-size", "0", "-o", "r.h5"])
    add("sample-resume-and-force", [*S, "--resume", "--force", "-o", "r.h5"])
    add("sample-rgb-paper-schedule-ls-too-big", ["sample", "--bank", "fx/rgb.h5", "--machine", "els",
                                                 "--patch-size", "17", "-o", "r.h5"])
    # ---- sample: scaled locality schedules (--schedule-scale, --late-scale/--late-from)
    add("sample-schedule-scale-zero", [*S, "--schedule-scale", "0", "-o", "r.h5"])
    add("sample-schedule-scale-negative", [*S, "--schedule-scale", "-2", "-o", "r.h5"])
    add("sample-schedule-scale-nan", [*S, "--schedule-scale", "nan", "-o", "r.h5"])
    add("sample-schedule-scale-inf", [*S, "--schedule-scale", "inf", "-o", "r.h5"])
    add("sample-schedule-scale-junk", [*S, "--schedule-scale", "double", "-o", "r.h5"])
    add("sample-schedule-scale-and-late", [*S, "--schedule-scale", "2", "--late-scale", "2", "--late-from", "0.5",
                                           "-o", "r.h5"])
    add("sample-late-scale-without-from", [*S, "--late-scale", "2", "-o", "r.h5"])
    add("sample-late-from-without-scale", [*S, "--late-from", "0.5", "-o", "r.h5"])
    add("sample-late-from-2", [*S, "--late-scale", "2", "--late-from", "2", "-o", "r.h5"])
    add("sample-schedule-scale-is", ["sample", *B, "--machine", "is", "--steps", "3", "--schedule-scale", "2",
                                     "-o", "r.h5"])
    add("sample-schedule-scale-els-too-big", ["sample", *B, "--machine", "els", "--patch-size", "9",
                                              "--schedule-scale", "3", "--steps", "3", "-o", "r.h5"])
    # ---- sample: noise schedules and samplers (--noise-schedule, --sampler, --eta, --grid)
    add("sampler-noise-schedule-unknown", [*S, "--noise-schedule", "sigmoid", "-o", "r.h5"])
    add("sampler-unknown", [*S, "--sampler", "dpm++", "-o", "r.h5"])
    add("sampler-eta-2", [*S, "--eta", "2", "-o", "r.h5"])
    add("sampler-eta-negative", [*S, "--eta", "-0.5", "-o", "r.h5"])
    add("sampler-eta-nan", [*S, "--eta", "nan", "-o", "r.h5"])
    add("sampler-eta-junk", [*S, "--eta", "some", "-o", "r.h5"])
    add("sampler-eta-with-heun", [*S, "--sampler", "heun", "--eta", "0.5", "-o", "r.h5"])
    add("sampler-grid-unknown", [*S, "--grid", "log", "-o", "r.h5"])
    add("sampler-from-seeds-other-schedule", [*S, "--from-seeds", "fx/ref.npz", "--noise-schedule", "linear",
                                              "-o", "r.h5"])
    add("sampler-resume-other-sampler", [*S, "-n", "3", "--sampler", "euler", "--resume", "-o", "fx/run.h5"])
    # ---- sample: the analytic zoo's machines and their parameters
    Z = ["sample", *B, "--steps", "3", "-n", "1", "--quiet"]
    add("zoo-sigma-negative", [*Z, "--machine", "scfdm", "--sigma", "-1", "-o", "r.h5"])
    add("zoo-sigma-nan", [*Z, "--machine", "scfdm", "--sigma", "nan", "-o", "r.h5"])
    add("zoo-sigma-junk", [*Z, "--machine", "scfdm", "--sigma", "wide", "-o", "r.h5"])
    add("zoo-sigma-missing-json", [*Z, "--machine", "scfdm", "--sigma", "nope.json", "-o", "r.h5"])
    add("zoo-sigma-not-json", [*Z, "--machine", "scfdm", "--sigma", "fx/notjson.json", "-o", "r.h5"])
    add("zoo-sigma-schedule-without-sigma", [*Z, "--machine", "scfdm", "--sigma", "fx/mismatch.json", "-o", "r.h5"])
    add("zoo-sigma-for-ls", [*Z, "--machine", "ls", "--patch-size", "3", "--sigma", "0.1", "-o", "r.h5"])
    add("zoo-temperature-zero", [*Z, "--machine", "is", "--temperature", "0", "-o", "r.h5"])
    add("zoo-temperature-negative", [*Z, "--machine", "pca-locality", "--temperature", "-1", "-o", "r.h5"])
    add("zoo-threshold-2", [*Z, "--machine", "pca-locality", "--threshold", "2", "-o", "r.h5"])
    add("zoo-threshold-for-scfdm", [*Z, "--machine", "scfdm", "--threshold", "0.1", "-o", "r.h5"])
    add("zoo-wrap-for-ls", [*Z, "--machine", "ls", "--patch-size", "3", "--wrap", "-o", "r.h5"])
    add("zoo-pspc-even", [*Z, "--machine", "pspc-square", "--patch-size", "4", "-o", "r.h5"])
    add("zoo-wiener-patch-size", [*Z, "--machine", "wiener", "--patch-size", "3", "-o", "r.h5"])
    # ---- sample: outputs
    add("sample-out-missing-dir", [*S, "-o", "nodir/r.h5"])
    add("sample-out-under-file", [*S, "-o", "fx/afile/r.h5"])
    add("sample-out-proc", [*S, "-n", "1", "-o", "/proc/r.h5"])
    add("sample-out-exists", [*S, "-n", "3", "-o", "fx/run.h5"])
    add("sample-out-is-dir", [*S, "-o", "fx/emptydir"])
    add("sample-resume-other-run", [*S, "-n", "3", "--seed", "5", "--resume", "-o", "fx/run.h5"])
    add("sample-resume-bank-file", [*S, "--resume", "-o", "fx/bank.h5"])
    add("sample-png-missing-dir", [*S, "-n", "1", "-o", "r.h5", "--png", "nodir/g.png"])
    add("sample-png-exists", [*S, "-n", "1", "-o", "r.h5", "--png", "fx/afile"])
    add("sample-png-proc", [*S, "-n", "1", "-o", "r.h5", "--png", "/proc/g.png"])
    add("sample-png-is-dir", [*S, "-n", "1", "-o", "r.h5", "--png", "fx/emptydir"])
    add("sample-partial-exists", [*S, "-n", "1", "-o", "p.h5"], *_write("p.h5.partial", b"junk"))
    # ---- merge
    add("merge-missing", ["merge", "nope-0.h5", "nope-1.h5", "-o", "m.h5"])
    add("merge-not-run", ["merge", "fx/bank.h5", "fx/shard-1.h5", "-o", "m.h5"])
    add("merge-truncated", ["merge", "fx/trunc-run.h5", "fx/shard-1.h5", "-o", "m.h5"])
    add("merge-other-runs", ["merge", "fx/run.h5", "fx/run-seed1.h5", "-o", "m.h5"])
    add("merge-overlap", ["merge", "fx/shard-0.h5", "fx/shard-0.h5", "-o", "m.h5"])
    add("merge-missing-shard", ["merge", "fx/shard-0.h5", "-o", "m.h5"])
    add("merge-out-exists", ["merge", "fx/shard-0.h5", "fx/shard-1.h5", "-o", "fx/run.h5"])
    add("merge-out-missing-dir", ["merge", "fx/shard-0.h5", "fx/shard-1.h5", "-o", "nodir/m.h5"])
    add("merge-out-under-file", ["merge", "fx/shard-0.h5", "fx/shard-1.h5", "-o", "fx/afile/m.h5"])
    add("merge-out-proc", ["merge", "fx/shard-0.h5", "fx/shard-1.h5", "-o", "/proc/m.h5"])
    # ---- export
    add("export-missing", ["export", "nope.h5", "-o", "e.npz"])
    add("export-not-run", ["export", "fx/bank.h5", "-o", "e.npz"])
    add("export-truncated", ["export", "fx/trunc-run.h5", "-o", "e.npz"])
    add("export-txt", ["export", "fx/run.h5", "-o", "f.txt"])
    add("export-h5", ["export", "fx/run.h5", "-o", "f.h5"])
    add("export-scale-zero", ["export", "fx/run.h5", "-o", "pngs-out", "--scale", "0"])
    add("export-npz-exists", ["export", "fx/run.h5", "-o", "fx/trunc.npz"])
    add("export-out-under-file", ["export", "fx/run.h5", "-o", "fx/afile/e.npz"])
    add("export-out-missing-dir", ["export", "fx/run.h5", "-o", "nodir/e.npz"])
    add("export-dir-missing-parent", ["export", "fx/run.h5", "-o", "nodir/pngs"])
    add("export-out-proc", ["export", "fx/run.h5", "-o", "/proc/e.npz"])
    add("export-pngs-proc", ["export", "fx/run.h5", "-o", "/proc/pngs"])
    add("export-pngs-exist", ["export", "fx/run.h5", "-o", "out"], *_png_dir("out", "sample_000000.png"))
    # ---- compare
    add("compare-one-file", ["compare", "fx/ref.npz"])
    add("compare-missing", ["compare", "fx/ref.npz", "nope.h5"])
    add("compare-truncated-ref", ["compare", "fx/trunc.npz", "fx/run.h5"])
    add("compare-text", ["compare", "fx/ref.npz", "fx/text.txt"])
    add("compare-bank-as-run", ["compare", "fx/ref.npz", "fx/bank.h5"])
    add("compare-shapes", ["compare", "fx/ref-8x8.npz", "fx/run.h5"])
    add("compare-no-common-seeds", ["compare", "fx/ref-other-seeds.npz", "fx/run.h5"])
    add("compare-nearest-no-bank", ["compare", "fx/ref.npz", "fx/run.h5", "--nearest"])
    add("compare-nearest-rgb-bank", ["compare", "fx/run.h5", "fx/run-ls.h5", "--nearest", "--bank", "fx/rgb.h5"])
    add("compare-json-csv", ["compare", "fx/ref.npz", "fx/run.h5", "--json", "--csv"])
    add("compare-plot-under-file", ["compare", "fx/ref.npz", "fx/run.h5", "--plot", "fx/afile/figs"])
    add("compare-plot-is-file", ["compare", "fx/ref.npz", "fx/run.h5", "--plot", "fx/afile"])
    add("compare-plot-proc", ["compare", "fx/ref.npz", "fx/run.h5", "--plot", "/proc/figs"])
    add("compare-baseline-missing", ["compare", "fx/ref.npz", "fx/run.h5", "--baseline", "nope.h5"])
    add("compare-plot-missing-dir", ["compare", "fx/ref.npz", "fx/run.h5", "--plot", "nodir/figs"])
    # ---- mosaic
    add("mosaic-missing", ["mosaic", "nope.h5"])
    add("mosaic-not-run", ["mosaic", "fx/bank.h5"])
    add("mosaic-truncated", ["mosaic", "fx/trunc-run.h5"])
    add("mosaic-samples-junk", ["mosaic", "fx/run.h5", "--samples", "a,b"])
    add("mosaic-samples-out-of-range", ["mosaic", "fx/run.h5", "--samples", "99"])
    add("mosaic-tolerance-negative", ["mosaic", "fx/run.h5", "--tolerance", "-1"])
    add("mosaic-json-csv", ["mosaic", "fx/run.h5", "--json", "--csv"])
    add("mosaic-other-bank", ["mosaic", "fx/run.h5", "--bank", "fx/bank-other.h5"])
    add("mosaic-bank-missing", ["mosaic", "fx/run.h5", "--bank", "nope.h5", "-o", "mos"])
    add("mosaic-out-is-file", ["mosaic", "fx/run.h5", "-o", "fx/afile"])
    add("mosaic-out-missing-parent", ["mosaic", "fx/run.h5", "-o", "nodir/mos"])
    add("mosaic-out-proc", ["mosaic", "fx/run.h5", "-o", "/proc/mos"])
    add("mosaic-max-pngs-negative", ["mosaic", "fx/run.h5", "--max-pngs", "-1", "-o", "mos"])
    add("mosaic-out-fails-late", ["mosaic", "fx/run.h5", "--bank", "fx/rgb.h5", "-o", "mos"])
    # ---- locality-scan
    add("scan-nothing", ["locality-scan", *B])
    add("scan-reference-missing", ["locality-scan", "-r", "nope.npz", *B, "-o", "s.json"])
    add("scan-reference-truncated", ["locality-scan", "-r", "fx/trunc.npz", *B, "-o", "s.json"])
    add("scan-reference-no-eps", ["locality-scan", "-r", "fx/ref-noeps.npz", *B, "-o", "s.json"])
    add("scan-reference-shape", ["locality-scan", "-r", "fx/ref-8x8.npz", *B, "-o", "s.json"])
    add("scan-reference-is-run", ["locality-scan", "-r", "fx/run.h5", *B, "-o", "s.json"])
    add("scan-machine-is", [*LS[:-4], "--machine", "is", "--candidates", "3,5", "-o", "s.json"])
    add("scan-machine-unknown", [*LS[:-4], "--machine", "foo", "--candidates", "3,5", "-o", "s.json"])
    add("scan-candidates-even", [*LS[:-3], "--candidates", "4", "-o", "s.json"])
    add("scan-candidates-reversed", [*LS[:-3], "--candidates", "9:3", "-o", "s.json"])
    add("scan-candidates-junk", [*LS[:-3], "--candidates", "small", "-o", "s.json"])
    add("scan-metric-unknown", [*LS, "--metric", "psnr", "-o", "s.json"])
    add("scan-aggregate-unknown", [*LS, "--aggregate", "mean", "-o", "s.json"])
    add("scan-shard-without-scan-out", [*LS, "--shard", "0/2", "-o", "s.json"])
    add("scan-partial-merge", ["locality-scan", "fx/scan-0.h5", "-o", "s.json", "--scan-out", "scan.h5"])
    add("scan-merge-not-scan", ["locality-scan", "fx/run.h5", "-o", "s.json"])
    add("scan-merge-missing", ["locality-scan", "nope-0.h5", "-o", "s.json"])
    add("scan-sweep-with-reference", ["locality-scan", "--sweep", "3,5", "-r", "fx/ref.npz", *B])
    add("scan-sweep-junk", ["locality-scan", "--sweep", "three", *B])
    add("scan-sweep-n-zero", ["locality-scan", "--sweep", "3", *B, "-n", "0"])
    add("scan-out-missing-dir", [*LS, "-o", "nodir/s.json"])
    add("scan-out-exists", [*LS, "-o", "fx/notjson.json"])
    add("scan-out-proc", [*LS, "-o", "/proc/s.json"])
    add("scan-scan-out-exists", [*LS, "-o", "s.json", "--scan-out", "fx/scan-0.h5"])
    add("scan-plot-is-file", [*LS, "-o", "s.json", "--plot", "fx/afile"])
    add("scan-overlay-unknown", [*LS, "-o", "s.json", "--plot", "figs", "--overlay", "paper:NOPE"])
    add("scan-batch-zero", [*LS, "-o", "s.json", "--batch-size", "0"])
    add("scan-parameter-unknown", ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "scfdm",
                                   "--parameter", "gamma", "--candidates", "0,0.1", "-o", "s.json"])
    add("scan-parameter-for-ls", ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "ls",
                                  "--parameter", "sigma", "--candidates", "0,0.1", "-o", "s.json"])
    add("scan-parameter-candidates-junk", ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "scfdm",
                                           "--parameter", "sigma", "--candidates", "a,b", "-o", "s.json"])
    add("scan-parameter-candidates-negative", ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "scfdm",
                                               "--parameter", "sigma", "--candidates", "-1,0.1", "-o", "s.json"])
    add("scan-parameter-and-fixed", ["locality-scan", "-r", "fx/ref.npz", *B, "--machine", "scfdm",
                                     "--parameter", "sigma", "--sigma", "0.1", "--candidates", "0,0.1", "-o", "s.json"])
    add("scan-parameter-with-sweep", ["locality-scan", "--sweep", "3,5", *B, "--parameter", "sigma"])
    # ---- consistency
    add("consistency-nothing", ["consistency", *B])
    add("consistency-missing-run", ["consistency", "nope.h5", *B])
    add("consistency-not-run", ["consistency", "fx/bank.h5", *B])
    add("consistency-truncated-run", ["consistency", "fx/trunc-run.h5", *B])
    add("consistency-rgb-bank", ["consistency", "fx/run-rgb.h5", "--bank", "fx/rgb.h5"])
    add("consistency-features-unknown", ["consistency", "fx/run.h5", *B, "--features", "loops"])
    add("consistency-level-2", ["consistency", "fx/run.h5", *B, "--level", "2"])
    add("consistency-threshold-nan", ["consistency", "fx/run.h5", *B, "--threshold", "nan"])
    add("consistency-sweep-one-run", ["consistency", "fx/run.h5", *B, "--sweep"])
    add("consistency-grid-zero", ["consistency", "fx/run.h5", *B, "--grid-size", "0"])
    add("consistency-json-csv", ["consistency", "fx/run.h5", *B, "--json", "--csv"])
    add("consistency-plot-is-file", ["consistency", "fx/run.h5", *B, "--plot", "fx/afile"])
    add("consistency-reference-truncated", ["consistency", "fx/run.h5", *B, "-r", "fx/trunc.npz"])
    add("consistency-reference-shape", ["consistency", "fx/run.h5", *B, "-r", "fx/ref-8x8.npz"])
    add("consistency-bank-missing", ["consistency", "fx/run.h5", "--bank", "nope.h5"])
    add("consistency-threshold-junk", ["consistency", "fx/run.h5", *B, "--threshold", "ink"])
    add("consistency-level-negative", ["consistency", "fx/run.h5", *B, "--level", "-0.1"])
    add("consistency-reference-missing", ["consistency", "fx/run.h5", *B, "-r", "nope.npz"])
    add("consistency-bank-is-run", ["consistency", "fx/run.h5", "--bank", "fx/run.h5"])
    add("consistency-plot-fails-late", ["consistency", "fx/run.h5", "--bank", "fx/rgb.h5", "--plot", "figs"])
    # ---- guard: outputs that destroy inputs or each other, file outputs named as directories, exclusive
    # options, thresholds outside the value range, options of parameters the machine lacks, inputs first
    add("guard-sample-o-is-png", [*S, "-n", "1", "-o", "x.h5", "--png", "./x.h5"])
    add("guard-sample-o-is-bank", [*S, "-n", "1", "-o", "fx/bank.h5", "--force"])
    add("guard-sample-png-is-bank", [*S, "-n", "1", "-o", "r.h5", "--png", "fx/bank.h5", "--force"])
    add("guard-sample-o-is-from-seeds", [*S, "--from-seeds", "fx/run.h5", "-o", "fx/run.h5", "--force"])
    add("guard-merge-o-is-input", ["merge", "fx/run.h5", "-o", "./fx/run.h5", "--force"])
    add("guard-export-o-is-run", ["export", "fx/run.h5", "-o", "fx/run.h5", "--force"])
    add("guard-scan-out-is-input", ["locality-scan", "fx/run.h5", "--scan-out", "fx/run.h5", "--force"])
    add("guard-scan-o-is-scan-out", [*LS, "-o", "s.h5", "--scan-out", "s.h5"])
    add("guard-bank-o-dot", ["build-bank", "fx/imgs.npz", "-o", "."])
    add("guard-bank-o-slash", ["build-bank", "fx/imgs.npz", "-o", "sub/"])
    add("guard-sample-o-slash", [*S, "-n", "1", "-o", "sub/"])
    add("guard-merge-o-dir", ["merge", "fx/run.h5", "-o", "fx/emptydir"])
    add("guard-scan-o-empty", [*LS, "-o", ""])
    add("guard-bank-grayscale-rgb", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--grayscale", "--rgb"])
    add("guard-scan-sweep-with-o", ["locality-scan", "--sweep", "3,5", *B, "-o", "s.json"])
    add("guard-consistency-threshold-5", ["consistency", "fx/run.h5", *B, "--threshold", "5"])
    add("guard-sample-wiener-patch-size", ["sample", *B, "--machine", "wiener", "--patch-size", "5", "-o", "r.h5"])
    add("guard-sample-is-schedule-scale", ["sample", *B, "--machine", "is", "--schedule-scale", "2", "-o", "r.h5"])
    add("guard-scan-missing-ref-shard", ["locality-scan", "-r", "nonexist.npz", *B, "--shard", "0/16", "-o", "s.json"])
    # ---- polish: elscli's words for bad option values (never the parser's or the OS's), odd patch sizes said as
    # such, options that would be accepted and ignored refused
    says = lambda id, args, words, setup=None, teardown=None, env=None: C.append(
        Case(id, args, setup, teardown, says=words, env=env))
    says("polish-bank-limit-negative", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--limit", "-5"],
         ["--limit must be at least 1"])
    says("polish-bank-value-range-reversed", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--value-range", "1,-1"],
         ["--value-range must be one of"])
    says("polish-bank-subset-seed-negative", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--limit", "3",
                                              "--subset-seed", "-3"], ["--subset-seed"])
    says("polish-bank-subset-seed-without-limit", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--subset-seed", "3"],
         ["--limit"])
    says("polish-bank-coarse-not-cifar", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--coarse"], ["--coarse"])
    says("polish-bank-layout-of-bank", ["build-bank", "fx/bank.h5", "-o", "b.h5", "--layout", "nhwc"], ["--layout"])
    says("polish-sample-steps-not-int", [*S, "-o", "r.h5", "--steps", "many"], ["--steps must be a whole number"])
    says("polish-sample-seed-huge", [*S, "-o", "r.h5", "--seed", str(2 ** 70)], ["--seed"])
    says("polish-sample-patch-size-even", ["sample", *B, "--steps", "3", "--patch-size", "4", "-o", "r.h5"],
         ["--patch-size 4", "must be odd"])
    says("polish-sample-schedule-even", ["sample", *B, "--steps", "3", "--schedule", "4", "-o", "r.h5"],
         ["--schedule 4", "must be odd"])
    says("polish-sample-schedule-json-even", ["sample", *B, "--steps", "3", "--schedule", "fx/even.json",
                                              "-o", "r.h5"], ["must be odd"])
    says("polish-sample-cache-under-file", ["sample", "--steps", "3", "-n", "1", "-o", "r.h5"],
         ["ELSCLI_CACHE", "is a file, not a directory"], env={"ELSCLI_CACHE": "{root}/fx/afile/cache"})
    says("polish-scan-candidates-even-range", [*LS[:-3], "--candidates", "4:8", "-o", "s.json"],
         ["must be odd", "even size 4"])
    says("polish-scan-candidates-even-list", [*LS[:-3], "--candidates", "4,6", "-o", "s.json"],
         ["must be odd", "4, 6 are even"])
    says("polish-scan-sweep-even", ["locality-scan", "--sweep", "4,6", *B], ["--sweep", "must be odd"])
    says("polish-scan-sweep-batch-size", ["locality-scan", "--sweep", "3", *B, "--batch-size", "4"], ["--batch-size"])
    says("polish-scan-calibration-steps", [*LS, "-o", "s.json", "--steps", "4"], ["--steps is for --sweep only"])
    says("polish-export-npz-scale", ["export", "fx/run.h5", "-o", "f.npz", "--scale", "4"], ["--scale", ".npz"])
    says("polish-mosaic-tolerance-without-bank", ["mosaic", "fx/run.h5", "--tolerance", "0.1"], ["--tolerance"])
    says("polish-mosaic-tolerance-nan", ["mosaic", "fx/run.h5", *B, "--tolerance", "nan"], ["--tolerance"])
    says("polish-mosaic-max-pngs-without-o", ["mosaic", "fx/run.h5", "--max-pngs", "3"], ["--max-pngs"])
    says("polish-consistency-grid-size-without-plot", ["consistency", "fx/run.h5", *B, "--grid-size", "4"],
         ["--grid-size"])
    says("polish-compare-bank-without-nearest", ["compare", "fx/ref.npz", "fx/run.h5", *B], ["--nearest"])
    says("polish-compare-per-sample-csv", ["compare", "fx/ref.npz", "fx/run.h5", "--per-sample", "--csv"],
         ["--per-sample"])
    says("polish-sample-label-huge", [*S, "-o", "r.h5", "--label", str(10 ** 20)], ["--label must be at most"])
    says("polish-bank-size-huge", ["build-bank", "fx/imgs.npz", "-o", "b.h5", "--size", "999999"], ["--size"])
    says("polish-sample-schedule-scale-huge", ["sample", *B, "--steps", "3", "--patch-size", "3", "--schedule-scale",
                                               "1e308", "-o", "r.h5"], ["at most 65535"])
    says("polish-sample-steps-huge", [*S, "-o", "r.h5", "--steps", str(10 ** 16)], ["out of memory"])
    says("polish-export-scale-huge", ["export", "fx/run.h5", "-o", "pngs-out", "--scale", "100000"], ["--scale"])
    return C


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elscli", default=shutil.which("elscli") or "elscli", help="the elscli executable to test")
    ap.add_argument("-k", default="", help="only cases whose id contains this")
    ap.add_argument("--json", type=Path, help="write every case's result here")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="elscli-bad-inputs-"))
    root = tmp / "work"
    root.mkdir()
    try:
        sweep = Sweep(args.elscli, root, args.timeout)
        sweep.fixtures()
        results = []
        selected = [c for c in cases() if args.k in c.id]
        for case in selected:
            r = sweep.check(case)
            results.append(r)
            if r["status"] == "unclean":
                err = textwrap.shorten(" | ".join(ln for ln in r["stderr"].splitlines() if ln.strip()), 300)
                print(f"UNCLEAN {r['id']}: {'; '.join(r['problems'])}\n    elscli {' '.join(r['args'])}\n"
                      f"    stderr: {err}", flush=True)
        counts = {s: sum(r["status"] == s for r in results) for s in ("clean", "unclean", "n/a")}
        applicable = counts["clean"] + counts["unclean"]
        print(f"bad_inputs: {counts['clean']} of {applicable} cases clean ({counts['unclean']} unclean, "
              f"{counts['n/a']} n/a: commands this elscli lacks); elscli = {args.elscli}")
        if args.json:
            args.json.write_text(json.dumps({"elscli": args.elscli, "counts": counts, "cases": results}, indent=1))
        return 0 if counts["unclean"] == 0 else 1
    finally:
        if args.keep:
            print(f"bad_inputs: work directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
