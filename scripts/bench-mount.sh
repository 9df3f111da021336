#!/usr/bin/env bash
# Mount benchmarks of assetfs (issue 3), in one run (about 15-25 minutes on 2 cores). See docs/benchmarks.md.
#
#   cargo build --release && scripts/bench-mount.sh
#
# Needs root (drop_caches, FUSE mounts), /dev/fuse, fio, rclone, s3fs, jq, python3 with boto3, and a Garage
# binary (`garage` on PATH or ~/.cargo/bin/garage) for /work/shared/bench/garage-up.sh.
# Prints a markdown results table to stdout and writes it to target/bench-mount.md; progress goes to stderr.
# Every ratio is against a baseline measured in the same run; timed steps run BENCH_MOUNT_RUNS times (median);
# `sync; echo 3 > /proc/sys/vm/drop_caches` runs before every timed step.
#
#   1. cold sequential read (dd bs=1M) of a BIG_MIB random file pushed to a local Garage S3 server, empty assetfs
#      cache, vs (a) raw ranged GETs of the same pack objects (boto3, 8 MiB ranges, 8 in flight),
#      (b) rclone mount (--vfs-cache-mode off) and (c) s3fs of the original file uploaded as one plain object
#   2. warm sequential read (assetfs cache populated, page cache dropped, fresh mount) vs the local file
#   3. 4 KiB random reads (fio psync, warm cache) vs the local file
#   4. time to first byte (open + first 4 KiB read) on a live, fresh mount with an empty cache
#   5. find | wc -l and du -s of a 100,000-tiny-file version (file:// store, fresh mount) vs the same local tree
#   6. peak RSS (VmHWM) of the mount daemon in every case, plus streaming a HUGE_MIB file (file:// store, cold)
#      and listing a 1,000,000-file version (300,000 if the push would take over BENCH_MOUNT_MANY_LIMIT_S)
#
# Knobs (environment, defaults in brackets):
#   BENCH_MOUNT_PARTS [123456]       which parts to run (2-4 reuse part 1's setup and run it if needed)
#   BENCH_MOUNT_BIG_MIB [1024]       size of the file of parts 1-4
#   BENCH_MOUNT_RUNS [3]             repetitions of each timed step (median reported)
#   BENCH_MOUNT_RANGE_KIB [8192] BENCH_MOUNT_CONC [8]   raw GET baseline: range size and requests in flight
#   BENCH_MOUNT_FIO_S [20]           fio runtime of part 3 (each side)
#   BENCH_MOUNT_TTFB_RUNS [7]        repetitions of part 4 (cheap; its latencies are bimodal, see docs/benchmarks.md)
#   BENCH_MOUNT_SMALL_DIRS [100] BENCH_MOUNT_SMALL_PER_DIR [1000]   part 5 tree
#   BENCH_MOUNT_HUGE_MIB [4096]      part 6 streamed file
#   BENCH_MOUNT_MANY_DIRS [1000] BENCH_MOUNT_MANY_PER_DIR [1000]     part 6 large tree ...
#   BENCH_MOUNT_MANY_LIMIT_S [480]   ... pushed only if the push (extrapolated from part 5's push) fits in this,
#   BENCH_MOUNT_MANY_FALLBACK_DIRS [300]  ... else (or on timeout) this many directories of it
#   BENCH_MOUNT_CACHE_SIZE [20G]     --cache-size of the mounts
#   BENCH_MOUNT_GARAGE_PORT [3950]   Garage S3 port (uses PORT..PORT+3)
#   BENCH_MOUNT_TMP [/tmp]           where the work directory goes (needs ~12 GiB and 1M inodes)
#   BENCH_MOUNT_KEEP [0]             1: keep the work directory
#   ASSETFS_BIN [target/release/assetfs]   BENCH_PYTHON [.venv/bin/python if it has boto3, else python3]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
TOOLS="$ROOT/scripts/bench/mount-tools.py"
GARAGE_UP=${BENCH_GARAGE_UP:-/work/shared/bench/garage-up.sh}
if [ -n "${BENCH_PYTHON:-}" ]; then PY=$BENCH_PYTHON
elif "$ROOT/.venv/bin/python" -c 'import boto3' 2>/dev/null; then PY=$ROOT/.venv/bin/python
else PY=python3; fi

PARTS=${BENCH_MOUNT_PARTS:-123456}
BIG_MIB=${BENCH_MOUNT_BIG_MIB:-1024}
RUNS=${BENCH_MOUNT_RUNS:-3}
RANGE_KIB=${BENCH_MOUNT_RANGE_KIB:-8192}
CONC=${BENCH_MOUNT_CONC:-8}
FIO_S=${BENCH_MOUNT_FIO_S:-20}
TTFB_RUNS=${BENCH_MOUNT_TTFB_RUNS:-7}
SMALL_DIRS=${BENCH_MOUNT_SMALL_DIRS:-100}
SMALL_PER_DIR=${BENCH_MOUNT_SMALL_PER_DIR:-1000}
HUGE_MIB=${BENCH_MOUNT_HUGE_MIB:-4096}
MANY_DIRS=${BENCH_MOUNT_MANY_DIRS:-1000}
MANY_PER_DIR=${BENCH_MOUNT_MANY_PER_DIR:-1000}
MANY_LIMIT=${BENCH_MOUNT_MANY_LIMIT_S:-480}
MANY_FALLBACK_DIRS=${BENCH_MOUNT_MANY_FALLBACK_DIRS:-300}
CACHE_SIZE=${BENCH_MOUNT_CACHE_SIZE:-20G}
PORT=${BENCH_MOUNT_GARAGE_PORT:-3950}
KEEP=${BENCH_MOUNT_KEEP:-0}

