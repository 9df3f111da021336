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
wire() {
  curl -fsS "http://127.0.0.1:$((PORT + 3))/metrics" | awk -v lo="$(awk '$1 == "lo:" { print $2 }' /proc/net/dev)" '
    /^api_s3_request_counter\{api_endpoint="GetObject"\}/ { g = $2 } /^block_bytes_read / { b = $2 }
    END { printf "%.0f %.0f %.0f\n", g, b, lo }'
}
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
    echo "$out" | jq -r --arg l "$(basename "$X")" --arg w "$(awk -v a="$w0" -v b="$w1" 'BEGIN { split(a, x, " "); split(b, y, " ");
      printf "%.0f GETs, %.0f MiB over loopback, %.0f MiB of Garage blocks read", y[1] - x[1], (y[3] - x[3]) / 1048576, (y[2] - x[2]) / 1048576 }')" \
      --arg c "$(( c1 - c0 ))" --arg h "$hwm" '"  \($l): \(.files / .seconds | floor) files/s; \($w); daemon \($c) ticks, VmHWM \($h) MiB"'
  done
done
