#!/bin/bash
# CPU per GiB of a cold 1 GiB read (docs/benchmarks.md): raw ranged GETs with curl vs assetfs through
# the mount, and Garage's CPU serving each, three rounds. Root; needs garage, curl, the repo's .venv.
set -e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
PY=$ROOT/.venv/bin/python
T=$ROOT/scripts/bench/mount-tools.py
W=$(mktemp -d /tmp/cb.XXXX)
eval "$(${BENCH_GARAGE_UP:-/work/shared/bench/garage-up.sh} $W/garage 3990)"
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1
S=s3://bench/cb
mkdir -p $HOME $W/mnt $W/src
cleanup() { $A unmount $W/mnt >/dev/null 2>&1 || umount -l $W/mnt 2>/dev/null || true; kill $GARAGE_PID 2>/dev/null; sleep 1; rm -rf $W; }
trap cleanup EXIT
head -c $((1024<<20)) /dev/urandom > $W/src/big.bin
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push models/big $W/src -m p >/dev/null 2>&1
gcpu() { awk '{print $14+$15}' /proc/$GARAGE_PID/stat; }
for r in 1 2 3; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  g0=$(gcpu)
  /usr/bin/time -f "curl client: %U user %S sys %e wall" $PY $T rawget-curl bench cb/packs 8192 8 > /dev/null
  echo "  garage CPU $(( $(gcpu) - g0 )) ticks"
  $A --store $S --cache-dir $W/c$r mount $W/mnt >/dev/null
  PID=$(pgrep -f "mount.*$W/mnt" | head -1)
  sync; echo 3 > /proc/sys/vm/drop_caches
  g0=$(gcpu)
  /usr/bin/time -f "dd reader: %U user %S sys %e wall" dd if=$W/mnt/models/big@1/big.bin of=/dev/null bs=1M 2>&1 | grep -v records | grep -v bytes
  echo "  garage CPU $(( $(gcpu) - g0 )) ticks; daemon $(awk '{print $14+$15}' /proc/$PID/stat) ticks"
  $A unmount $W/mnt >/dev/null
done