log() { echo "[bench-mount $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (drop_caches and FUSE mounts)"
[ -x "$BIN" ] || die "$BIN not found: run cargo build --release first"
[ -e /dev/fuse ] || die "no /dev/fuse"
for c in jq fio rclone s3fs fusermount3 curl; do command -v "$c" >/dev/null || die "$c missing (apt-get install $c)"; done
"$PY" -c 'import boto3' 2>/dev/null || die "$PY cannot import boto3 (set BENCH_PYTHON)"
if [ -n "$(find "$ROOT/src" -newer "$BIN" -print -quit)" ]; then
  log "WARNING: $BIN is older than src/: results may not match the sources (cargo build --release)"
fi

W=$(mktemp -d "${BENCH_MOUNT_TMP:-/tmp}/assetfs-bench-mount.XXXXXX")
case "$W" in *[[:space:]]*) die "work directory path must not contain spaces: $W" ;; esac
PIDS=()          # background processes we started (mount daemons, rclone, s3fs); Garage is GARAGE_PID
GARAGE_PID=

is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
force_unmount() {
  is_mounted "$1" || return 0
  "$BIN" unmount "$1" >/dev/null 2>&1 || fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$? m p
  set +e
  # Every mount under the work directory, deepest first.
  for m in $(awk -v w="$W/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    log "cleanup: unmounting $m"; force_unmount "$m"
  done
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null; fi
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$GARAGE_PID" ]; then
    kill "$GARAGE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$GARAGE_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then log "work directory kept: $W (logs under $W/logs)"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/logs" "$W/mnt"
ROWS="$W/rows.md"; NOTES="$W/notes.md"; : >"$ROWS"; : >"$NOTES"
row() { local IFS='|'; echo "| $* |" >>"$ROWS"; }
note() { echo "$*" >>"$NOTES"; }

flush() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }        # calc FORMAT EXPR
mibs() { calc '%.0f' "$1 / 1048576 / $2"; }           # mibs BYTES SECONDS
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mib_of_kb() { calc '%.0f' "$1 / 1024"; }
clk=$(getconf CLK_TCK)
cpu_s() { awk -v t="$clk" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }  # user+sys of PID
# snap PID: "cpu_seconds rchar read_bytes write_bytes" of PID; snapdiff A B: the difference, human-readable.
snap() { echo "$(cpu_s "$1") $(awk '/^(rchar|read_bytes|write_bytes):/ { printf "%s ", $2 }' "/proc/$1/io")"; }
snapdiff() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "CPU %.2f s, read() %.0f MiB (from disk %.0f MiB), written to disk %.0f MiB", y[1] - x[1], (y[2] - x[2]) / 1048576, (y[3] - x[3]) / 1048576, (y[4] - x[4]) / 1048576 }'
}
gets() { curl -fsS "http://127.0.0.1:$((PORT + 3))/metrics" | sed -n 's/^api_s3_request_counter{api_endpoint="GetObject"} //p'; }
# wire SNAP: "GetObject-count Garage-block-bytes-read loopback-bytes"; wirediff A B: the difference, readable.
# Loopback bytes count all traffic on lo in this network namespace (other local servers would add to it).
wire() {
  curl -fsS "http://127.0.0.1:$((PORT + 3))/metrics" | awk -v lo="$(awk '$1 == "lo:" { print $2 }' /proc/net/dev)" '
    /^api_s3_request_counter\{api_endpoint="GetObject"\}/ { g = $2 } /^block_bytes_read / { b = $2 }
    END { printf "%.0f %.0f %.0f\n", g, b, lo }'
}
wirediff() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "%.0f GETs, %.0f MiB over loopback, %.0f MiB of Garage blocks read", y[1] - x[1], (y[3] - x[3]) / 1048576, (y[2] - x[2]) / 1048576 }'
}
runs_list() { local IFS=' '; echo "$*"; }
fmt_runs() { local x out=(); for x in "$@"; do out+=("$(calc '%.1f' "$x")"); done; runs_list "${out[@]}"; }

# seqread FILE: reads FILE with dd bs=1M; sets SECS and BYTES.
seqread() {
  local t0 t1 out
  t0=$(now)
  out=$(dd if="$1" of=/dev/null bs=1M 2>&1 | tail -n 1)
  t1=$(now)
  SECS=$(secs "$t0" "$t1"); BYTES=${out%% *}
}

# amount STORE CACHE MNT: mounts in the foreground (as a background job) and waits until live.
# Sets MNT_PID, MNT_DIR and LIVE_S (launch to mount in the mount table).
amount() {
  local t0
  mkdir -p "$3"
  t0=$(now)
  "$BIN" --store "$1" --cache-dir "$2" mount "$3" --foreground --cache-size "$CACHE_SIZE" --timeout 30s \
    >>"$W/logs/assetfs-mount.out" 2>&1 &
  MNT_PID=$!; MNT_DIR=$3; PIDS+=("$MNT_PID")
  for _ in $(seq 1000); do
    is_mounted "$3" && break
    kill -0 "$MNT_PID" 2>/dev/null || die "assetfs mount of $3 exited early (see $W/logs/assetfs-mount.out)"
    sleep 0.01
  done
  is_mounted "$3" || die "assetfs mount of $3 not live after 10 s"
  LIVE_S=$(secs "$t0" "$(now)")
}
# aunmount: records the daemon's peak RSS in HWM_KB, then unmounts and waits for it.
aunmount() {
  HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$MNT_PID/status")
  "$BIN" unmount "$MNT_DIR" >/dev/null || force_unmount "$MNT_DIR"
  wait "$MNT_PID" || log "WARNING: mount daemon $MNT_PID exited with status $?"
}

