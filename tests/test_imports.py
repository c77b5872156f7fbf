"""The package's layering: no import cycles, and every module imports on its own in a fresh interpreter."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "elscli"


def modules():
    """{dotted module name: (path, is_package)} for every module of elscli."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def import_graph():
    """Module -> the elscli modules it imports, at module level or inside functions (both run)."""
    mods = modules()
    edges = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        pkg = m if is_pkg else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from PKG import mod` imports PKG.mod (PKG is already being imported, as for every
                # submodule); `from PKG import name` needs PKG itself.
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            else:
                continue
            edges[m] |= {t for t in targets if t in mods and t != m}
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    edges = import_graph()
    assert len(edges) > 30 and edges["elscli.bank"]  # the graph was really read
    assert cycles(edges) == []


def test_readers_sit_below_the_bank():
    edges = import_graph()
    readers = [m for m in edges if m == "elscli.readers" or m.startswith("elscli.readers.")]
    assert readers and not any("elscli.bank" in edges[m] for m in readers)
    assert "elscli.pixels" in edges["elscli.bank"]


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_imports_alone(module):
    """A fresh interpreter imports the module by itself (a cycle broken only by import order would fail)."""
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------------------ the environment at the edge
#: Reading the process environment: ``os.environ``/``os.environb`` (and ``environ[...]`` after ``from os
#: import environ``), ``os.getenv``/``getenv``, and writing it (``putenv``, ``unsetenv``).
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}

#: The documented exceptions: two kernel modules ask Numba for settings it took from its own ``NUMBA_*``
#: variables when it was imported, which bind every caller alike and which the library cannot take as an
#: argument without disagreeing with Numba:
#: - ``elscli/kernels/threads.py`` (:func:`~elscli.kernels.threads.thread_limit`): the size of Numba's thread
#:   pool (``numba.config.NUMBA_NUM_THREADS``) — Numba cannot run more threads (``set_num_threads`` refuses),
#:   so it is runtime state like a CPU count; every other module asks ``thread_limit()``;
#: - ``elscli/kernels/lanes.py``: the CPU features Numba compiles for (``numba.core.config.CPU_FEATURES``,
#:   ``NUMBA_CPU_FEATURES``), which decide whether the AVX-512 compress store exists in the generated code
#:   (the lane-compression route; speed only, results do not depend on it).
NUMBA_CONFIG_ALLOWED = {"elscli.kernels.threads", "elscli.kernels.lanes"}


def environment_reads(source: str):
    """(line, what) of every reading of the environment in ``source``: the names above as attributes
    (``os.environ``, ``os.getenv``) or bare names (``environ[...]`` after ``from os import environ``), imports
    of them from ``os``, and ``numba.config`` (Numba's settings, taken from ``NUMBA_*`` variables)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in ENVIRONMENT_NAMES:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "posix", "nt") \
                and {a.name for a in node.names} & ENVIRONMENT_NAMES:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Attribute) and node.attr == "config" and isinstance(node.value, ast.Name) \
                and node.value.id == "numba":
            found.append((node.lineno, "numba.config"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("numba") \
                and ("config" in {a.name for a in node.names} or node.module == "numba.config"):
            found.append((node.lineno, "numba.config"))
    return found


def test_the_environment_finder_finds_every_form():
    src = ("import os\nfrom os import environ, getenv\nimport numba\nfrom numba import config\n"
           "a = os.environ.get('X')\nb = os.getenv('Y')\nc = environ['Z']\nd = getenv('W')\n"
           "e = numba.config.NUMBA_NUM_THREADS\nos.putenv('A', '1')\n")
    lines = sorted({line for line, _ in environment_reads(src)})
    assert lines == [2, 4, 5, 6, 7, 8, 9, 10]
    assert environment_reads("import os\nx = os.path.join('a', 'b')\nenviron_like = 1\n") == []


def test_the_environment_is_read_only_at_the_cli_edge():
    """The brief: the environment (Slurm, threads, elscli's own variables) is read only in elscli/cli/
    (elscli/cli/environment.py, and ELSCLI_DEBUG in elscli.cli.main); the library takes arguments."""
    offenders, numba_config = [], []
    for m, (path, _) in modules().items():
        if m == "elscli.cli" or m.startswith("elscli.cli."):
            continue
        for line, what in environment_reads(path.read_text()):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} {what}"
            if what == "numba.config":
                if m not in NUMBA_CONFIG_ALLOWED:
                    offenders.append(where)
                numba_config.append(m)
            else:
                offenders.append(where)
    assert offenders == []
    assert set(numba_config) == NUMBA_CONFIG_ALLOWED     # the exception is still needed, and still the only one
    cli = [environment_reads(p.read_text()) for m, (p, _) in modules().items() if m.startswith("elscli.cli")]
    assert any(cli)                                       # the edge does read it (the finder is looking)
