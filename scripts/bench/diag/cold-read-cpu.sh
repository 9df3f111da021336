#!/bin/bash
# CPU per GiB of a cold 1 GiB read (docs/benchmarks.md): raw ranged GETs with curl vs assetfs through
# the mount, and Garage's CPU serving each, three rounds. PERF=1: `perf record -g` of the daemon during each
# mount read into /tmp/cold-perf-<round>.data. ASSETFS_BIN_B: a second build, read beside the first in
# every round, first in even rounds (A/B). Root; needs garage, curl, the repo's .venv.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
S=s3://bench/cb
head -c $((1024<<20)) /dev/urandom > $W/src/big.bin
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push models/big $W/src -m p >/dev/null 2>&1
for r in 1 2 3; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  g0=$(ticks "$GARAGE_PID")
  /usr/bin/time -f "curl client: %U user %S sys %e wall" $PY $T rawget-curl bench cb/packs 8192 8 > /dev/null
  echo "  garage CPU $(( $(ticks "$GARAGE_PID") - g0 )) ticks"
  for X in $(ab_order $r "$A" "${ASSETFS_BIN_B:-}"); do
    rm -rf $W/c$r
    $X --store $S --cache-dir $W/c$r mount $W/mnt >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    sync; echo 3 > /proc/sys/vm/drop_caches
    g0=$(ticks "$GARAGE_PID")
    PP=
    if [ -n "${PERF:-}" ] && [ "$X" = "$A" ]; then perf record -F 1999 -g -o /tmp/cold-perf-$r.data -p "$PID" >/dev/null 2>&1 & PP=$!; sleep 0.5; fi
    /usr/bin/time -f "dd reader ($X): %U user %S sys %e wall" dd if=$W/mnt/models/big@1/big.bin of=/dev/null bs=1M 2>&1 | grep -v records | grep -v bytes
    if [ -n "$PP" ]; then kill -INT "$PP"; wait "$PP" || true; fi
    echo "  garage CPU $(( $(ticks "$GARAGE_PID") - g0 )) ticks; daemon $(ticks "$PID") ticks"
    $X unmount $W/mnt >/dev/null
  done
done