# Third-party FUSE mounts of the plain object (parts 1 and 4). Set OTHER_PID; other_unmount sets OTHER_HWM_KB.
rclone_mount() {
  mkdir -p "$1"
  # Debian's rclone fails TLS setup when AWS_CA_BUNDLE is set (plain HTTP here, but it loads it anyway).
  env -u AWS_CA_BUNDLE RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other \
    RCLONE_CONFIG_G_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_G_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    RCLONE_CONFIG_G_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_G_REGION=garage \
    rclone mount "g:$BUCKET/$PLAIN" "$1" --read-only --vfs-cache-mode off >>"$W/logs/rclone.out" 2>&1 &
  OTHER_PID=$!; OTHER_DIR=$1; PIDS+=("$OTHER_PID"); other_wait rclone
}
s3fs_mount() {
  mkdir -p "$1"
  s3fs "$BUCKET:/$PLAIN" "$1" -f -o "url=$AWS_ENDPOINT_URL,use_path_request_style,passwd_file=$W/s3fs.passwd,endpoint=garage,ro" \
    >>"$W/logs/s3fs.out" 2>&1 &
  OTHER_PID=$!; OTHER_DIR=$1; PIDS+=("$OTHER_PID"); other_wait s3fs
}
other_wait() {
  for _ in $(seq 300); do
    is_mounted "$OTHER_DIR" && [ -e "$OTHER_DIR/big.bin" ] && return 0
    kill -0 "$OTHER_PID" 2>/dev/null || die "$1 mount exited early (see $W/logs/$1.out)"
    sleep 0.05
  done
  die "$1 mount of $OTHER_DIR not ready after 15 s"
}
other_unmount() {
  OTHER_HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$OTHER_PID/status")
  fusermount3 -u "$OTHER_DIR" 2>/dev/null || umount "$OTHER_DIR"
  wait "$OTHER_PID" || true
}

# ------------------------------------------------------------------------------------------------------------
log "work directory $W"
BUSY=$(ps -eo comm= | grep -xE 'cargo|rustc|garage|assetfs|fio|rclone|s3fs' | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }' || true)
note "- Machine: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"); work directory on $(df --output=source,fstype "$W" | tail -n 1 | tr -s ' '). Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); other cargo/rustc/garage processes at start: ${BUSY:-none}."
note "- assetfs $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet -- src Cargo.toml Cargo.lock || echo ' (src/ modified)'), binary $BIN; $(garage_v=$( { command -v garage || echo "$HOME/.cargo/bin/garage"; } ); "$garage_v" --version 2>/dev/null | head -n 1); $(rclone version 2>/dev/null | head -n 1); $(s3fs --version 2>/dev/null | head -n 1 | sed 's/ *(commit.*//'); $(fio --version); python $("$PY" -c 'import sys, boto3; print(sys.version.split()[0], "boto3", boto3.__version__)')."
note "- Page cache: \`sync; echo 3 > /proc/sys/vm/drop_caches\` before every timed step (cold and warm alike); medians of $RUNS runs unless said otherwise."

STARTED=$(now)
BIG_BYTES=$((BIG_MIB * 1048576))
SRC_BIG="$W/src-big"
PREFIX="mount-bench-$(date +%s)"
PLAIN="$PREFIX-plain"
STORE_S3=
BUCKET=
COLD_CACHE=
declare -A R   # results by name

# ------------------------------------------------------------------------------------------------------------
setup_s3() {
  [ -n "$STORE_S3" ] && return 0
  log "starting Garage on 127.0.0.1:$PORT"
  local envline
  envline=$("$GARAGE_UP" "$W/garage" "$PORT") || die "garage-up.sh failed: $envline"
  eval "$envline"
  BUCKET=$BENCH_BUCKET
  STORE_S3="s3://$BUCKET/$PREFIX"
  echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$W/s3fs.passwd"; chmod 600 "$W/s3fs.passwd"
  log "generating a ${BIG_MIB} MiB random file"
  mkdir -p "$SRC_BIG"
  head -c "$BIG_BYTES" /dev/urandom >"$SRC_BIG/big.bin"
  log "pushing it to $STORE_S3"
  log "**************************************************************************************************"
  log "WARNING: ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 for the push to Garage, which IGNORES conditional"
  log "WARNING: writes (If-None-Match). Fine for a single-writer benchmark; never use Garage for commits."
  log "**************************************************************************************************"
  note "- **WARNING: pushes to Garage ran with \`ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1\`: Garage ignores conditional writes (single writer here, so no version can be lost; never commit to Garage for real).**"
  local t0 t1
  ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --store "$STORE_S3" init >/dev/null
  t0=$(now)
  ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$STORE_S3" --cache-dir "$W/cache-push" \
    push models/big "$SRC_BIG" -m "bench-mount" >"$W/push-big.json" 2>>"$W/logs/push.err"
  t1=$(now)
  R[push_big_s]=$(secs "$t0" "$t1")
  rm -rf "$W/cache-push"
  log "  push: ${R[push_big_s]} s; uploading the same file as one plain object $BUCKET/$PLAIN/big.bin"
  "$PY" "$TOOLS" put "$BUCKET" "$PLAIN/big.bin" "$SRC_BIG/big.bin" >"$W/put-plain.json"
  "$PY" - "$BUCKET" "$PREFIX/packs/" >"$W/packs.txt" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
n = b = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    for o in page.get("Contents", []):
        n += 1; b += o["Size"]
print(n, b)
PY
  read -r "R[packs_n]" "R[packs_bytes]" <"$W/packs.txt"
  [ "${R[packs_bytes]}" = "$BIG_BYTES" ] || log "WARNING: packs hold ${R[packs_bytes]} bytes, file has $BIG_BYTES"
  MF="$W/mnt/s3"
  FILE_M="$MF/models/big@1/big.bin"
}

