#!/usr/bin/env bash
# The locality-vs-consistency sweep and the network comparison of README "Spatial inconsistency":
# bbELS on all of mnist-5k from the seeds and time grid of shared/data/reference-resnet-mnist, with the
# calibrated schedule scaled by F (sample --schedule-scale F), IS from the same seeds, then
# `elscli consistency` on the runs and on the network's own finals.
#
#   bash benchmarks/consistency_sweep.sh [OUTDIR] [SHARED_DATA]
#
# Environment: SCALES (default "1 0.5 2 0.75 1.5"), THREADS (default 1), ELSCLI (the command, default elscli),
# DOCS (a directory: the README's figures are copied there, e.g. DOCS=$PWD/docs/consistency),
# SCHEDULE (a schedule JSON; default: the README's calibrated bbELS schedule, written to OUTDIR/bbels.json —
# point it at a recalibrated `locality-scan -o` file to regenerate everything).  Every `sample` runs with
# --resume, so the script continues where an interrupted run stopped; finished runs are skipped.
# Cost: ~20-60 s per bbELS sample (mnist-5k, one thread, more at F = 2), 32 samples per scale.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-consistency-sweep}
SHARED=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
SHARED=$(cd "$SHARED" && pwd)
SCALES=${SCALES:-1 0.5 2 0.75 1.5}
THREADS=${THREADS:-1}
ELSCLI=${ELSCLI:-elscli}
mkdir -p "$OUT/plots/sweep" "$OUT/plots/network"
cd "$OUT"
REF="$SHARED/reference-resnet-mnist/trajectories.npz"

[ -f mnist5k.h5 ] || $ELSCLI build-bank "$SHARED/mnist-5k" -o mnist5k.h5      # 28 -> 32 bilinear, [-1, 1]

# The calibrated bbELS schedule of README "Results": [11, 9, 7x6, 5x7, 3x5] on the reference's 20-step grid.
if [ -z "${SCHEDULE:-}" ]; then
    SCHEDULE=bbels.json
    cat > "$SCHEDULE" <<'JSON'
{"times": [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05],
 "patch_sizes": [11, 9, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 3, 3, 3, 3, 3]}
JSON
fi

$ELSCLI sample --bank mnist5k.h5 --machine is --from-seeds "$REF" -o is.h5 --threads "$THREADS" --resume --quiet
for F in $SCALES; do
    $ELSCLI sample --bank mnist5k.h5 --machine bbels --schedule "$SCHEDULE" --schedule-scale "$F" \
        --from-seeds "$REF" -o "bbels-F$F.h5" --threads "$THREADS" --resume --quiet
done

# The curve (median components / end points, the inconsistent fraction, the copy fraction) against F ...
$ELSCLI consistency --sweep bbels-F*.h5 --bank mnist5k.h5 --reference "$REF" --plot plots/sweep --json > sweep.json
$ELSCLI consistency --sweep bbels-F*.h5 --bank mnist5k.h5 --reference "$REF"
# ... and the network against the calibrated machine and IS, sample by sample.
$ELSCLI consistency bbels-F1.h5 is.h5 --bank mnist5k.h5 --reference "$REF" --plot plots/network --json > network.json
$ELSCLI consistency bbels-F1.h5 is.h5 --bank mnist5k.h5 --reference "$REF"

# The README's tables (Markdown) and figures.
python "$HERE/consistency_readme.py" sweep.json network.json > readme-section.md
cat readme-section.md
if [ -n "${DOCS:-}" ]; then
    mkdir -p "$DOCS"
    cp plots/sweep/sweep.png "$DOCS/sweep.png"
    cp plots/sweep/paired.png "$DOCS/paired-sweep.png"
    cp plots/network/agreement.png plots/network/histograms.png plots/network/grid-network.png \
       plots/network/grid-bbels-F1.png "$DOCS/"
fi
