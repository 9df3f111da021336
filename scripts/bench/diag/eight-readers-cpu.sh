#!/bin/bash
# Where eight cold readers' CPU goes (docs/benchmarks.md, goal 2): eight 256 MiB files read at once as raw
# ranged GETs of the packs (curl 8 MiB x 8), through assetfs, and through mountpoint-s3 (plain objects), with
# wall time, Garage's CPU, the client's CPU and Garage's block reads per round. ROUNDS (3); ASSETFS_BIN_B: a
# second build read beside the first (A/B, order swapped in even rounds); MP=0 skips mountpoint-s3; PERF=1:
# `perf record --call-graph dwarf` of the first build's daemon into /tmp/e8-perf-<round>.data. FILES (8) and
# MIB (256): how many files of what size (FILES=1 MIB=1024 is goal 1's read). PIN=1: Garage on CPU 0 and
# every client (curl, the mounts, the readers) on CPU 1, so that no client takes CPU from the server. CONNS=1:
# the TCP connections open to Garage's S3 port during each step, sampled every 20 ms (mean, median, max).
# Each step also prints the machine's iowait share. Root; needs garage, curl, the repo's .venv, and the
# mountpoint-s3 baseline binary of bench-mount.sh.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
MP_BIN=${BENCH_MOUNT_MP_BIN:-/root/.cache/assetfs-bench/mountpoint-s3/target/release/mp-mount}
PORT=${AWS_ENDPOINT_URL##*:}
S=s3://bench/e8
N=${FILES:-8}; MIB=${MIB:-256}; IDS=$(seq 0 $((N - 1)))
PIN=${PIN:-0}; ON=()
if [ "$PIN" = 1 ]; then taskset -a -p 1 "$GARAGE_PID" >/dev/null; ON=(taskset -c 1); fi
for i in $IDS; do head -c $((MIB << 20)) /dev/urandom >"$W/src/f$i.bin"; done
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push models/eight "$W/src" -m p >/dev/null 2>&1
if [ "${MP:-1}" = 1 ]; then for i in $IDS; do $PY $T put bench "e8-plain/f$i.bin" "$W/src/f$i.bin" >/dev/null; done; fi
rm -f "$W"/src/f*.bin
source "$ROOT/scripts/bench/garage-metrics.sh"
# measure LABEL PID CMD...: one timed step; PID is the client daemon (or empty).
measure() {
  local label=$1 pid=$2 g0 b0 c0=0 t0 t1
  shift 2
  sync; echo 3 >/proc/sys/vm/drop_caches
  g0=$(ticks "$GARAGE_PID"); b0=$(blocks); [ -n "$pid" ] && c0=$(ticks "$pid")
  s0=$(head -1 /proc/stat); t0=$(date +%s.%N)
  local sp=
  if [ "${CONNS:-0}" = 1 ]; then
    (while :; do ss -Htn state established "( sport = :$PORT )" | wc -l; sleep 0.02; done) >"$W/conns" 2>/dev/null &
    sp=$!
  fi
  "$@" >/dev/null
  t1=$(date +%s.%N); s1=$(head -1 /proc/stat)
  if [ -n "$sp" ]; then
    kill "$sp"; wait "$sp" 2>/dev/null || true
    echo "    connections to Garage: $(sort -n "$W/conns" | awk '{ a[NR] = $1; s += $1 } END { printf "mean %.1f, median %d, max %d", s / NR, a[int(NR / 2) + 1], a[NR] }')"
  fi
  awk -v l="$label" -v t0="$t0" -v t1="$t1" -v g="$(( $(ticks "$GARAGE_PID") - g0 ))" \
    -v c="$([ -n "$pid" ] && echo $(( $(ticks "$pid") - c0 )) || echo 0)" -v b="$(( $(blocks) - b0 ))" \
    -v busy="$(printf '%s\n%s\n' "$s0" "$s1" | awk '{ b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6; if (NR == 1) { b0 = b; t0 = t; w0 = $6 } else printf "%.0f%%, iowait %.0f", 100 * (b - b0) / (t - t0), 100 * ($6 - w0) / (t - t0) }')" \
    -v mib="$((N * MIB))" \
    'BEGIN { s = t1 - t0; printf "  %-28s %6.0f MiB/s  %.2f s  garage %3d ticks  client %3d ticks  blocks %.3fx  machine busy %s%%\n", l, mib / s, s, g, c, b / mib / 1048576, busy }'
}
files() { for i in $IDS; do echo "$1/f$i.bin"; done; }
for r in $(seq "${ROUNDS:-3}"); do
  echo "round $r"
  measure "raw curl 8 MiB x 8" "" "${ON[@]}" $PY $T rawget-curl bench e8/packs 8192 8
  for X in $(ab_order "$r" "$A" "${ASSETFS_BIN_B:-}"); do
    rm -rf "$W/c"
    "${ON[@]}" $X --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    PP=
    if [ -n "${PERF:-}" ] && [ "$X" = "$A" ]; then
      perf record -F 1999 --call-graph dwarf,16384 -o "/tmp/e8-perf-$r.data" -p "$PID" >/dev/null 2>&1 & PP=$!; sleep 0.5
    fi
    # shellcheck disable=SC2046
    measure "assetfs $(basename "$X")" "$PID" "${ON[@]}" $PY $T readers $(files "$W/mnt/models/eight@1")
    if [ -n "$PP" ]; then kill -INT "$PP"; wait "$PP" || true; fi
    $X unmount "$W/mnt" >/dev/null
  done
  if [ "${MP:-1}" = 1 ]; then
    mkdir -p "$W/mp"
    env -u AWS_CA_BUNDLE "${ON[@]}" "$MP_BIN" bench/e8-plain "$W/mp" --endpoint-url "$AWS_ENDPOINT_URL" --region garage >"$W/mp.log" 2>&1 &
    MPID=$!
    for _ in $(seq 100); do [ -e "$W/mp/f0.bin" ] && break; sleep 0.1; done
    # shellcheck disable=SC2046
    measure "mountpoint-s3" "$MPID" "${ON[@]}" $PY $T readers $(files "$W/mp")
    umount "$W/mp"; wait "$MPID" || true
  fi
done