# ------------------------------------------------------------------------------------------------------------
part1() {
  setup_s3
  log "part 1: cold sequential read of ${BIG_MIB} MiB"
  local r raw=() rawg=() rawget=() plain=() afwarn=() af=() afrss=() afget=() afcpu=() gcpu=() pf=() rc=() rcrss=() rcget=() sf=() sfrss=() sfget=()
  local g0 c0 gc0
  for r in $(seq "$RUNS"); do
    flush; gc0=$(cpu_s "$GARAGE_PID"); g0=$(wire)
    "$PY" "$TOOLS" rawget "$BUCKET" "$PREFIX/packs" "$RANGE_KIB" "$CONC" >"$W/raw.json"
    rawg+=("$(calc '%.2f' "$(cpu_s "$GARAGE_PID") - $gc0")"); rawget+=("$(wirediff "$g0" "$(wire)")")
    raw+=("$(jq -r '.bytes / 1048576 / .seconds' "$W/raw.json")")
    flush
    "$PY" "$TOOLS" rawget "$BUCKET" "$PLAIN" "$RANGE_KIB" "$CONC" >"$W/rawp.json"
    plain+=("$(jq -r '.bytes / 1048576 / .seconds' "$W/rawp.json")")
    log "  run $r: raw GETs packs ${raw[-1]%.*} MiB/s (${rawget[-1]}), plain object ${plain[-1]%.*} MiB/s"
  done
  R[raw_req]=$(jq .requests "$W/raw.json")
  for r in $(seq "$RUNS"); do
    COLD_CACHE="$W/cache-cold-$r"
    amount "$STORE_S3" "$COLD_CACHE" "$MF"
    flush
    g0=$(wire); c0=$(snap "$MNT_PID"); gc0=$(cpu_s "$GARAGE_PID")
    seqread "$FILE_M"
    [ "$BYTES" = "$BIG_BYTES" ] || die "read $BYTES bytes through the mount, expected $BIG_BYTES"
    afget+=("$(wirediff "$g0" "$(wire)")"); afcpu+=("$(snapdiff "$c0" "$(snap "$MNT_PID")")"); gcpu+=("$(calc '%.2f' "$(cpu_s "$GARAGE_PID") - $gc0")")
    aunmount
    afwarn+=("$(cat "$COLD_CACHE"/logs/*.log 2>/dev/null | grep -c WARN || true)")
    af+=("$(mibs "$BIG_BYTES" "$SECS")"); afrss+=("$HWM_KB")
    log "  run $r: assetfs cold ${af[-1]} MiB/s (${SECS} s, ${afget[-1]}; daemon ${afcpu[-1]}; Garage CPU ${gcpu[-1]} s; VmHWM $(mib_of_kb "$HWM_KB") MiB)"
    [ "$r" = "$RUNS" ] || rm -rf "$COLD_CACHE"
  done
  # What the cold read left in the cache (the chunk writes run in the background of the read).
  "$BIN" --json --store "$STORE_S3" --cache-dir "$COLD_CACHE" cache stats >"$W/cold-stats.json"
  for r in $(seq "$RUNS"); do
    rm -rf "$W/cache-pf"; flush
    local t0 t1; t0=$(now)
    "$BIN" --json --store "$STORE_S3" --cache-dir "$W/cache-pf" cache prefetch models/big@1 >"$W/pf.json"
    t1=$(now)
    pf+=("$(mibs "$BIG_BYTES" "$(secs "$t0" "$t1")")")
    log "  run $r: assetfs cache prefetch ${pf[-1]} MiB/s"
  done
  rm -rf "$W/cache-pf"
  for r in $(seq "$RUNS"); do
    rclone_mount "$W/mnt/rclone"; flush; g0=$(wire)
    seqread "$W/mnt/rclone/big.bin"; rcget+=("$(wirediff "$g0" "$(wire)")")
    other_unmount; rc+=("$(mibs "$BYTES" "$SECS")"); rcrss+=("$OTHER_HWM_KB")
    [ "$BYTES" = "$BIG_BYTES" ] || die "rclone read $BYTES bytes"
    s3fs_mount "$W/mnt/s3fs"; flush; g0=$(wire)
    seqread "$W/mnt/s3fs/big.bin"; sfget+=("$(wirediff "$g0" "$(wire)")")
    other_unmount; sf+=("$(mibs "$BYTES" "$SECS")"); sfrss+=("$OTHER_HWM_KB")
    [ "$BYTES" = "$BIG_BYTES" ] || die "s3fs read $BYTES bytes"
    log "  run $r: rclone ${rc[-1]} MiB/s (${rcget[-1]}), s3fs ${sf[-1]} MiB/s (${sfget[-1]})"
  done
  local a m_raw m_plain m_rc m_sf m_pf
  a=$(median "${af[@]}"); m_raw=$(calc '%.0f' "$(median "${raw[@]}")"); m_plain=$(calc '%.0f' "$(median "${plain[@]}")")
  m_rc=$(median "${rc[@]}"); m_sf=$(median "${sf[@]}"); m_pf=$(median "${pf[@]}")
  local rss; rss="$(mib_of_kb "$(max "${afrss[@]}")") MiB"
  local afruns; afruns=$(runs_list "${af[@]}")
  row " 1a " " cold sequential read, ${BIG_MIB} MiB, Garage S3, empty cache (dd bs=1M) " " **$a MiB/s** (runs: $afruns) " \
    " raw ranged GETs of the same ${R[packs_n]} pack objects: $m_raw MiB/s (${RANGE_KIB} KiB ranges, $CONC in flight, ${R[raw_req]} GETs, boto3) " \
    " **$(calc '%.2f' "$a / $m_raw")x** " " $rss "
  row " 1b " " (same) " " $a MiB/s " " rclone mount, --vfs-cache-mode off, plain object: $m_rc MiB/s (runs: $(runs_list "${rc[@]}")) " \
    " **$(calc '%.2f' "$a / $m_rc")x** " " rclone: $(mib_of_kb "$(max "${rcrss[@]}")") MiB "
  row " 1c " " (same) " " $a MiB/s " " s3fs (defaults, no use_cache), plain object: $m_sf MiB/s (runs: $(runs_list "${sf[@]}")) " \
    " **$(calc '%.2f' "$a / $m_sf")x** " " s3fs: $(mib_of_kb "$(max "${sfrss[@]}")") MiB "
  row " 1d " " (context) raw ranged GETs of the plain object vs of the packs " " packs: $m_raw MiB/s " " plain object: $m_plain MiB/s (same ranges and concurrency) " \
    " $(calc '%.2f' "$m_raw / $m_plain")x " " - "
  row " 1e " " (diagnostic) assetfs cold read vs \`assetfs cache prefetch\` (same client and store, no FUSE; 64 MiB coalesced ranged GETs, 4 in flight) " \
    " $a MiB/s " " prefetch: $m_pf MiB/s (runs: $(runs_list "${pf[@]}")) " " $(calc '%.2f' "$a / $m_pf")x " " - "
  note "- Part 1: the ${BIG_MIB} MiB file is \`head -c\` of /dev/urandom, pushed as models/big to \`$STORE_S3\` (${R[push_big_s]} s; $(jq -r '"\(.new_chunks) chunks in \(.packs) packs"' "$W/push-big.json")). Baseline (a) fetches exactly those pack objects (every byte of the version, nothing else) with boto3 (\`scripts/bench/mount-tools.py rawget\`: ${RANGE_KIB} KiB \`Range\` GETs from a ${CONC}-thread pool, bodies read and discarded). For (b) and (c) the original file was also uploaded as one plain object \`$BUCKET/$PLAIN/big.bin\` (boto3 multipart upload) and read through rclone/s3fs: the same bytes over the wire; row 1d compares Garage serving the two layouts. Every run is a fresh mount with the page cache dropped after mounting; assetfs starts each run with an empty cache directory."
  note "- Part 1 traffic, per run (GetObject count and Garage block reads from Garage's metrics, bytes from /proc/net/dev lo): assetfs cold: $(printf '%s; ' "${afget[@]}")raw GETs: $(printf '%s; ' "${rawget[@]}")rclone: $(printf '%s; ' "${rcget[@]}")s3fs: $(printf '%s; ' "${sfget[@]}")"
  note "- Part 1 CPU, per run: mount daemon during the cold read (CPU = user+sys; bytes from /proc/PID/io): $(printf '%s; ' "${afcpu[@]}")Garage CPU during the read ${gcpu[*]} s (during the raw-GET baseline: ${rawg[*]} s); WARN lines in the daemon log: ${afwarn[*]}. Cache after the last cold read: $(jq -r '"\(.entries) chunks, \(.bytes) bytes"' "$W/cold-stats.json")."
  R[cold]=$a
}

