#!/bin/bash
# A cold DataLoader pass (goal 3a) and what it costs the server: N files (20000) of KIB KiB (100), 200 a
# directory, pushed to Garage as features/dl, read whole by 8 threads in a shuffled order (`mount-tools.py
# loader`, seed = round) through a fresh mount with an empty cache. Per round and build: files/s, GETs,
# bytes over loopback, Garage's block reads (its metrics), the daemon's CPU and peak RSS (VmHWM). ROUNDS (3); ASSETFS_BIN_B: a second build read
# beside the first (order swapped in even rounds). Root; needs garage and the repo's .venv.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
PORT=${AWS_ENDPOINT_URL##*:}
S=s3://bench/dl
N=${N:-20000}; KIB=${KIB:-100}
$PY $T files "$W/src" $((KIB * 1024)) "$N" 200 >/dev/null
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push features/dl "$W/src" -m p >/dev/null 2>&1
source "$ROOT/scripts/bench/garage-metrics.sh"
for r in $(seq "${ROUNDS:-3}"); do
  echo "round $r"
  for X in $(ab_order "$r" "$A" "${ASSETFS_BIN_B:-}"); do
    rm -rf "$W/c"
    $X --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
    sync; echo 3 >/proc/sys/vm/drop_caches
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    w0=$(wire); c0=$(ticks "$PID")
    out=$($PY $T loader "$W/mnt/features/dl@1" "$W/src.list" 8 "$r")
    w1=$(wire); c1=$(ticks "$PID")
    hwm=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
    $X unmount "$W/mnt" >/dev/null
    echo "$out" | jq -r --arg l "$(basename "$X")" --arg w "$(wirediff "$w0" "$w1")" \
      --arg c "$(( c1 - c0 ))" --arg h "$hwm" '"  \($l): \(.files / .seconds | floor) files/s; \($w); daemon \($c) ticks, VmHWM \($h) MiB"'
  done
done
