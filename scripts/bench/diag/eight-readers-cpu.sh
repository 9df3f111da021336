#!/bin/bash
# Where eight cold readers' CPU goes (docs/benchmarks.md, goal 2): eight 256 MiB files read at once as raw
# ranged GETs of the packs (curl 8 MiB x 8), through assetfs, and through mountpoint-s3 (plain objects), with
# wall time, Garage's CPU, the client's CPU and Garage's block reads per round. ROUNDS (3); ASSETFS_BIN_B: a
# second build read beside the first (A/B, order swapped in even rounds); MP=0 skips mountpoint-s3; PERF=1:
# `perf record --call-graph dwarf` of the first build's daemon into /tmp/e8-perf-<round>.data. Root;
# needs garage, curl, the repo's .venv, and the mountpoint-s3 baseline binary of bench-mount.sh.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
MP_BIN=${BENCH_MOUNT_MP_BIN:-/root/.cache/assetfs-bench/mountpoint-s3/target/release/mp-mount}
PORT=${AWS_ENDPOINT_URL##*:}
S=s3://bench/e8
for i in 0 1 2 3 4 5 6 7; do head -c $((256 << 20)) /dev/urandom >"$W/src/f$i.bin"; done
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push models/eight "$W/src" -m p >/dev/null 2>&1
if [ "${MP:-1}" = 1 ]; then for i in 0 1 2 3 4 5 6 7; do $PY $T put bench "e8-plain/f$i.bin" "$W/src/f$i.bin" >/dev/null; done; fi
rm -f "$W"/src/f*.bin
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
blocks() { curl -fsS "http://127.0.0.1:$((PORT + 3))/metrics" | awk '/^block_bytes_read / { printf "%.0f", $2 }'; }
# measure LABEL PID CMD...: one timed step; PID is the client daemon (or empty).
measure() {
  local label=$1 pid=$2 g0 b0 c0=0 t0 t1
  shift 2
  sync; echo 3 >/proc/sys/vm/drop_caches
  g0=$(ticks "$GARAGE_PID"); b0=$(blocks); [ -n "$pid" ] && c0=$(ticks "$pid")
  s0=$(head -1 /proc/stat); t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N); s1=$(head -1 /proc/stat)
  awk -v l="$label" -v t0="$t0" -v t1="$t1" -v g="$(( $(ticks "$GARAGE_PID") - g0 ))" \
    -v c="$([ -n "$pid" ] && echo $(( $(ticks "$pid") - c0 )) || echo 0)" -v b="$(( $(blocks) - b0 ))" \
    -v busy="$(printf '%s\n%s\n' "$s0" "$s1" | awk '{ b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6; if (NR == 1) { b0 = b; t0 = t } else printf "%.0f", 100 * (b - b0) / (t - t0) }')" \
    'BEGIN { s = t1 - t0; printf "  %-28s %6.0f MiB/s  %.2f s  garage %3d ticks  client %3d ticks  blocks %.3fx  machine busy %d%%\n", l, 2048 / s, s, g, c, b / 2147483648, busy }'
}
files() { for i in 0 1 2 3 4 5 6 7; do echo "$1/f$i.bin"; done; }
for r in $(seq "${ROUNDS:-3}"); do
  echo "round $r"
  measure "raw curl 8 MiB x 8" "" $PY $T rawget-curl bench e8/packs 8192 8
  for X in $(ab_order "$r" "$A" "${ASSETFS_BIN_B:-}"); do
    rm -rf "$W/c"
    $X --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    PP=
    if [ -n "${PERF:-}" ] && [ "$X" = "$A" ]; then
      perf record -F 1999 --call-graph dwarf,16384 -o "/tmp/e8-perf-$r.data" -p "$PID" >/dev/null 2>&1 & PP=$!; sleep 0.5
    fi
    # shellcheck disable=SC2046
    measure "assetfs $(basename "$X")" "$PID" $PY $T readers $(files "$W/mnt/models/eight@1")
    if [ -n "$PP" ]; then kill -INT "$PP"; wait "$PP" || true; fi
    $X unmount "$W/mnt" >/dev/null
  done
  if [ "${MP:-1}" = 1 ]; then
    mkdir -p "$W/mp"
    env -u AWS_CA_BUNDLE "$MP_BIN" bench/e8-plain "$W/mp" --endpoint-url "$AWS_ENDPOINT_URL" --region garage >"$W/mp.log" 2>&1 &
    MPID=$!
    for _ in $(seq 100); do [ -e "$W/mp/f0.bin" ] && break; sleep 0.1; done
    # shellcheck disable=SC2046
    measure "mountpoint-s3" "$MPID" $PY $T readers $(files "$W/mp")
    umount "$W/mp"; wait "$MPID" || true
  fi
done