# ------------------------------------------------------------------------------------------------------------
ensure_warm() {
  setup_s3
  if [ -z "$COLD_CACHE" ]; then COLD_CACHE="$W/cache-warm"; fi
  if [ -z "${R[warm_prefetched]:-}" ]; then
    # Completes the cache if the cold read left chunks out (reported).
    "$BIN" --json --store "$STORE_S3" --cache-dir "$COLD_CACHE" cache prefetch models/big@1 >"$W/warm-pf.json"
    R[warm_prefetched]=$(jq -r '"\(.chunks_fetched) chunks (\(.bytes_fetched) bytes) fetched, \(.chunks_already_cached) already cached"' "$W/warm-pf.json")
    log "  warm cache: ${R[warm_prefetched]}"
  fi
}

part2() {
  ensure_warm
  log "part 2: warm sequential read"
  local r af=() afrss=() loc=() afget=() afio=() t c0
  for r in $(seq "$RUNS"); do
    amount "$STORE_S3" "$COLD_CACHE" "$MF"
    flush; t=$(gets); c0=$(snap "$MNT_PID")
    seqread "$FILE_M"; afget+=($(( $(gets) - t ))); afio+=("$(snapdiff "$c0" "$(snap "$MNT_PID")")")
    aunmount
    [ "$BYTES" = "$BIG_BYTES" ] || die "read $BYTES bytes through the mount"
    af+=("$(mibs "$BIG_BYTES" "$SECS")"); afrss+=("$HWM_KB")
    flush
    seqread "$SRC_BIG/big.bin"; loc+=("$(mibs "$BIG_BYTES" "$SECS")")
    log "  run $r: assetfs warm ${af[-1]} MiB/s (${afget[-1]} GETs; daemon ${afio[-1]}), local file ${loc[-1]} MiB/s"
  done
  local a l
  a=$(median "${af[@]}"); l=$(median "${loc[@]}")
  row " 2 " " warm sequential read, ${BIG_MIB} MiB (cache populated, page cache dropped, fresh mount) " " **$a MiB/s** (runs: $(runs_list "${af[@]}")) " \
    " local file, page cache dropped: $l MiB/s (runs: $(runs_list "${loc[@]}")) " " **$(calc '%.2f' "$a / $l")x** " " $(mib_of_kb "$(max "${afrss[@]}")") MiB "
  note "- Part 2: 'page cache dropped' is inside this VM; the host may still cache the virtual disk, which is the likely reason the local-file baseline varies from run to run. The assetfs cache is the cache of the last cold run of part 1, completed by \`cache prefetch\` before timing (${R[warm_prefetched]}); GetObject requests during the warm reads: ${afget[*]}; mount daemon during the reads: $(printf '%s; ' "${afio[@]}")"
}

