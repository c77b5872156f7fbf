#!/usr/bin/env bash
# The documented full run of README "Comparing with networks and calibrating locality":
# calibrate bbELS and LS on shared/data/reference-resnet-mnist against all of mnist-5k, sample each (and IS)
# from the reference's own seeds and time grid, and compare sample by sample.
#
#   bash benchmarks/reference_resnet_mnist.sh [OUTDIR] [SHARED_DATA]
#
# Cost on a CPU: LS and IS take minutes; bbELS dominates (every candidate P at every step for every sample
# over 5,000 images).  SHARDS (default 1) splits the bbELS scan into shard files, run here one after the other;
# on a cluster submit each `--shard I/N` line as an array task instead and keep the merge step.
set -euo pipefail
OUT=${1:-full-run}
SHARED=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
SHARDS=${SHARDS:-1}
CANDIDATES=${CANDIDATES:-3:17}
mkdir -p "$OUT/plots"
cd "$OUT"
REF="$SHARED/reference-resnet-mnist/trajectories.npz"

[ -f mnist5k.h5 ] || elscli build-bank "$SHARED/mnist-5k" -o mnist5k.h5      # 28 -> 32 bilinear, [-1, 1]

# 1. calibrate (each machine its own schedule)
elscli locality-scan -r "$REF" --bank mnist5k.h5 --machine ls --candidates 3:31 -o ls.json \
    --scan-out scan-ls.h5 --plot plots --force
for ((i = 0; i < SHARDS; i++)); do
    elscli locality-scan -r "$REF" --bank mnist5k.h5 --machine bbels --candidates "$CANDIDATES" \
        --shard "$i/$SHARDS" --scan-out 'scan-bbels-{shard}.h5' --force
done
if [ "$SHARDS" -gt 1 ]; then
    elscli locality-scan scan-bbels-*.h5 -o bbels.json --scan-out scan-bbels.h5 --plot plots --force
else
    mv scan-bbels-0.h5 scan-bbels.h5 2>/dev/null || true
    elscli locality-scan scan-bbels.h5 -o bbels.json --plot plots --force
fi

# 2. sample from the reference's seeds and time grid
elscli sample --bank mnist5k.h5 --machine bbels --schedule bbels.json --from-seeds "$REF" -o bbels.h5 --force
elscli sample --bank mnist5k.h5 --machine ls --schedule ls.json --from-seeds "$REF" -o ls.h5 --force
elscli sample --bank mnist5k.h5 --machine is --from-seeds "$REF" -o is.h5 --force

# 3. compare (r and r², median and quartiles, fraction beating IS), memorisation, mosaics
elscli compare "$REF" bbels.h5 ls.h5 --baseline is.h5 --plot plots --json > compare.json
elscli compare "$REF" bbels.h5 ls.h5 --baseline is.h5
elscli compare is.h5 bbels.h5 ls.h5 --bank mnist5k.h5 --nearest
elscli mosaic bbels.h5 --bank mnist5k.h5 -o plots --max-pngs 4
