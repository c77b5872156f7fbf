#!/usr/bin/env bash
# The quick start's first run as a new user meets it: a fresh clone of COMMIT (default HEAD), a fresh venv, an
# empty Numba cache (the clone's __pycache__) and an empty elscli cache (the bundled bank is built), then the
# README's first command timed cold (compiling) and warm (cached), each with Numba's compile time measured
# (benchmarks/compile_profile.py).  Timings on a shared machine are noisy: compare the cold/warm ratio, and
# note the load average printed with them.
#
#   benchmarks/first_run.sh [COMMIT]            # e.g. benchmarks/first_run.sh 05e4b3b
#   FIRST_RUN_PROFILE=0 benchmarks/first_run.sh  # only the timed cold and warm runs (no second cold compile)
set -euo pipefail
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
COMMIT=${1:-HEAD}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/elscli-first-run.XXXXXX")
PROFILE="$REPO/benchmarks/compile_profile.py"   # the profiler of the checkout running this script
echo "first_run: $COMMIT in $WORK; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
git clone -q "$REPO" "$WORK/elscli"
git -C "$WORK/elscli" checkout -q "$COMMIT"
python3 -m venv "$WORK/venv"
. "$WORK/venv/bin/activate"
t0=$(date +%s.%N)
pip install -q -e "$WORK/elscli" 2>/dev/null
t1=$(date +%s.%N)
echo "first_run: pip install -e . took $(echo "$t1 - $t0" | bc) s"
export ELSCLI_CACHE="$WORK/cache"
unset NUMBA_CACHE_DIR NUMBA_DISABLE_JIT || true
cd "$WORK/elscli"
for pass in cold warm; do
  t0=$(date +%s.%N)
  elscli sample -n 4 -o run.h5 --png grid.png --force 2> "$WORK/$pass.stderr" > /dev/null
  t1=$(date +%s.%N)
  echo "first_run: $pass: elscli sample -n 4 -o run.h5 --png grid.png --force took $(echo "$t1 - $t0" | bc) s (load $(cut -d' ' -f1 /proc/loadavg))"
  sed 's/^/first_run:   | /' "$WORK/$pass.stderr"
done
t0=$(date +%s.%N); elscli info run.h5 > /dev/null; t1=$(date +%s.%N)
echo "first_run: elscli info run.h5 took $(echo "$t1 - $t0" | bc) s"
if [ "${FIRST_RUN_PROFILE:-1}" = 0 ]; then echo "first_run: leaving $WORK (remove it when done)"; exit 0; fi
# the compile part alone: the same command in-process with Numba's compile events timed, on a cleared cache
find "$WORK/elscli" -name '__pycache__' -path '*elscli/elscli*' -prune -exec rm -rf {} + 
rm -rf "$ELSCLI_CACHE"
python "$PROFILE" sample -n 4 -o run.h5 --png grid.png --force 2>&1 >/dev/null | grep compile_profile | sed 's/^/first_run: cold /'
python "$PROFILE" sample -n 4 -o run.h5 --png grid.png --force 2>&1 >/dev/null | grep compile_profile | head -1 | sed 's/^/first_run: warm /'
echo "first_run: leaving $WORK (remove it when done)"