# ------------------------------------------------------------------------------------------------------------
fio_rand() {  # fio_rand FILE OUT.json
  fio --name=rand --filename="$1" --readonly --rw=randread --bs=4k --direct=0 --size="${BIG_MIB}M" \
    --ioengine=psync --runtime="$FIO_S" --time_based --output-format=json >"$2" 2>>"$W/logs/fio.err"
  jq -r '.jobs[0].read.iops' "$2"
}
part3() {
  ensure_warm
  log "part 3: 4 KiB random reads (${FIO_S} s each)"
  local a l rss
  amount "$STORE_S3" "$COLD_CACHE" "$MF"
  flush
  local c0 io; c0=$(snap "$MNT_PID")
  a=$(calc '%.0f' "$(fio_rand "$FILE_M" "$W/fio-mount.json")")
  io=$(snapdiff "$c0" "$(snap "$MNT_PID")")
  aunmount; rss=$HWM_KB
  flush
  l=$(calc '%.0f' "$(fio_rand "$SRC_BIG/big.bin" "$W/fio-local.json")")
  log "  assetfs $a IOPS (daemon $io), local $l IOPS"
  local p99a p99l
  p99a=$(jq -r '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' "$W/fio-mount.json")
  p99l=$(jq -r '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' "$W/fio-local.json")
  row " 3 " " 4 KiB random reads, warm cache (fio randread psync, 1 job, ${FIO_S} s, page cache dropped before) " " **$a IOPS** (p99 ${p99a} us) " \
    " local file: $l IOPS (p99 ${p99l} us) " " **$(calc '%.2f' "$a / $l")x** " " $(mib_of_kb "$rss") MiB "
  note "- Part 3: one fio run per side (\`--rw=randread --bs=4k --direct=0 --size=${BIG_MIB}M --runtime=$FIO_S --time_based --ioengine=psync\`). Not a pure cache benchmark: with \`FOPEN_KEEP_CACHE\` (and on the local file) a 4 KiB block read once stays in the page cache, and kernel readahead pulls neighbours in, so as the run goes on more and more reads are page-cache hits on both sides. fio did $(jq -r '.jobs[0].read.total_ios' "$W/fio-mount.json") reads ($(jq -r '.jobs[0].read.io_bytes / 1048576 | floor' "$W/fio-mount.json") MiB) through the mount; the mount daemon meanwhile: $io."
}

# ------------------------------------------------------------------------------------------------------------
part4() {
  setup_s3
  log "part 4: time to first byte"
  local r af=() live=() raw=() rc=() sf=() rss=()
  for r in $(seq "$TTFB_RUNS"); do
    rm -rf "$W/cache-ttfb"
    amount "$STORE_S3" "$W/cache-ttfb" "$MF"; live+=("$LIVE_S")
    flush
    af+=("$("$PY" "$TOOLS" ttfb "$FILE_M" | jq -r '.seconds * 1000')")
    aunmount; rss+=("$HWM_KB")
    flush
    raw+=("$("$PY" "$TOOLS" ttfb-get "$BUCKET" "$PLAIN/big.bin" | jq -r '.seconds * 1000')")
    rclone_mount "$W/mnt/rclone"; flush
    rc+=("$("$PY" "$TOOLS" ttfb "$W/mnt/rclone/big.bin" | jq -r '.seconds * 1000')"); other_unmount
    s3fs_mount "$W/mnt/s3fs"; flush
    sf+=("$("$PY" "$TOOLS" ttfb "$W/mnt/s3fs/big.bin" | jq -r '.seconds * 1000')"); other_unmount
    echo "[bench-mount $(date +%T)]   run $r: assetfs ${af[-1]} ms (mount live after ${live[-1]} s), raw GET ${raw[-1]} ms, rclone ${rc[-1]} ms, s3fs ${sf[-1]} ms" | sed -E 's/([0-9]+\.[0-9])[0-9]+ ms/\1 ms/g' >&2
  done
  rm -rf "$W/cache-ttfb"
  local a m_raw m_rc m_sf f='%.1f'
  a=$(calc "$f" "$(median "${af[@]}")"); m_raw=$(calc "$f" "$(median "${raw[@]}")")
  m_rc=$(calc "$f" "$(median "${rc[@]}")"); m_sf=$(calc "$f" "$(median "${sf[@]}")")
  row " 4 " " time to first byte: open + first 4 KiB read of the ${BIG_MIB} MiB file, fresh live mount, empty cache (lower is better) " \
    " **$a ms** median, min $(calc "$f" "$(printf '%s\n' "${af[@]}" | sort -g | head -n 1)") ms (runs: $(fmt_runs "${af[@]}")) " \
    " raw GET of bytes 0-4095 (boto3, fresh client): $m_raw ms (runs: $(fmt_runs "${raw[@]}")); rclone: $m_rc ms (runs: $(fmt_runs "${rc[@]}")); s3fs: $m_sf ms (runs: $(fmt_runs "${sf[@]}")) " \
    " **$(calc '%.2f' "$a / $m_raw")x** raw GET (min/min: $(calc '%.2f' "$(printf '%s\n' "${af[@]}" | sort -g | head -n 1) / $(printf '%s\n' "${raw[@]}" | sort -g | head -n 1)")x); $(calc '%.2f' "$a / $m_rc")x rclone; $(calc '%.2f' "$a / $m_sf")x s3fs " " $(mib_of_kb "$(max "${rss[@]}")") MiB "
  note "- Part 4: medians of $TTFB_RUNS runs; timed inside Python from \`os.open\` to \`os.read(fd, 4096)\` returning, on a mount that is already live (kernel caches dropped after mounting, so the path lookup is included). assetfs \`mount --foreground\` took $(median "${live[@]}") s (median) from launch until the mount appeared in the mount table (it lists the store before going live)."
}

# ------------------------------------------------------------------------------------------------------------
STORE_F="file://$W/fstore"
"$BIN" --store "$STORE_F" init >/dev/null
timed_cmd() {  # timed_cmd CMD...: sets SECS and OUT (stdout)
  local t0 t1
  t0=$(now); OUT=$("$@"); t1=$(now); SECS=$(secs "$t0" "$t1")
}
count_files() { find "$1" -type f | wc -l; }
du_s() { du -s "$1" | cut -f1; }

part5() {
  log "part 5: ${SMALL_DIRS} x ${SMALL_PER_DIR} tiny files"
  local n=$((SMALL_DIRS * SMALL_PER_DIR)) src="$W/src-small" mnt="$W/mnt/f" r
  "$PY" "$TOOLS" tree "$src" "$SMALL_DIRS" "$SMALL_PER_DIR" 1 >"$W/tree-small.json"
  flush
  timed_cmd "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push features/small "$src"
  R[push_small_s]=$SECS
  log "  push of $n files: ${SECS} s"
  local fa=() fl=() da=() dl=() rss=() dua dul
  local ver="$mnt/features/small@1"
  for r in $(seq "$RUNS"); do
    rm -rf "$W/cache-f"; amount "$STORE_F" "$W/cache-f" "$mnt"; flush
    timed_cmd count_files "$ver"; fa+=("$SECS"); [ "$OUT" = "$n" ] || die "find saw $OUT files through the mount, expected $n"
    aunmount; rss+=("$HWM_KB")
    rm -rf "$W/cache-f"; amount "$STORE_F" "$W/cache-f" "$mnt"; flush
    timed_cmd du_s "$ver"; da+=("$SECS"); dua=$OUT
    aunmount; rss+=("$HWM_KB")
    flush; timed_cmd count_files "$src"; fl+=("$SECS"); [ "$OUT" = "$n" ] || die "find saw $OUT local files"
    flush; timed_cmd du_s "$src"; dl+=("$SECS"); dul=$OUT
    log "  run $r: find: assetfs ${fa[-1]} s, local ${fl[-1]} s; du -s: assetfs ${da[-1]} s, local ${dl[-1]} s"
  done
  rm -rf "$W/cache-f" "$W/cache-fpush"
  local a l
  a=$(median "${fa[@]}"); l=$(median "${fl[@]}")
  row " 5a " " \`find V -type f | wc -l\`, $n-file version (${SMALL_DIRS} dirs x ${SMALL_PER_DIR} files of 1-100 B), file:// store, fresh mount + empty cache (lower is better) " \
    " **$a s** (runs: $(runs_list "${fa[@]}")) " " same tree on local disk: $l s (runs: $(runs_list "${fl[@]}")) " " **$(calc '%.2f' "$a / $l")x** " " $(mib_of_kb "$(max "${rss[@]}")") MiB (5a+5b) "
  a=$(median "${da[@]}"); l=$(median "${dl[@]}")
  row " 5b " " \`du -s V\`, same version, fresh mount + empty cache (lower is better) " \
    " **$a s** (runs: $(runs_list "${da[@]}")), reports $dua KiB " " local: $l s (runs: $(runs_list "${dl[@]}")), reports $dul KiB " " **$(calc '%.2f' "$a / $l")x** " " (above) "
  note "- Part 5: tree from \`mount-tools.py tree\` ($(jq -r '"\(.files) files, \(.bytes) bytes"' "$W/tree-small.json")), pushed to \`file://\$W/fstore\` in ${R[push_small_s]} s. Each timed command gets its own fresh mount with an empty cache directory (so it includes loading the manifest from the store) and dropped kernel caches; the local runs drop caches too. du sizes differ because the mount reports st_blocks = ceil(size/512) while ext4 allocates 4 KiB blocks."
}

# ------------------------------------------------------------------------------------------------------------
part6() {
  log "part 6: peak RSS streaming ${HUGE_MIB} MiB and listing a large tree"
  local src="$W/src-huge" mnt="$W/mnt/f"
  mkdir -p "$src"
  head -c "$((HUGE_MIB * 1048576))" /dev/urandom >"$src/huge.bin"
  timed_cmd "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push models/huge "$src"
  log "  push of ${HUGE_MIB} MiB: ${SECS} s"
  rm -rf "$src" "$W/cache-fpush" "$W/cache-huge"
  amount "$STORE_F" "$W/cache-huge" "$mnt"; flush
  seqread "$mnt/models/huge@1/huge.bin"
  [ "$BYTES" = "$((HUGE_MIB * 1048576))" ] || die "read $BYTES bytes of the huge file"
  aunmount
  local huge_rate huge_rss=$HWM_KB
  huge_rate=$(mibs "$BYTES" "$SECS")
  rm -rf "$W/cache-huge"
  row " 6a " " peak RSS of the mount daemon streaming a ${HUGE_MIB} MiB file, cold (file:// store, empty cache, dd bs=1M) " \
    " **VmHWM $(mib_of_kb "$huge_rss") MiB** ($huge_rate MiB/s, 1 run) " " - " " - " " $(mib_of_kb "$huge_rss") MiB "

  # The large tree: push the full tree if the push fits in MANY_LIMIT (extrapolated from part 5's push), else fewer dirs.
  local dirs=$MANY_DIRS per=$MANY_PER_DIR why=""
  if [ -n "${R[push_small_s]:-}" ]; then
    local est
    est=$(calc '%.0f' "${R[push_small_s]} * $dirs * $per / ($SMALL_DIRS * $SMALL_PER_DIR)")
    if [ "$est" -gt "$MANY_LIMIT" ]; then
      why="the full push was estimated at ${est} s from part 5's push (limit $MANY_LIMIT s)"
      dirs=$MANY_FALLBACK_DIRS
    fi
  fi
  local tsrc="$W/src-many" n
  "$PY" "$TOOLS" tree "$tsrc" "$dirs" "$per" 2 >/dev/null
  flush
  local t0 t1 prc=0
  t0=$(now)
  timeout "$MANY_LIMIT" "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push features/many "$tsrc" \
    >"$W/push-many.json" 2>>"$W/logs/push.err" || prc=$?
  t1=$(now)
  if [ "$prc" = 124 ] && [ "$dirs" -gt "$MANY_FALLBACK_DIRS" ]; then
    why="the push of $((dirs * per)) files did not finish in $MANY_LIMIT s"
    log "  $why; pushing $MANY_FALLBACK_DIRS directories instead"
    local d
    for d in $(seq "$MANY_FALLBACK_DIRS" $((dirs - 1))); do rm -rf "$tsrc/d$(printf %04d "$d")"; done
    dirs=$MANY_FALLBACK_DIRS
    t0=$(now)
    "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push features/many "$tsrc" >"$W/push-many.json" 2>>"$W/logs/push.err"
    t1=$(now)
  elif [ "$prc" != 0 ]; then
    die "push of the large tree failed (status $prc)"
  fi
  n=$((dirs * per))
  local push_s; push_s=$(secs "$t0" "$t1")
  log "  push of $n files: $push_s s${why:+ ($why)}"
  rm -rf "$W/cache-fpush" "$W/cache-many"
  amount "$STORE_F" "$W/cache-many" "$mnt"; flush
  timed_cmd count_files "$mnt/features/many@1"
  [ "$OUT" = "$n" ] || die "find saw $OUT files of the large tree, expected $n"
  local find_a=$SECS
  aunmount
  local many_rss=$HWM_KB
  flush; timed_cmd count_files "$tsrc"; local find_l=$SECS
  rm -rf "$W/cache-many"
  row " 6b " " peak RSS with a $n-file version mounted and fully listed (\`find V -type f | wc -l\`, fresh mount, empty cache) " \
    " **VmHWM $(mib_of_kb "$many_rss") MiB**; find took $find_a s (1 run) " " local find of the same tree: $find_l s " " find $(calc '%.2f' "$find_a / $find_l")x (lower is better) " " $(mib_of_kb "$many_rss") MiB "
  if [ -n "$why" ]; then
    note "- **Part 6b used $n files, not $((MANY_DIRS * MANY_PER_DIR)): $why.**"
  fi
  note "- Part 6: the ${HUGE_MIB} MiB file and the $n-file tree ($dirs dirs x $per files of 1-100 B; push took $push_s s) are in a \`file://\` store; VmHWM is read from /proc/<daemon pid>/status just before unmounting."
  rm -rf "$tsrc"
}

# ------------------------------------------------------------------------------------------------------------
case "$PARTS" in *1*) part1 ;; esac
case "$PARTS" in *2*) part2 ;; esac
case "$PARTS" in *3*) part3 ;; esac
case "$PARTS" in *4*) part4 ;; esac
case "$PARTS" in *5*) part5 ;; esac
case "$PARTS" in *6*) part6 ;; esac

TOTAL=$(secs "$STARTED" "$(now)")
note "- Total run time: $(calc '%.0f' "$TOTAL / 60") min. Ratios are assetfs / baseline: above 1 is better for throughput and IOPS, below 1 is better for times."
OUTMD="$ROOT/target/bench-mount.md"
mkdir -p "$ROOT/target"
{
  echo "| # | measurement | assetfs | baseline (same run) | ratio | assetfs daemon peak RSS (VmHWM) |"
  echo "| --- | --- | --- | --- | --- | --- |"
  cat "$ROWS"
  echo
  cat "$NOTES"
} | tee "$OUTMD"
log "table saved to $OUTMD"
