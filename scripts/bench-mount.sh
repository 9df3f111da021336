#!/usr/bin/env bash
# Mount benchmarks of assetfs: one part per goal of issue 8, every goal a row with a baseline measured in the same
# run (about 30 minutes on 2 cores with the defaults). See docs/benchmarks.md, section "Mount".
#
#   cargo build --release
#   scripts/bench/build-mountpoint-s3.sh          # once: builds the mountpoint-s3 baseline under ~/.cache (see there)
#   scripts/bench-mount.sh                        # all parts;  BENCH_MOUNT_PARTS=19 scripts/bench-mount.sh: some
#
# Needs root (drop_caches, FUSE mounts), /dev/fuse, fio, rclone, s3fs, curl, jq, python3 with boto3, a Garage binary
# (`garage` on PATH or ~/.cargo/bin/garage, for /work/shared/bench/garage-up.sh) and, for the mountpoint-s3 rows, the
# binary scripts/bench/build-mountpoint-s3.sh builds. A missing tool stops the run with an error naming it.
# Prints a markdown results table to stdout and writes it to target/bench-mount.md; progress goes to stderr.
# Timed steps run BENCH_MOUNT_RUNS times (median); `sync; echo 3 > /proc/sys/vm/drop_caches` runs before every timed
# step. In parts 3 (warm pass), 4 and 9, assetfs reads first in odd runs and its local baseline first in even runs.
# Everything it mounts is unmounted and every server it starts is stopped on any exit.
#
# Parts (BENCH_MOUNT_PARTS picks them; each sets up what it needs, parts 1-6 share one Garage and one 1 GiB file):
#   1. cold sequential read (dd bs=1M) of a BIG_MIB random file in Garage S3, empty cache, vs raw parallel ranged GETs
#      of the same pack objects (boto3 and curl clients, the strongest is the goal's baseline), a single-stream GET,
#      s3fs, rclone and mountpoint-s3 reading the same bytes as one plain object; bytes fetched from the store per
#      byte read (Garage's metrics); daemon CPU seconds per GiB and peak RSS
#   2. EIGHT_FILES readers reading EIGHT_FILES files of EIGHT_MIB at once, cold, vs raw parallel GETs of the same packs
#      (and the other mounts reading the same files as plain objects)
#   3. DataLoader-style pass: DL_FILES files of DL_KIB read whole by DL_THREADS threads in random order, cold (Garage),
#      vs rclone, s3fs and mountpoint-s3 on plain objects; the second pass (disk cache warm, page cache dropped,
#      fresh mount) vs the same pass over the local files
#   4. warm sequential read (assetfs cache full, page cache dropped, fresh mount): one reader (cat) vs local `cat`,
#      vs local fio (sequential, 1 MiB blocks, 4 jobs); fio 4 jobs through the mount; dd bs=1M as in the first runs;
#      mountpoint-s3 re-reading from its own disk cache
#   5. 4 KiB random reads, warm cache, fio psync, 1 job and 8 jobs, vs the local file
#   6. time to first byte (open + first 4 KiB read), fresh mount, empty cache, vs a raw GET of the first 4 KiB
#   7. find, du -s and ls -lR over a SMALL_DIRS x SMALL_PER_DIR-file version (file:// store) vs the same local tree
#   8. daemon peak RSS: streaming a HUGE_MIB file; listing a MANY_DIRS x MANY_PER_DIR-file version; opening VERSIONS
#      versions of VERSION_FILES files one after another on one mount (find each)
#   9. file:// store on the same disk: cold read (cat) vs cat of the version's pack files in order; the same cold read
#      from a copy of the store on tmpfs (/dev/shm): no disk under the mount, its CPU path's ceiling on this machine
#
# Knobs (environment, defaults in brackets):
#   BENCH_MOUNT_PARTS [123456789]    which parts to run
#   BENCH_MOUNT_BIG_MIB [1024]       size of the file of parts 1, 4, 5, 6 and 9
#   BENCH_MOUNT_RUNS [3]             repetitions of each timed step (median reported)
#   BENCH_MOUNT_RANGE_KIB [8192] BENCH_MOUNT_CONC [8]   raw GET baseline of the first runs: boto3, range size, in flight
#   BENCH_MOUNT_RAW_MORE ["boto3:8192:16 curl:8192:8 curl:8192:16"]   more raw clients (CLIENT:RANGE_KIB:CONC) tried
#                                    in part 1; the strongest median is the baseline of goals 1 and 2 ("" for none)
#   BENCH_MOUNT_EIGHT_FILES [8] BENCH_MOUNT_EIGHT_MIB [256]   part 2 files
#   BENCH_MOUNT_EIGHT_MOUNTS [1]     1: part 2 also reads through rclone, s3fs and mountpoint-s3
#   BENCH_MOUNT_PINNED [1]           1: parts 1 and 2 also read with Garage on CPU 0 and the clients on CPU 1 (rows 1j, 2c)
#   BENCH_MOUNT_DL_FILES [20000] BENCH_MOUNT_DL_KIB [100] BENCH_MOUNT_DL_THREADS [8]   part 3 pass
#   BENCH_MOUNT_DL_SLOW_RUNS [1] BENCH_MOUNT_DL_SLOW_FILES [5000]   part 3: s3fs and mountpoint-s3 make this many passes
#                                    over the first FILES of the shuffled list (s3fs needs ~4 min for 20,000 files)
#   BENCH_MOUNT_UPLOAD_THREADS [32]  uploader threads for part 3's plain objects (once per run)
#   BENCH_MOUNT_FIO_S [20]           fio runtime of part 5 (each side, each job count)
#   BENCH_MOUNT_TTFB_RUNS [7]        repetitions of part 6 (cheap; its latencies are bimodal, see docs/benchmarks.md)
#   BENCH_MOUNT_SMALL_DIRS [100] BENCH_MOUNT_SMALL_PER_DIR [1000]   part 7 tree
#   BENCH_MOUNT_HUGE_MIB [4096]      part 8 streamed file
#   BENCH_MOUNT_MANY_DIRS [1000] BENCH_MOUNT_MANY_PER_DIR [1000]     part 8 large tree ...
#   BENCH_MOUNT_MANY_LIMIT_S [480]   ... pushed only if the push (extrapolated from part 7's push) fits in this,
#   BENCH_MOUNT_MANY_FALLBACK_DIRS [300]  ... else (or on timeout) this many directories of it
#   BENCH_MOUNT_VERSIONS [10] BENCH_MOUNT_VERSION_FILES [200000]   part 8: versions opened one after another
#   BENCH_MOUNT_CACHE_SIZE [20G]     --cache-size of the assetfs mounts
#   BENCH_MOUNT_GARAGE_PORT [3950]   Garage S3 port (uses PORT..PORT+3)
#   BENCH_MOUNT_TMP [/tmp]           where the work directory goes (needs ~25 GiB and 1.3M inodes)
#   BENCH_MOUNT_KEEP [0]             1: keep the work directory
#   BENCH_MOUNT_MP_BIN [~/.cache/assetfs-bench/mountpoint-s3/target/release/mp-mount]   mountpoint-s3 baseline binary
#   ASSETFS_BIN [target/release/assetfs]   BENCH_PYTHON [.venv/bin/python if it has boto3, else python3]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
TOOLS="$ROOT/scripts/bench/mount-tools.py"
GARAGE_UP=${BENCH_GARAGE_UP:-/work/shared/bench/garage-up.sh}
MP_BIN=${BENCH_MOUNT_MP_BIN:-$HOME/.cache/assetfs-bench/mountpoint-s3/target/release/mp-mount}
if [ -n "${BENCH_PYTHON:-}" ]; then PY=$BENCH_PYTHON
elif "$ROOT/.venv/bin/python" -c 'import boto3' 2>/dev/null; then PY=$ROOT/.venv/bin/python
else PY=python3; fi

PARTS=${BENCH_MOUNT_PARTS:-123456789}
BIG_MIB=${BENCH_MOUNT_BIG_MIB:-1024}
RUNS=${BENCH_MOUNT_RUNS:-3}
RANGE_KIB=${BENCH_MOUNT_RANGE_KIB:-8192}
CONC=${BENCH_MOUNT_CONC:-8}
RAW_MORE=${BENCH_MOUNT_RAW_MORE-boto3:8192:16 curl:8192:8 curl:8192:16}
EIGHT_FILES=${BENCH_MOUNT_EIGHT_FILES:-8}
EIGHT_MIB=${BENCH_MOUNT_EIGHT_MIB:-256}
EIGHT_MOUNTS=${BENCH_MOUNT_EIGHT_MOUNTS:-1}
PINNED_RUNS=${BENCH_MOUNT_PINNED:-1}
[ "$(nproc)" -ge 2 ] || PINNED_RUNS=0
DL_FILES=${BENCH_MOUNT_DL_FILES:-20000}
DL_KIB=${BENCH_MOUNT_DL_KIB:-100}
DL_THREADS=${BENCH_MOUNT_DL_THREADS:-8}
DL_SLOW_RUNS=${BENCH_MOUNT_DL_SLOW_RUNS:-1}
DL_SLOW_FILES=${BENCH_MOUNT_DL_SLOW_FILES:-5000}
UPLOAD_THREADS=${BENCH_MOUNT_UPLOAD_THREADS:-32}
FIO_S=${BENCH_MOUNT_FIO_S:-20}
TTFB_RUNS=${BENCH_MOUNT_TTFB_RUNS:-7}
SMALL_DIRS=${BENCH_MOUNT_SMALL_DIRS:-100}
SMALL_PER_DIR=${BENCH_MOUNT_SMALL_PER_DIR:-1000}
HUGE_MIB=${BENCH_MOUNT_HUGE_MIB:-4096}
MANY_DIRS=${BENCH_MOUNT_MANY_DIRS:-1000}
MANY_PER_DIR=${BENCH_MOUNT_MANY_PER_DIR:-1000}
MANY_LIMIT=${BENCH_MOUNT_MANY_LIMIT_S:-480}
MANY_FALLBACK_DIRS=${BENCH_MOUNT_MANY_FALLBACK_DIRS:-300}
VERSIONS=${BENCH_MOUNT_VERSIONS:-10}
VERSION_FILES=${BENCH_MOUNT_VERSION_FILES:-200000}
CACHE_SIZE=${BENCH_MOUNT_CACHE_SIZE:-20G}
PORT=${BENCH_MOUNT_GARAGE_PORT:-3950}
KEEP=${BENCH_MOUNT_KEEP:-0}

log() { echo "[bench-mount $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has_part() { case "$PARTS" in *"$1"*) return 0 ;; esac; return 1; }
needs_s3() { local p; for p in 1 2 3 4 5 6; do has_part "$p" && return 0; done; return 1; }

case "$PARTS" in *[!1-9]*) die "BENCH_MOUNT_PARTS takes digits 1-9, got '$PARTS'" ;; esac
[ "$(id -u)" = 0 ] || die "run as root (drop_caches and FUSE mounts)"
[ -x "$BIN" ] || die "$BIN not found: run cargo build --release first"
[ -e /dev/fuse ] || die "no /dev/fuse"
for c in jq fio fusermount3 curl python3; do command -v "$c" >/dev/null || die "$c missing (apt-get install $c)"; done
if needs_s3; then
  for c in rclone s3fs; do command -v "$c" >/dev/null || die "$c missing (apt-get install $c): it is a baseline of parts 1-6"; done
  "$PY" -c 'import boto3' 2>/dev/null || die "$PY cannot import boto3 (set BENCH_PYTHON)"
  { command -v garage >/dev/null || [ -x "$HOME/.cargo/bin/garage" ]; } || die "garage missing: cargo install garage --locked"
  if has_part 1 || has_part 2 || has_part 3 || has_part 4 || has_part 6; then
    [ -x "$MP_BIN" ] || die "mountpoint-s3 baseline $MP_BIN missing: run scripts/bench/build-mountpoint-s3.sh first (once; ~15 min on 2 cores)"
    if ! cmp -s "$ROOT/scripts/bench/mountpoint-s3/main.rs" "$(dirname "$MP_BIN")/../../src/main.rs" 2>/dev/null; then
      log "WARNING: $MP_BIN was not built from scripts/bench/mountpoint-s3/main.rs as it is now: rerun scripts/bench/build-mountpoint-s3.sh"
    fi
  fi
fi
if [ -n "$(find "$ROOT/src" -newer "$BIN" -print -quit)" ]; then
  log "WARNING: $BIN is older than src/: results may not match the sources (cargo build --release)"
fi

W=$(mktemp -d "${BENCH_MOUNT_TMP:-/tmp}/assetfs-bench-mount.XXXXXX")
case "$W" in *[[:space:]]*) die "work directory path must not contain spaces: $W" ;; esac
PIDS=()          # background processes we started (mount daemons, rclone, s3fs, mountpoint-s3); Garage is GARAGE_PID
GARAGE_PID=
SHM9=            # part 9's copy of its store on tmpfs (removed on any exit)

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
  if [ -n "$SHM9" ]; then rm -rf "$SHM9"; fi
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then log "work directory kept: $W (logs under $W/logs)"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/logs" "$W/mnt"
# Run a private copy: a concurrent `cargo build --release` must not swap the binary halfway through.
BIN_SRC=$BIN
cp "$BIN" "$W/assetfs"; BIN="$W/assetfs"
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
min() { printf '%s\n' "$@" | sort -g | head -n 1; }
mib_of_kb() { calc '%.0f' "$1 / 1024"; }
clk=$(getconf CLK_TCK)
cpu_s() { awk -v t="$clk" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }  # user+sys of PID
# snap PID: "cpu_seconds rchar read_bytes write_bytes" of PID; snapdiff A B: the difference, human-readable.
snap() { echo "$(cpu_s "$1") $(awk '/^(rchar|read_bytes|write_bytes):/ { printf "%s ", $2 }' "/proc/$1/io")"; }
snapdiff() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "CPU %.2f s, read() %.0f MiB (from disk %.0f MiB), written to disk %.0f MiB", y[1] - x[1], (y[2] - x[2]) / 1048576, (y[3] - x[3]) / 1048576, (y[4] - x[4]) / 1048576 }'
}
snapcpu() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", y[1] - x[1] }'; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# metrics, gets, wire, wirediff, wirefield: Garage's counters.
source "$ROOT/scripts/bench/garage-metrics.sh"
runs_list() { local IFS=' '; echo "$*"; }
# run_ratios A B: "per run: A[i]/B[i] ..." of two arrays (by name) measured in the same runs; their spread shows
# how much of a ratio of medians is the machine's mood.
run_ratios() {
  local -n ra=$1 rb=$2; local i out=()
  for i in "${!ra[@]}"; do out+=("$(calc '%.2f' "${ra[$i]} / ${rb[$i]}")"); done
  echo "per run: $(runs_list "${out[@]}")"
}
fmt_runs() { local f=$1 x out=(); shift; for x in "$@"; do out+=("$(calc "$f" "$x")"); done; runs_list "${out[@]}"; }
# goal OP TARGET VALUE [UNIT]: "OP TARGET[ UNIT]: yes|**no**" (OP is >=, > or <=; VALUE as printed in the row).
goal() {
  local ok
  ok=$(awk -v v="$3" -v t="$2" -v op="$1" 'BEGIN { print ((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == ">" && v > t)) ? "yes" : "**no**" }')
  echo "$1 $2${4:+ $4}: $ok"
}

# pair RUN F G: runs F then G in odd runs, G then F in even runs. F reads through assetfs, G is its baseline:
# back-to-back reads on this VM are not alike (in an A/A run the same read was up to 16% faster, or slower,
# for coming second; docs/benchmarks.md), so neither side always gets the same slot.
pair() { if [ $(( $1 % 2 )) = 1 ]; then "$2"; "$3"; else "$3"; "$2"; fi; }

# seqread FILE: reads FILE with dd bs=1M; sets SECS and BYTES.
seqread() {
  local t0 t1 out
  t0=$(now)
  out=$("${ON1[@]}" dd if="$1" of=/dev/null bs=1M 2>&1 | tail -n 1)
  t1=$(now)
  SECS=$(secs "$t0" "$t1"); BYTES=${out%% *}
}
# catread FILE...: `cat FILE... >/dev/null`, one reader; sets SECS and BYTES (sum of the sizes).
catread() {
  local t0 t1
  BYTES=$(stat -c %s "$@" | awk '{ s += $1 } END { print s }')
  t0=$(now); cat "$@" >/dev/null; t1=$(now)
  SECS=$(secs "$t0" "$t1")
}

# amount STORE CACHE MNT: mounts in the foreground (as a background job) and waits until live.
# Sets MNT_PID, MNT_DIR and LIVE_S (launch to mount in the mount table).
amount() {
  local t0
  mkdir -p "$3"
  t0=$(now)
  "${ON1[@]}" "$BIN" --store "$1" --cache-dir "$2" mount "$3" --foreground --cache-size "$CACHE_SIZE" --timeout 30s \
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
  HWM_KB=$(hwm_kb "$MNT_PID")
  "$BIN" unmount "$MNT_DIR" >/dev/null || force_unmount "$MNT_DIR"
  wait "$MNT_PID" || log "WARNING: mount daemon $MNT_PID exited with status $?"
}

# Third-party FUSE mounts of plain objects: omount KIND DIR PREFIX PROBE [CACHE] mounts $BUCKET/PREFIX at DIR with
# KIND (rclone, s3fs or mp for mountpoint-s3; CACHE: mountpoint-s3's --cache directory) and waits until DIR/PROBE
# exists. Sets OTHER_PID; ounmount sets OTHER_HWM_KB.
omount() {
  local kind=$1 dir=$2 prefix=$3
  OTHER_DIR=$dir; OTHER_PROBE=$4
  mkdir -p "$dir"
  case "$kind" in
    rclone)
      # Debian's rclone fails TLS setup when AWS_CA_BUNDLE is set (plain HTTP here, but it loads it anyway).
      env -u AWS_CA_BUNDLE RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other \
        RCLONE_CONFIG_G_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_G_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
        RCLONE_CONFIG_G_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_G_REGION=garage \
        rclone mount "g:$BUCKET/$prefix" "$dir" --read-only --vfs-cache-mode off >>"$W/logs/rclone.out" 2>&1 &
      ;;
    s3fs)
      s3fs "$BUCKET:/$prefix" "$dir" -f -o "url=$AWS_ENDPOINT_URL,use_path_request_style,passwd_file=$W/s3fs.passwd,endpoint=garage,ro" \
        >>"$W/logs/s3fs.out" 2>&1 &
      ;;
    mp)
      if [ -n "${5:-}" ]; then mkdir -p "$5"; fi
      "${ON1[@]}" env -u AWS_CA_BUNDLE "$MP_BIN" "$BUCKET/$prefix" "$dir" --endpoint-url "$AWS_ENDPOINT_URL" --region garage \
        ${5:+--cache "$5"} >>"$W/logs/mp.out" 2>&1 &
      ;;
    *) die "omount: unknown kind $kind" ;;
  esac
  OTHER_PID=$!; PIDS+=("$OTHER_PID")
  for _ in $(seq 300); do
    is_mounted "$dir" && [ -e "$dir/$OTHER_PROBE" ] && return 0
    kill -0 "$OTHER_PID" 2>/dev/null || die "$kind mount exited early (see $W/logs/$kind.out)"
    sleep 0.05
  done
  die "$kind mount of $dir not ready after 15 s"
}
ounmount() {
  OTHER_HWM_KB=$(hwm_kb "$OTHER_PID")
  fusermount3 -u "$OTHER_DIR" 2>/dev/null || umount "$OTHER_DIR"
  wait "$OTHER_PID" || true
}
kind_name() { case "$1" in mp) echo mountpoint-s3 ;; *) echo "$1" ;; esac; }

# ------------------------------------------------------------------------------------------------------------
log "work directory $W"
BUSY=$(ps -eo comm= | grep -xE 'cargo|rustc|garage|assetfs|fio|rclone|s3fs|mp-mount' | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }' || true)
note "- Machine: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"); work directory on $(df --output=source,fstype "$W" | tail -n 1 | tr -s ' '). Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); other cargo/rustc/garage processes at start: ${BUSY:-none}."
VERS="assetfs $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (src/ modified)'), binary $BIN_SRC ($("$BIN" --version 2>/dev/null | head -n 1))"
if needs_s3; then
  VERS+="; $("$(command -v garage || echo "$HOME/.cargo/bin/garage")" --version 2>/dev/null | head -n 1); $(rclone version 2>/dev/null | head -n 1); $(s3fs --version 2>/dev/null | head -n 1 | sed 's/ *(commit.*//'); mountpoint-s3-fs 0.11.0 via $MP_BIN; $(curl --version | head -n 1 | cut -d' ' -f1-2); python $("$PY" -c 'import sys, boto3; print(sys.version.split()[0], "boto3", boto3.__version__)')"
fi
note "- $VERS; $(fio --version)."
note "- Page cache: \`sync; echo 3 > /proc/sys/vm/drop_caches\` before every timed step (cold and warm alike); medians of $RUNS runs unless said otherwise. 'page cache dropped' is inside this VM; the host may still cache the virtual disk, which is the likely reason local-disk baselines vary from run to run."

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
setup_garage() {
  [ -n "$BUCKET" ] && return 0
  log "starting Garage on 127.0.0.1:$PORT"
  local envline
  envline=$(env -u RUST_LOG "$GARAGE_UP" "$W/garage" "$PORT") || die "garage-up.sh failed: $envline"
  eval "$envline"
  BUCKET=$BENCH_BUCKET
  echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$W/s3fs.passwd"; chmod 600 "$W/s3fs.passwd"
  for _ in $(seq 50); do metrics >/dev/null 2>&1 && break; sleep 0.2; done
  metrics >/dev/null || die "Garage metrics endpoint on port $((PORT + 3)) not answering"
  log "**************************************************************************************************"
  log "WARNING: ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 for the pushes to Garage, which IGNORES conditional"
  log "WARNING: writes (If-None-Match). Fine for a single-writer benchmark; never use Garage for commits."
  log "**************************************************************************************************"
  note "- **WARNING: pushes to Garage ran with \`ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1\`: Garage ignores conditional writes (single writer here, so no version can be lost; never commit to Garage for real).** Garage: single node on 127.0.0.1, lmdb, data on the same disk (\`/work/shared/bench/garage-up.sh\`)."
}

# ainit STORE_URL: `assetfs init` (create or validate the store; pushes and mounts need its marker).
ainit() {
  local skip=()
  case "$1" in s3://*) skip=(env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1) ;; esac
  "${skip[@]}" "$BIN" --store "$1" init >/dev/null 2>>"$W/logs/push.err" || die "assetfs init of $1 failed (see $W/logs/push.err)"
}

# s3push STORE_URL REF DIR NAME: pushes DIR to a Garage store; sets R[push_NAME_s] and writes $W/push-NAME.json.
s3push() {
  local t0 t1
  ainit "$1"
  t0=$(now)
  ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$1" --cache-dir "$W/cache-push" \
    push "$2" "$3" -m "bench-mount" >"$W/push-$4.json" 2>>"$W/logs/push.err" || die "push of $3 to $1 failed (see $W/logs/push.err)"
  t1=$(now)
  rm -rf "$W/cache-push"
  R[push_$4_s]=$(secs "$t0" "$t1")
}

setup_s3() {
  [ -n "$STORE_S3" ] && return 0
  setup_garage
  STORE_S3="s3://$BUCKET/$PREFIX"
  log "generating a ${BIG_MIB} MiB random file"
  mkdir -p "$SRC_BIG"
  head -c "$BIG_BYTES" /dev/urandom >"$SRC_BIG/big.bin"
  log "pushing it to $STORE_S3"
  s3push "$STORE_S3" models/big "$SRC_BIG" big
  log "  push: ${R[push_big_s]} s; uploading the same file as one plain object $BUCKET/$PLAIN/big.bin"
  "$PY" "$TOOLS" put "$BUCKET" "$PLAIN/big.bin" "$SRC_BIG/big.bin" >"$W/put-plain.json"
  "$PY" "$TOOLS" sizes "$BUCKET" "$PREFIX/packs" >"$W/packs.json"
  R[packs_n]=$(jq .objects "$W/packs.json"); R[packs_bytes]=$(jq .bytes "$W/packs.json")
  [ "${R[packs_bytes]}" = "$BIG_BYTES" ] || log "WARNING: packs hold ${R[packs_bytes]} bytes, file has $BIG_BYTES"
  MF="$W/mnt/s3"
  FILE_M="$MF/models/big@1/big.bin"
}

# rawget SPEC PREFIX: ranged GETs of every object under PREFIX/ with the raw client SPEC (CLIENT:RANGE_KIB:CONC,
# CLIENT boto3 or curl); prints MiB/s and leaves the tool's JSON in $W/raw.json.
rawget() {
  local client range conc
  IFS=: read -r client range conc <<<"$1"
  case "$client" in
    boto3) "${ON1[@]}" "$PY" "$TOOLS" rawget "$BUCKET" "$2" "$range" "$conc" >"$W/raw.json" ;;
    curl) "${ON1[@]}" "$PY" "$TOOLS" rawget-curl "$BUCKET" "$2" "$range" "$conc" >"$W/raw.json" ;;
    *) die "raw client '$client' unknown (boto3 or curl)" ;;
  esac
  jq -r '.bytes / 1048576 / .seconds | floor' "$W/raw.json"
}
spec_desc() { local c r n; IFS=: read -r c r n <<<"$1"; echo "$c, $((r / 1024)) MiB ranges, $n in flight"; }

# Garage and every client share this VM's cores, so a client that does more per byte than curl (verify, cache,
# the FUSE copy) takes CPU from the server. Rows 1j and 2c read again with the two apart: pin_garage 1 puts
# Garage's threads (and the threads they start) on CPU 0, pin_garage 0 lets them run anywhere again; while
# pinned, `"${ON1[@]}" CMD...` runs CMD on CPU 1 (the raw clients, the mounts, dd and the readers go through it;
# an array, not a function, so that `$!` of a command started in the background is the command's PID).
ON1=()
pin_garage() {
  if [ "$1" = 1 ]; then taskset -a -p 1 "$GARAGE_PID" >/dev/null; ON1=(taskset -c 1)
  else taskset -a -p "$(( (1 << $(nproc)) - 1 ))" "$GARAGE_PID" >/dev/null; ON1=(); fi
}

# ------------------------------------------------------------------------------------------------------------
part1() {
  setup_s3
  log "part 1: cold sequential read of ${BIG_MIB} MiB"
  local r raw=() rawg=() rawget=() rawplain=() afwarn=() af=() afrss=() afget=() afcpu=() afcpus=() afblk=() aflo=() gcpu=() pf=()
  local g0 c0 gc0 spec base="boto3:$RANGE_KIB:$CONC" ss_b=() ss_c=()
  declare -A more=()
  for r in $(seq "$RUNS"); do
    flush; gc0=$(cpu_s "$GARAGE_PID"); g0=$(wire)
    raw+=("$(rawget "$base" "$PREFIX/packs")")
    rawg+=("$(calc '%.2f' "$(cpu_s "$GARAGE_PID") - $gc0")"); rawget+=("$(wirediff "$g0" "$(wire)")")
    R[raw_req]=$(jq .requests "$W/raw.json")
    flush; rawplain+=("$(rawget "$base" "$PLAIN")")
    for spec in $RAW_MORE; do
      flush; more[$spec]+="$(rawget "$spec" "$PREFIX/packs") "
    done
    flush; ss_b+=("$("$PY" "$TOOLS" getall "$BUCKET" "$PLAIN/big.bin" | jq -r '.bytes / 1048576 / .seconds | floor')")
    flush; ss_c+=("$("$PY" "$TOOLS" getall-curl "$BUCKET" "$PLAIN/big.bin" | jq -r '.bytes / 1048576 / .seconds | floor')")
    log "  run $r: raw GETs packs ${raw[-1]} MiB/s (${rawget[-1]}), plain object ${rawplain[-1]} MiB/s; single stream: boto3 ${ss_b[-1]}, curl ${ss_c[-1]} MiB/s; more: $(for spec in $RAW_MORE; do printf '%s %s; ' "$spec" "$(echo "${more[$spec]}" | awk '{ print $NF }')"; done)"
  done
  # The strongest raw client is the baseline of goals 1 and 2.
  local m_raw best=$base best_v m
  m_raw=$(median "${raw[@]}"); best_v=$m_raw
  local rawdesc
  rawdesc="$(spec_desc "$base"): $m_raw MiB/s (runs: $(runs_list "${raw[@]}"))"
  for spec in $RAW_MORE; do
    # shellcheck disable=SC2086
    m=$(median ${more[$spec]})
    rawdesc+="; $(spec_desc "$spec"): $m MiB/s (runs: ${more[$spec]% })"
    if [ "$(calc "%d" "($m > $best_v) ? 1 : 0")" = 1 ]; then best=$spec; best_v=$m; fi
  done
  R[raw_best]=$best; R[raw_best_v]=$best_v
  for r in $(seq "$RUNS"); do
    COLD_CACHE="$W/cache-cold-$r"
    amount "$STORE_S3" "$COLD_CACHE" "$MF"
    flush
    g0=$(wire); c0=$(snap "$MNT_PID"); gc0=$(cpu_s "$GARAGE_PID")
    seqread "$FILE_M"
    [ "$BYTES" = "$BIG_BYTES" ] || die "read $BYTES bytes through the mount, expected $BIG_BYTES"
    local g1 c1; g1=$(wire); c1=$(snap "$MNT_PID")
    afget+=("$(wirediff "$g0" "$g1")"); afcpu+=("$(snapdiff "$c0" "$c1")"); afcpus+=("$(snapcpu "$c0" "$c1")")
    afblk+=("$(calc '%.3f' "$(wirefield "$g0" "$g1" 2) / $BIG_BYTES")"); aflo+=("$(calc '%.3f' "$(wirefield "$g0" "$g1" 3) / $BIG_BYTES")")
    gcpu+=("$(calc '%.2f' "$(cpu_s "$GARAGE_PID") - $gc0")")
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
  local kind
  declare -A orate=() orss=() ocpu=() oget=()
  for r in $(seq "$RUNS"); do
    for kind in rclone s3fs mp; do
      omount "$kind" "$W/mnt/$kind" "$PLAIN" big.bin; flush; g0=$(wire); c0=$(snap "$OTHER_PID")
      seqread "$W/mnt/$kind/big.bin"
      ocpu[$kind]+="$(snapcpu "$c0" "$(snap "$OTHER_PID")") "; oget[$kind]+="$(wirediff "$g0" "$(wire)"); "
      ounmount
      [ "$BYTES" = "$BIG_BYTES" ] || die "$kind read $BYTES bytes"
      orate[$kind]+="$(mibs "$BYTES" "$SECS") "; orss[$kind]=$(max "$OTHER_HWM_KB" "${orss[$kind]:-0}")
    done
    log "  run $r: rclone $(echo "${orate[rclone]}" | awk '{ print $NF }'), s3fs $(echo "${orate[s3fs]}" | awk '{ print $NF }'), mountpoint-s3 $(echo "${orate[mp]}" | awk '{ print $NF }') MiB/s"
  done
  local pr=() pa=() pm=()
  if [ "$PINNED_RUNS" = 1 ]; then
    pin_garage 1
    for r in $(seq "$RUNS"); do
      flush; pr+=("$(rawget "$best" "$PREFIX/packs")")
      rm -rf "$W/cache-pin"; amount "$STORE_S3" "$W/cache-pin" "$MF"; flush
      seqread "$FILE_M"; aunmount
      [ "$BYTES" = "$BIG_BYTES" ] || die "pinned: read $BYTES bytes through the mount, expected $BIG_BYTES"
      pa+=("$(mibs "$BIG_BYTES" "$SECS")")
      omount mp "$W/mnt/mp" "$PLAIN" big.bin; flush; seqread "$W/mnt/mp/big.bin"; ounmount
      pm+=("$(mibs "$BYTES" "$SECS")")
      log "  run $r, Garage on CPU 0 and the clients on CPU 1: raw GETs ${pr[-1]}, assetfs ${pa[-1]}, mountpoint-s3 ${pm[-1]} MiB/s"
    done
    pin_garage 0; rm -rf "$W/cache-pin"
  fi
  local a m_plain m_pf m_ss_b m_ss_c m_ss
  a=$(median "${af[@]}"); m_plain=$(median "${rawplain[@]}"); m_pf=$(median "${pf[@]}")
  m_ss_b=$(median "${ss_b[@]}"); m_ss_c=$(median "${ss_c[@]}"); m_ss=$(max "$m_ss_b" "$m_ss_c")
  declare -A om=()
  # shellcheck disable=SC2086
  for kind in rclone s3fs mp; do om[$kind]=$(median ${orate[$kind]}); done
  local rss; rss="$(mib_of_kb "$(max "${afrss[@]}")") MiB"
  local afruns; afruns=$(runs_list "${af[@]}")
  local ratio; ratio=$(calc '%.2f' "$a / $best_v")
  row " 1a " " cold sequential read, ${BIG_MIB} MiB, Garage S3, empty cache (dd bs=1M) " " **$a MiB/s** (runs: $afruns) " \
    " raw parallel ranged GETs of the same ${R[packs_n]} pack objects, strongest client: **$best_v MiB/s** ($(spec_desc "$best")). All tried: $rawdesc " \
    " **${ratio}x** (vs boto3 8x8 as in the first runs: $(calc '%.2f' "$a / $m_raw")x) " " $(goal '>=' 1.0 "$ratio") " " $rss "
  ratio=$(calc '%.2f' "$a / ${om[rclone]}")
  row " 1b " " (same) " " $a MiB/s " " rclone mount, --vfs-cache-mode off, plain object: ${om[rclone]} MiB/s (runs: ${orate[rclone]% }) " \
    " **${ratio}x** " " $(goal '>' 1.0 "$ratio") " " rclone: $(mib_of_kb "${orss[rclone]}") MiB "
  ratio=$(calc '%.2f' "$a / ${om[s3fs]}")
  row " 1c " " (same) " " $a MiB/s " " s3fs (defaults, no use_cache), plain object: ${om[s3fs]} MiB/s (runs: ${orate[s3fs]% }) " \
    " **${ratio}x** " " $(goal '>' 1.0 "$ratio") " " s3fs: $(mib_of_kb "${orss[s3fs]}") MiB "
  row " 1d " " (context) raw ranged GETs of the plain object vs of the packs " " packs: $m_raw MiB/s " " plain object: $m_plain MiB/s ($(spec_desc "$base")) " \
    " $(calc '%.2f' "$m_raw / $m_plain")x " " - " " - "
  row " 1e " " (diagnostic) assetfs cold read vs \`assetfs cache prefetch\` (same client and store, no FUSE; 64 MiB coalesced ranged GETs, 4 in flight) " \
    " $a MiB/s " " prefetch: $m_pf MiB/s (runs: $(runs_list "${pf[@]}")) " " $(calc '%.2f' "$a / $m_pf")x " " - " " - "
  ratio=$(calc '%.2f' "$a / ${om[mp]}")
  row " 1f " " (same) " " $a MiB/s " " mountpoint-s3 (mountpoint-s3-fs 0.11.0, 8 MiB parts, no cache), plain object: ${om[mp]} MiB/s (runs: ${orate[mp]% }) " \
    " **${ratio}x** " " $(goal '>' 1.0 "$ratio") " " mountpoint-s3: $(mib_of_kb "${orss[mp]}") MiB "
  row " 1g " " (context) single-stream GET of the plain object (one request, read in 1 MiB pieces) " " $a MiB/s " \
    " $m_ss MiB/s (boto3 $m_ss_b MiB/s, runs: $(runs_list "${ss_b[@]}"); curl $m_ss_c MiB/s, runs: $(runs_list "${ss_c[@]}")); mountpoint-s3 reads at $(calc '%.2f' "${om[mp]} / $m_ss")x this " \
    " $(calc '%.2f' "$a / $m_ss")x " " - " " - "
  if [ "$PINNED_RUNS" = 1 ]; then
    local pa_m pr_m pm_m; pa_m=$(median "${pa[@]}"); pr_m=$(median "${pr[@]}"); pm_m=$(median "${pm[@]}")
    row " 1j " " (diagnostic) the same cold read with Garage on CPU 0 and every client (curl, the mount daemons, dd) on CPU 1: no client takes CPU from the server " \
      " $pa_m MiB/s (runs: $(runs_list "${pa[@]}")) " " raw GETs ($(spec_desc "$best")) $pr_m MiB/s (runs: $(runs_list "${pr[@]}")); mountpoint-s3 $pm_m MiB/s (runs: $(runs_list "${pm[@]}")) = assetfs $(calc '%.2f' "$pa_m / $pm_m")x " \
      " $(calc '%.2f' "$pa_m / $pr_m")x raw " " - " " - "
  fi
  local blk lo
  blk=$(median "${afblk[@]}"); lo=$(median "${aflo[@]}")
  row " 1h " " bytes fetched from the store / bytes read, assetfs cold read (Garage's \`block_bytes_read\` metric; loopback bytes as a cross-check) (lower is better) " \
    " **${blk}** (runs: $(runs_list "${afblk[@]}")); loopback: $lo (runs: $(runs_list "${aflo[@]}")) " " raw GETs: 1.000 (every byte once) " " **${blk}** " " $(goal '<=' 1.02 "$blk") " " - "
  local cpg; cpg=$(calc '%.2f' "$(median "${afcpus[@]}") * 1024 / $BIG_MIB")
  # shellcheck disable=SC2086
  row " 1i " " daemon CPU seconds per GiB read (user+sys), cold read; peak RSS (lower is better) " " **$cpg CPU-s/GiB** (runs: $(fmt_runs '%.2f' "${afcpus[@]}") s); VmHWM $rss " \
    " rclone $(calc '%.2f' "$(median ${ocpu[rclone]}) * 1024 / $BIG_MIB"), s3fs $(calc '%.2f' "$(median ${ocpu[s3fs]}) * 1024 / $BIG_MIB"), mountpoint-s3 $(calc '%.2f' "$(median ${ocpu[mp]}) * 1024 / $BIG_MIB") CPU-s/GiB; Garage serving raw GETs: $(calc '%.2f' "$(median "${rawg[@]}") * 1024 / $BIG_MIB"), serving assetfs: $(calc '%.2f' "$(median "${gcpu[@]}") * 1024 / $BIG_MIB") " \
    " $(calc '%.2f' "$cpg / ($(median ${ocpu[mp]}) * 1024 / $BIG_MIB)")x mountpoint-s3 " " - " " $rss "
  note "- Part 1: the ${BIG_MIB} MiB file is \`head -c\` of /dev/urandom, pushed as models/big to \`$STORE_S3\` (${R[push_big_s]} s; $(jq -r '"\(.new_chunks) chunks in \(.packs) packs"' "$W/push-big.json")). The raw baselines fetch exactly those pack objects (every byte of the version, nothing else), bodies read and discarded: \`scripts/bench/mount-tools.py rawget\` (boto3: RANGE-size \`Range\` GETs from a CONC-thread pool) and \`rawget-curl\` (one \`curl --parallel --parallel-max CONC\` process doing the same ranged GETs, SigV4 by curl). The original file was also uploaded as one plain object \`$BUCKET/$PLAIN/big.bin\` (boto3 multipart upload, 64 MiB parts) and read through rclone, s3fs and mountpoint-s3: the same bytes over the wire; row 1d compares Garage serving the two layouts. Every run is a fresh mount with the page cache dropped after mounting; assetfs starts each run with an empty cache directory. mountpoint-s3: \`scripts/bench/mountpoint-s3/main.rs\` on mountpoint-s3-fs 0.11.0 with mount-s3's defaults (8 MiB parts, 16 FUSE threads, 10 Gbit/s target), metadata TTL indefinite, no data cache in parts 1-3 and 6."
  note "- Part 1 traffic, per run (GetObject count and Garage block reads from Garage's metrics, bytes from /proc/net/dev lo): assetfs cold: $(printf '%s; ' "${afget[@]}")raw GETs ($(spec_desc "$base")): $(printf '%s; ' "${rawget[@]}")rclone: ${oget[rclone]}s3fs: ${oget[s3fs]}mountpoint-s3: ${oget[mp]}"
  note "- Part 1 CPU, per run: mount daemon during the cold read (CPU = user+sys; bytes from /proc/PID/io): $(printf '%s; ' "${afcpu[@]}")Garage CPU during the read ${gcpu[*]} s (during the raw-GET baseline: ${rawg[*]} s); WARN lines in the daemon log: ${afwarn[*]}. Cache after the last cold read: $(jq -r '"\(.entries) chunks, \(.bytes) bytes"' "$W/cold-stats.json")."
  R[cold]=$a
}

# ------------------------------------------------------------------------------------------------------------
part2() {
  setup_garage
  local n=$EIGHT_FILES mib=$EIGHT_MIB src="$W/src-eight" i
  local store="s3://$BUCKET/$PREFIX-eight" plain="$PREFIX-eight-plain" mnt="$W/mnt/s3e"
  log "part 2: $n readers of $n x $mib MiB, cold"
  mkdir -p "$src"
  for i in $(seq 0 $((n - 1))); do head -c "$((mib * 1048576))" /dev/urandom >"$src/f$i.bin"; done
  s3push "$store" models/eight "$src" eight
  for i in $(seq 0 $((n - 1))); do "$PY" "$TOOLS" put "$BUCKET" "$plain/f$i.bin" "$src/f$i.bin" >/dev/null; done
  rm -rf "$src"
  local total=$((n * mib * 1048576)) spec=${R[raw_best]:-boto3:$RANGE_KIB:$CONC}
  local r raw=() af=() afrss=() afget=() afcpus=() g0 c0 files=() kind
  declare -A orate=() orss=()
  for r in $(seq "$RUNS"); do
    flush; raw+=("$(rawget "$spec" "$PREFIX-eight/packs")")
    rm -rf "$W/cache-eight"; amount "$store" "$W/cache-eight" "$mnt"; flush
    files=(); for i in $(seq 0 $((n - 1))); do files+=("$mnt/models/eight@1/f$i.bin"); done
    g0=$(wire); c0=$(snap "$MNT_PID")
    "${ON1[@]}" "$PY" "$TOOLS" readers "${files[@]}" >"$W/readers.json"
    afget+=("$(wirediff "$g0" "$(wire)")"); afcpus+=("$(snapcpu "$c0" "$(snap "$MNT_PID")")")
    aunmount; afrss+=("$HWM_KB")
    [ "$(jq .bytes "$W/readers.json")" = "$total" ] || die "part 2 read $(jq .bytes "$W/readers.json") bytes through the mount, expected $total"
    af+=("$(jq -r '.bytes / 1048576 / .seconds | floor' "$W/readers.json")")
    local others=""
    if [ "$EIGHT_MOUNTS" = 1 ]; then
      for kind in rclone s3fs mp; do
        omount "$kind" "$W/mnt/$kind" "$plain" f0.bin; flush
        files=(); for i in $(seq 0 $((n - 1))); do files+=("$W/mnt/$kind/f$i.bin"); done
        "${ON1[@]}" "$PY" "$TOOLS" readers "${files[@]}" >"$W/readers.json"
        ounmount
        [ "$(jq .bytes "$W/readers.json")" = "$total" ] || die "part 2: $kind read $(jq .bytes "$W/readers.json") bytes"
        orate[$kind]+="$(jq -r '.bytes / 1048576 / .seconds | floor' "$W/readers.json") "; orss[$kind]=$(max "$OTHER_HWM_KB" "${orss[$kind]:-0}")
        others+=", $(kind_name "$kind") $(echo "${orate[$kind]}" | awk '{ print $NF }')"
      done
    fi
    log "  run $r: assetfs ${af[-1]} MiB/s (${afget[-1]}), raw GETs ${raw[-1]}$others MiB/s"
  done
  rm -rf "$W/cache-eight"
  local pr=() pa=() pm=()
  if [ "$PINNED_RUNS" = 1 ]; then
    pin_garage 1
    for r in $(seq "$RUNS"); do
      flush; pr+=("$(rawget "$spec" "$PREFIX-eight/packs")")
      rm -rf "$W/cache-eight"; amount "$store" "$W/cache-eight" "$mnt"; flush
      files=(); for i in $(seq 0 $((n - 1))); do files+=("$mnt/models/eight@1/f$i.bin"); done
      "${ON1[@]}" "$PY" "$TOOLS" readers "${files[@]}" >"$W/readers.json"; aunmount
      [ "$(jq .bytes "$W/readers.json")" = "$total" ] || die "part 2 pinned: read $(jq .bytes "$W/readers.json") bytes"
      pa+=("$(jq -r '.bytes / 1048576 / .seconds | floor' "$W/readers.json")")
      omount mp "$W/mnt/mp" "$plain" f0.bin; flush
      files=(); for i in $(seq 0 $((n - 1))); do files+=("$W/mnt/mp/f$i.bin"); done
      "${ON1[@]}" "$PY" "$TOOLS" readers "${files[@]}" >"$W/readers.json"; ounmount
      pm+=("$(jq -r '.bytes / 1048576 / .seconds | floor' "$W/readers.json")")
      log "  run $r, Garage on CPU 0 and the clients on CPU 1: raw GETs ${pr[-1]}, assetfs ${pa[-1]}, mountpoint-s3 ${pm[-1]} MiB/s"
    done
    pin_garage 0; rm -rf "$W/cache-eight"
  fi
  local a m ratio
  a=$(median "${af[@]}"); m=$(median "${raw[@]}"); ratio=$(calc '%.2f' "$a / $m")
  row " 2a " " $n readers at once, each reading its own ${mib} MiB file (cold, Garage S3, empty cache; aggregate) " " **$a MiB/s** (runs: $(runs_list "${af[@]}")); daemon $(calc '%.2f' "$(median "${afcpus[@]}") * 1024 * 1048576 / $total") CPU-s/GiB " \
    " raw parallel ranged GETs of the same packs ($(spec_desc "$spec")): $m MiB/s (runs: $(runs_list "${raw[@]}")) " " **${ratio}x** " " $(goal '>=' 1.0 "$ratio") " " $(mib_of_kb "$(max "${afrss[@]}")") MiB "
  if [ "$EIGHT_MOUNTS" = 1 ]; then
    local cells=() om
    # shellcheck disable=SC2086
    for kind in rclone s3fs mp; do om=$(median ${orate[$kind]}); cells+=("$(kind_name "$kind") $om MiB/s (runs: ${orate[$kind]% }; VmHWM $(mib_of_kb "${orss[$kind]}") MiB) = assetfs $(calc '%.2f' "$a / $om")x"); done
    row " 2b " " (context) the same $n files read the same way through other mounts (plain objects) " " $a MiB/s " " $(printf '%s; ' "${cells[@]}") " " - " " - " " - "
  fi
  if [ "$PINNED_RUNS" = 1 ]; then
    local pa_m pr_m pm_m; pa_m=$(median "${pa[@]}"); pr_m=$(median "${pr[@]}"); pm_m=$(median "${pm[@]}")
    row " 2c " " (diagnostic) the same $n readers with Garage on CPU 0 and every client (curl, the mount daemons, the readers) on CPU 1 " \
      " $pa_m MiB/s (runs: $(runs_list "${pa[@]}")) " " raw GETs ($(spec_desc "$spec")) $pr_m MiB/s (runs: $(runs_list "${pr[@]}")); mountpoint-s3 $pm_m MiB/s (runs: $(runs_list "${pm[@]}")) = assetfs $(calc '%.2f' "$pa_m / $pm_m")x " \
      " $(calc '%.2f' "$pa_m / $pr_m")x raw " " - " " - "
  fi
  note "- Part 2: $n random files of ${mib} MiB pushed as models/eight to \`$store\` (${R[push_eight_s]} s; $(jq -r '"\(.new_chunks) chunks in \(.packs) packs"' "$W/push-eight.json")) and uploaded as plain objects under \`$BUCKET/$plain/\`; readers: \`mount-tools.py readers\` (one thread per file, 1 MiB \`readinto\`), timed from the first open to the last byte. Raw baseline: the best client of part 1 (or boto3 ${RANGE_KIB} KiB x $CONC when part 1 did not run) over the version's packs. assetfs traffic per run: $(printf '%s; ' "${afget[@]}")"
}

# ------------------------------------------------------------------------------------------------------------
part3() {
  setup_garage
  local n=$DL_FILES kib=$DL_KIB src="$W/src-dl" store="s3://$BUCKET/$PREFIX-dl" plain="$PREFIX-dl-plain" mnt="$W/mnt/s3d"
  log "part 3: DataLoader pass over $n files of $kib KiB, $DL_THREADS threads"
  "$PY" "$TOOLS" files "$src" "$((kib * 1024))" "$n" 200 >"$W/dl-files.json"
  local list="$src.list" t0 slow=$(( DL_SLOW_FILES < DL_FILES ? DL_SLOW_FILES : DL_FILES ))
  s3push "$store" features/dl "$src" dl
  log "  push: ${R[push_dl_s]} s; uploading $n plain objects ($UPLOAD_THREADS threads)"
  t0=$(now)
  "$PY" "$TOOLS" putdir "$src" "$BUCKET" "$plain" "$UPLOAD_THREADS" >"$W/dl-put.json"
  local up_s; up_s=$(secs "$t0" "$(now)")
  log "  upload: $up_s s"
  # pass LABEL ROOT SEED [N]: one timed pass (over the first N files of the order); appends files/s to the array LABEL.
  pass() {
    "$PY" "$TOOLS" loader "$2" "$list" "$DL_THREADS" "$3" ${4:+"$4"} >"$W/loader.json"
    [ "$(jq .bytes "$W/loader.json")" = "$(( ${4:-$n} * kib * 1024 ))" ] || die "part 3 ($1): read $(jq .bytes "$W/loader.json") bytes, expected $(( ${4:-$n} * kib * 1024 ))"
    local -n arr=$1
    arr+=("$(jq -r '.files / .seconds | floor' "$W/loader.json")")
  }
  local r cold=() warm=() loc=() rc=() sf=() mp=() cold_rss=() warm_rss=() cold_cpu=() warm_cpu=() cold_get=() c0 g0
  local ver="$mnt/features/dl@1"
  for r in $(seq "$RUNS"); do
    # The local pass right after the warm pass in odd runs, before the cold pass in even ones (see `pair`).
    if [ $(( r % 2 )) = 0 ]; then flush; pass loc "$src" "$r"; fi
    rm -rf "$W/cache-dl"; amount "$store" "$W/cache-dl" "$mnt"; flush
    g0=$(wire); c0=$(snap "$MNT_PID")
    pass cold "$ver" "$r"
    cold_get+=("$(wirediff "$g0" "$(wire)")"); cold_cpu+=("$(snapcpu "$c0" "$(snap "$MNT_PID")")")
    aunmount; cold_rss+=("$HWM_KB")
    # The warm pass reads the cache the cold pass filled, completed by `cache prefetch` (reported).
    "$BIN" --json --store "$store" --cache-dir "$W/cache-dl" cache prefetch features/dl@1 >"$W/dl-pf.json"
    amount "$store" "$W/cache-dl" "$mnt"; flush
    c0=$(snap "$MNT_PID")
    pass warm "$ver" "$r"
    warm_cpu+=("$(snapcpu "$c0" "$(snap "$MNT_PID")")")
    aunmount; warm_rss+=("$HWM_KB")
    if [ $(( r % 2 )) = 1 ]; then flush; pass loc "$src" "$r"; fi
    omount rclone "$W/mnt/rclone" "$plain" d0000/f000000.bin; flush; pass rc "$W/mnt/rclone" "$r"; ounmount
    log "  run $r: files/s: assetfs cold ${cold[-1]} (${cold_get[-1]}), warm ${warm[-1]}; local ${loc[-1]}; rclone ${rc[-1]} (prefetch before warm: $(jq -r '"\(.chunks_fetched) chunks fetched"' "$W/dl-pf.json"))"
  done
  for r in $(seq "$DL_SLOW_RUNS"); do
    omount s3fs "$W/mnt/s3fs" "$plain" d0000/f000000.bin; flush; pass sf "$W/mnt/s3fs" "$r" "$slow"; ounmount
    omount mp "$W/mnt/mp" "$plain" d0000/f000000.bin; flush; pass mp "$W/mnt/mp" "$r" "$slow"; ounmount
    log "  run $r: files/s: s3fs ${sf[-1]}, mountpoint-s3 ${mp[-1]}"
  done
  rm -rf "$W/cache-dl"
  local a w l mr ms mm
  a=$(median "${cold[@]}"); w=$(median "${warm[@]}"); l=$(median "${loc[@]}")
  mr=$(median "${rc[@]}"); ms=""; mm=""
  if [ "$DL_SLOW_RUNS" -gt 0 ]; then ms=$(median "${sf[@]}"); mm=$(median "${mp[@]}"); fi
  local desc="$n files of $kib KiB read whole by $DL_THREADS threads in random order"
  local ratio; ratio=$(calc '%.2f' "$a / $mr")
  row " 3a " " DataLoader pass, cold: $desc (Garage S3, fresh mount, empty cache) " " **$a files/s** (runs: $(runs_list "${cold[@]}")); daemon $(calc '%.2f' "$(median "${cold_cpu[@]}")") CPU-s " \
    " rclone (--vfs-cache-mode off) on the same files as plain objects: $mr files/s (runs: $(runs_list "${rc[@]}")) " " **${ratio}x** " " $(goal '>=' 3 "$ratio") " " $(mib_of_kb "$(max "${cold_rss[@]}")") MiB "
  if [ "$DL_SLOW_RUNS" -gt 0 ]; then
    ratio=$(calc '%.2f' "$a / $ms")
    row " 3b " " (same) " " $a files/s " " s3fs (defaults): $ms files/s (runs: $(runs_list "${sf[@]}"); the first $slow files of each run's order) " " **${ratio}x** " " $(goal '>=' 3 "$ratio") " " - "
    row " 3c " " (context, same) " " $a files/s " " mountpoint-s3 (no cache): $mm files/s (runs: $(runs_list "${mp[@]}"); the first $slow files of each run's order) " " $(calc '%.2f' "$a / $mm")x " " - " " - "
  else
    row " 3b " " (same) " " $a files/s " " s3fs and mountpoint-s3 not run (BENCH_MOUNT_DL_SLOW_RUNS=0) " " - " " **not measured** " " - "
  fi
  ratio=$(calc '%.2f' "$w / $l")
  row " 3d " " DataLoader pass, second pass: disk cache warm, page cache dropped, fresh mount " " **$w files/s** (runs: $(runs_list "${warm[@]}")); daemon $(calc '%.2f' "$(median "${warm_cpu[@]}")") CPU-s " \
    " the same pass over the local files, page cache dropped: $l files/s (runs: $(runs_list "${loc[@]}")) " " **${ratio}x** ($(run_ratios warm loc)) " " $(goal '>=' 0.9 "$ratio") " " $(mib_of_kb "$(max "${warm_rss[@]}")") MiB "
  note "- Part 3: $n files of $((kib * 1024)) random bytes, 200 a directory (\`mount-tools.py files\`), pushed as features/dl to \`$store\` (${R[push_dl_s]} s; $(jq -r '"\(.new_chunks) chunks in \(.packs) packs"' "$W/push-dl.json")) and uploaded once as $n plain objects under \`$BUCKET/$plain/\` (\`mount-tools.py putdir\`, boto3 put_object x $UPLOAD_THREADS threads: $up_s s). Pass: \`mount-tools.py loader\`: $DL_THREADS threads take the next path of a list shuffled with seed = run number (the same order for every side within a run) and read each file whole (\`open(p, 'rb', buffering=0).read()\`); files/s over the whole pass. s3fs and mountpoint-s3: $DL_SLOW_RUNS run(s) over the first $slow files of the run's order (\`BENCH_MOUNT_DL_SLOW_RUNS\`, \`BENCH_MOUNT_DL_SLOW_FILES\`: s3fs reads ~100 files/s here, so a full pass takes minutes; files/s does not depend on how many of the files are read, as each is read once). Before each warm pass, \`cache prefetch\` completed the cache the cold pass left (chunks it fetched, last run: $(jq -r '.chunks_fetched' "$W/dl-pf.json")). assetfs traffic per cold pass: $(printf '%s; ' "${cold_get[@]}")"
  rm -rf "$src" "$list"
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
# fio_seq FILE OUT.json: sequential read, 1 MiB blocks, 4 jobs each reading its own quarter; prints MiB/s.
fio_seq() {
  local q=$((BIG_MIB / 4))
  fio --name=seq --filename="$1" --readonly --rw=read --bs=1M --direct=0 --ioengine=psync --numjobs=4 \
    --size="${q}M" --offset_increment="${q}M" --group_reporting --output-format=json >"$2" 2>>"$W/logs/fio.err"
  jq -r '.jobs[0].read.bw_bytes / 1048576 | floor' "$2"
}

part4() {
  ensure_warm
  log "part 4: warm sequential read"
  local r acat=() lcat=() add=() ldd=() afio=() lfio=() afrss=() afget=() afio_io=() t c0
  # Each assetfs read and its local baseline, in the order `pair` gives.
  p4_acat() {
    amount "$STORE_S3" "$COLD_CACHE" "$MF"; flush; t=$(gets); c0=$(snap "$MNT_PID")
    catread "$FILE_M"; afget+=($(( $(gets) - t ))); afio_io+=("$(snapdiff "$c0" "$(snap "$MNT_PID")")")
    aunmount; afrss+=("$HWM_KB"); acat+=("$(mibs "$BYTES" "$SECS")")
  }
  p4_lcat() { flush; catread "$SRC_BIG/big.bin"; lcat+=("$(mibs "$BYTES" "$SECS")"); }
  p4_add() {
    amount "$STORE_S3" "$COLD_CACHE" "$MF"; flush
    seqread "$FILE_M"; aunmount; afrss+=("$HWM_KB")
    [ "$BYTES" = "$BIG_BYTES" ] || die "read $BYTES bytes through the mount"
    add+=("$(mibs "$BIG_BYTES" "$SECS")")
  }
  p4_ldd() { flush; seqread "$SRC_BIG/big.bin"; ldd+=("$(mibs "$BIG_BYTES" "$SECS")"); }
  p4_afio() {
    amount "$STORE_S3" "$COLD_CACHE" "$MF"; flush
    afio+=("$(fio_seq "$FILE_M" "$W/fio-seq-mount.json")"); aunmount; afrss+=("$HWM_KB")
  }
  p4_lfio() { flush; lfio+=("$(fio_seq "$SRC_BIG/big.bin" "$W/fio-seq-local.json")"); }
  for r in $(seq "$RUNS"); do
    pair "$r" p4_acat p4_lcat
    pair "$r" p4_add p4_ldd
    pair "$r" p4_afio p4_lfio
    log "  run $r: cat: assetfs ${acat[-1]}, local ${lcat[-1]}; dd: assetfs ${add[-1]}, local ${ldd[-1]}; fio 4 jobs: assetfs ${afio[-1]}, local ${lfio[-1]} MiB/s (${afget[-1]} GETs)"
  done
  # mountpoint-s3 re-reading from its own disk cache: it clears the cache when it mounts, so this is the same mount.
  local mpw=() mpcold
  omount mp "$W/mnt/mp" "$PLAIN" big.bin "$W/cache-mp"; flush
  seqread "$W/mnt/mp/big.bin"; mpcold=$(mibs "$BYTES" "$SECS")
  for r in $(seq "$RUNS"); do flush; catread "$W/mnt/mp/big.bin"; mpw+=("$(mibs "$BYTES" "$SECS")"); done
  ounmount; rm -rf "$W/cache-mp"
  log "  mountpoint-s3 with --cache: cold $mpcold MiB/s, then from its cache: ${mpw[*]} MiB/s"
  local a l lf ratio rss
  rss="$(mib_of_kb "$(max "${afrss[@]}")") MiB"
  a=$(median "${acat[@]}"); l=$(median "${lcat[@]}"); lf=$(median "${lfio[@]}"); ratio=$(calc '%.2f' "$a / $l")
  row " 4a " " warm sequential read, ${BIG_MIB} MiB, one reader (\`cat\`), cache full, page cache dropped, fresh mount " " **$a MiB/s** (runs: $(runs_list "${acat[@]}")) " \
    " local file, \`cat\`, page cache dropped: $l MiB/s (runs: $(runs_list "${lcat[@]}")) " " **${ratio}x** ($(run_ratios acat lcat)) " " $(goal '>=' 1.0 "$ratio") " " $rss "
  ratio=$(calc '%.2f' "$a / $lf")
  row " 4b " " (same assetfs \`cat\`) " " $a MiB/s " " local file, fio sequential 1 MiB blocks, 4 jobs (each its own quarter), psync, page cache dropped: $lf MiB/s (runs: $(runs_list "${lfio[@]}")) " \
    " **${ratio}x** ($(run_ratios acat lfio)) " " $(goal '>=' 0.9 "$ratio") " " (above) "
  row " 4c " " (context) fio sequential 1 MiB blocks, 4 jobs, through the mount (fresh mount, page cache dropped) " " $(median "${afio[@]}") MiB/s (runs: $(runs_list "${afio[@]}")) " \
    " local: $lf MiB/s " " $(calc '%.2f' "$(median "${afio[@]}") / $lf")x " " - " " (above) "
  row " 4d " " (context; row 2 of the first runs) warm sequential read with \`dd bs=1M\` " " $(median "${add[@]}") MiB/s (runs: $(runs_list "${add[@]}")) " \
    " local file, dd bs=1M: $(median "${ldd[@]}") MiB/s (runs: $(runs_list "${ldd[@]}")) " " $(calc '%.2f' "$(median "${add[@]}") / $(median "${ldd[@]}")")x " " - " " (above) "
  row " 4e " " (context) mountpoint-s3 with \`--cache\` re-reading the plain object from its disk cache (\`cat\`, page cache dropped, same mount: it clears its cache at mount) " " $a MiB/s " \
    " $(median "${mpw[@]}") MiB/s (runs: $(runs_list "${mpw[@]}"); its cold read that filled the cache: $mpcold MiB/s) = $(calc '%.2f' "$(median "${mpw[@]}") / $l")x local cat " " $(calc '%.2f' "$a / $(median "${mpw[@]}")")x " " - " " - "
  note "- Part 4: the assetfs cache is the cache of the last cold run of part 1, completed by \`cache prefetch\` before timing (${R[warm_prefetched]}); GetObject requests during the warm cat reads: ${afget[*]}; mount daemon during the cat reads: $(printf '%s; ' "${afio_io[@]}")fio: \`--rw=read --bs=1M --ioengine=psync --direct=0 --numjobs=4 --size=$((BIG_MIB / 4))M --offset_increment=$((BIG_MIB / 4))M --group_reporting\` (aggregate bandwidth). Each of cat, dd and fio gets its own fresh mount."
}

# ------------------------------------------------------------------------------------------------------------
fio_rand() {  # fio_rand FILE JOBS OUT.json: prints IOPS
  fio --name=rand --filename="$1" --readonly --rw=randread --bs=4k --direct=0 --size="${BIG_MIB}M" \
    --ioengine=psync --runtime="$FIO_S" --time_based --numjobs="$2" --group_reporting --output-format=json >"$3" 2>>"$W/logs/fio.err"
  jq -r '.jobs[0].read.iops | floor' "$3"
}
part5() {
  ensure_warm
  log "part 5: 4 KiB random reads (${FIO_S} s each)"
  local jobs a l rss c0 io p99a p99l ratio
  for jobs in 1 8; do
    amount "$STORE_S3" "$COLD_CACHE" "$MF"; flush; c0=$(snap "$MNT_PID")
    a=$(fio_rand "$FILE_M" "$jobs" "$W/fio-mount-$jobs.json")
    io=$(snapdiff "$c0" "$(snap "$MNT_PID")")
    aunmount; rss=$HWM_KB
    flush; l=$(fio_rand "$SRC_BIG/big.bin" "$jobs" "$W/fio-local-$jobs.json")
    log "  $jobs job(s): assetfs $a IOPS (daemon $io), local $l IOPS"
    p99a=$(jq -r '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' "$W/fio-mount-$jobs.json")
    p99l=$(jq -r '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' "$W/fio-local-$jobs.json")
    ratio=$(calc '%.2f' "$a / $l")
    row " 5$( [ "$jobs" = 1 ] && echo a || echo b) " " 4 KiB random reads, warm cache (fio randread psync, $jobs job(s), ${FIO_S} s, page cache dropped before, fresh mount) " " **$a IOPS** (p99 ${p99a} us) " \
      " local file: $l IOPS (p99 ${p99l} us) " " **${ratio}x** " " $(goal '>=' 0.5 "$ratio") " " $(mib_of_kb "$rss") MiB "
    note "- Part 5, $jobs job(s): fio did $(jq -r '.jobs[0].read.total_ios' "$W/fio-mount-$jobs.json") reads ($(jq -r '.jobs[0].read.io_bytes / 1048576 | floor' "$W/fio-mount-$jobs.json") MiB) through the mount; the mount daemon meanwhile: $io."
  done
  note "- Part 5: one fio run per side and job count (\`--rw=randread --bs=4k --direct=0 --size=${BIG_MIB}M --runtime=$FIO_S --time_based --ioengine=psync --numjobs=N --group_reporting\`). Not a pure cache benchmark: with \`FOPEN_KEEP_CACHE\` (and on the local file) a 4 KiB block read once stays in the page cache, and kernel readahead pulls neighbours in, so as the run goes on more and more reads are page-cache hits on both sides."
}

# ------------------------------------------------------------------------------------------------------------
part6() {
  setup_s3
  log "part 6: time to first byte"
  local r af=() live=() raw=() rc=() sf=() mp=() rss=() kind
  for r in $(seq "$TTFB_RUNS"); do
    rm -rf "$W/cache-ttfb"
    amount "$STORE_S3" "$W/cache-ttfb" "$MF"; live+=("$LIVE_S")
    flush
    af+=("$("$PY" "$TOOLS" ttfb "$FILE_M" | jq -r '.seconds * 1000')")
    aunmount; rss+=("$HWM_KB")
    flush
    raw+=("$("$PY" "$TOOLS" ttfb-get "$BUCKET" "$PLAIN/big.bin" | jq -r '.seconds * 1000')")
    for kind in rclone s3fs mp; do
      omount "$kind" "$W/mnt/$kind" "$PLAIN" big.bin; flush
      local v; v=$("$PY" "$TOOLS" ttfb "$W/mnt/$kind/big.bin" | jq -r '.seconds * 1000'); ounmount
      case "$kind" in rclone) rc+=("$v") ;; s3fs) sf+=("$v") ;; mp) mp+=("$v") ;; esac
    done
    echo "[bench-mount $(date +%T)]   run $r: assetfs ${af[-1]} ms (mount live after ${live[-1]} s), raw GET ${raw[-1]} ms, rclone ${rc[-1]} ms, s3fs ${sf[-1]} ms, mountpoint-s3 ${mp[-1]} ms" | sed -E 's/([0-9]+\.[0-9])[0-9]+ ms/\1 ms/g' >&2
  done
  rm -rf "$W/cache-ttfb"
  local a m_raw f='%.1f' ratio
  a=$(calc "$f" "$(median "${af[@]}")"); m_raw=$(calc "$f" "$(median "${raw[@]}")")
  ratio=$(calc '%.2f' "$a / $m_raw")
  row " 6 " " time to first byte: open + first 4 KiB read of the ${BIG_MIB} MiB file, fresh live mount, empty cache (lower is better) " \
    " **$a ms** median, min $(calc "$f" "$(min "${af[@]}")") ms (runs: $(fmt_runs "$f" "${af[@]}")) " \
    " raw GET of bytes 0-4095 (boto3, fresh client): $m_raw ms (runs: $(fmt_runs "$f" "${raw[@]}")); rclone: $(calc "$f" "$(median "${rc[@]}")") ms (runs: $(fmt_runs "$f" "${rc[@]}")); s3fs: $(calc "$f" "$(median "${sf[@]}")") ms (runs: $(fmt_runs "$f" "${sf[@]}")); mountpoint-s3: $(calc "$f" "$(median "${mp[@]}")") ms (runs: $(fmt_runs "$f" "${mp[@]}")) " \
    " **${ratio}x** raw GET (min/min: $(calc '%.2f' "$(min "${af[@]}") / $(min "${raw[@]}")")x); $(calc '%.2f' "$a / $(median "${rc[@]}")")x rclone; $(calc '%.2f' "$a / $(median "${sf[@]}")")x s3fs; $(calc '%.2f' "$a / $(median "${mp[@]}")")x mountpoint-s3 " \
    " $(goal '<=' 1.5 "$ratio") " " $(mib_of_kb "$(max "${rss[@]}")") MiB "
  note "- Part 6: medians of $TTFB_RUNS runs; timed inside Python from \`os.open\` to \`os.read(fd, 4096)\` returning, on a mount that is already live (kernel caches dropped after mounting, so the path lookup is included). assetfs \`mount --foreground\` took $(median "${live[@]}") s (median) from launch until the mount appeared in the mount table (it lists the store before going live)."
}

# ------------------------------------------------------------------------------------------------------------
STORE_F="file://$W/fstore"
timed_cmd() {  # timed_cmd CMD...: sets SECS and OUT (stdout)
  local t0 t1
  t0=$(now); OUT=$("$@"); t1=$(now); SECS=$(secs "$t0" "$t1")
}
count_files() { find "$1" -type f | wc -l; }
du_s() { du -s "$1" | cut -f1; }
ls_lr() { ls -lR "$1" | wc -l; }

part7() {
  log "part 7: ${SMALL_DIRS} x ${SMALL_PER_DIR} tiny files"
  local n=$((SMALL_DIRS * SMALL_PER_DIR)) src="$W/src-small" mnt="$W/mnt/f" r
  "$PY" "$TOOLS" tree "$src" "$SMALL_DIRS" "$SMALL_PER_DIR" 1 >"$W/tree-small.json"
  ainit "$STORE_F"; flush
  timed_cmd "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push features/small "$src"
  R[push_small_s]=$SECS
  log "  push of $n files: ${SECS} s"
  local fa=() fl=() da=() dl=() la=() ll=() rss=() dua dul lsa lsl
  local ver="$mnt/features/small@1"
  for r in $(seq "$RUNS"); do
    rm -rf "$W/cache-f"; amount "$STORE_F" "$W/cache-f" "$mnt"; flush
    timed_cmd count_files "$ver"; fa+=("$SECS"); [ "$OUT" = "$n" ] || die "find saw $OUT files through the mount, expected $n"
    aunmount; rss+=("$HWM_KB")
    rm -rf "$W/cache-f"; amount "$STORE_F" "$W/cache-f" "$mnt"; flush
    timed_cmd du_s "$ver"; da+=("$SECS"); dua=$OUT
    aunmount; rss+=("$HWM_KB")
    rm -rf "$W/cache-f"; amount "$STORE_F" "$W/cache-f" "$mnt"; flush
    timed_cmd ls_lr "$ver"; la+=("$SECS"); lsa=$OUT
    aunmount; rss+=("$HWM_KB")
    flush; timed_cmd count_files "$src"; fl+=("$SECS"); [ "$OUT" = "$n" ] || die "find saw $OUT local files"
    flush; timed_cmd du_s "$src"; dl+=("$SECS"); dul=$OUT
    flush; timed_cmd ls_lr "$src"; ll+=("$SECS"); lsl=$OUT
    [ "$lsa" = "$lsl" ] || die "ls -lR printed $lsa lines through the mount, $lsl locally"
    log "  run $r: find: assetfs ${fa[-1]} s, local ${fl[-1]} s; du -s: assetfs ${da[-1]} s, local ${dl[-1]} s; ls -lR: assetfs ${la[-1]} s, local ${ll[-1]} s"
  done
  rm -rf "$W/cache-f" "$W/cache-fpush"
  local a l ratio
  a=$(median "${fa[@]}"); l=$(median "${fl[@]}"); ratio=$(calc '%.2f' "$a / $l")
  row " 7a " " \`find V -type f | wc -l\`, $n-file version (${SMALL_DIRS} dirs x ${SMALL_PER_DIR} files of 1-100 B), file:// store, fresh mount + empty cache (lower is better) " \
    " **$a s** (runs: $(runs_list "${fa[@]}")) " " same tree on local disk: $l s (runs: $(runs_list "${fl[@]}")) " " **${ratio}x** " " $(goal '<=' 1.5 "$ratio") " " $(mib_of_kb "$(max "${rss[@]}")") MiB (7a-7c) "
  a=$(median "${da[@]}"); l=$(median "${dl[@]}"); ratio=$(calc '%.2f' "$a / $l")
  row " 7b " " \`du -s V\`, same version, fresh mount + empty cache (lower is better) " \
    " **$a s** (runs: $(runs_list "${da[@]}")), reports $dua KiB " " local: $l s (runs: $(runs_list "${dl[@]}")), reports $dul KiB " " **${ratio}x** " " $(goal '<=' 1.5 "$ratio") " " (above) "
  a=$(median "${la[@]}"); l=$(median "${ll[@]}"); ratio=$(calc '%.2f' "$a / $l")
  row " 7c " " \`ls -lR V >/dev/null\`, same version, fresh mount + empty cache (lower is better) " \
    " **$a s** (runs: $(runs_list "${la[@]}")) " " local: $l s (runs: $(runs_list "${ll[@]}")) " " **${ratio}x** " " $(goal '<=' 1.5 "$ratio") " " (above) "
  note "- Part 7: tree from \`mount-tools.py tree\` ($(jq -r '"\(.files) files, \(.bytes) bytes"' "$W/tree-small.json")), pushed to \`file://\$W/fstore\` in ${R[push_small_s]} s. Each timed command gets its own fresh mount with an empty cache directory (so it includes loading the manifest from the store) and dropped kernel caches; the local runs drop caches too. du sizes differ because the mount reports st_blocks = ceil(size/512) while ext4 allocates 4 KiB blocks. \`ls -lR\` output is piped to \`wc -l\` (same line count on both sides checked)."
}

# ------------------------------------------------------------------------------------------------------------
part8() {
  log "part 8: peak RSS streaming ${HUGE_MIB} MiB, listing a large tree, opening many versions"
  local src="$W/src-huge" mnt="$W/mnt/f"
  mkdir -p "$src"
  head -c "$((HUGE_MIB * 1048576))" /dev/urandom >"$src/huge.bin"
  ainit "$STORE_F"
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
  row " 8a " " peak RSS of the mount daemon streaming a ${HUGE_MIB} MiB file, cold (file:// store, empty cache, dd bs=1M) " \
    " **VmHWM $(mib_of_kb "$huge_rss") MiB** ($huge_rate MiB/s, 1 run) " " - " " - " " $(goal '<=' 256 "$(mib_of_kb "$huge_rss")" MiB) " " $(mib_of_kb "$huge_rss") MiB "

  # The large tree: push the full tree if the push fits in MANY_LIMIT (extrapolated from part 7's push), else fewer dirs.
  local dirs=$MANY_DIRS per=$MANY_PER_DIR why=""
  if [ -n "${R[push_small_s]:-}" ]; then
    local est
    est=$(calc '%.0f' "${R[push_small_s]} * $dirs * $per / ($SMALL_DIRS * $SMALL_PER_DIR)")
    if [ "$est" -gt "$MANY_LIMIT" ]; then
      why="the full push was estimated at ${est} s from part 7's push (limit $MANY_LIMIT s)"
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
  rm -rf "$W/cache-many" "$tsrc"
  row " 8b " " peak RSS with a $n-file version mounted and fully listed (\`find V -type f | wc -l\`, fresh mount, empty cache) " \
    " **VmHWM $(mib_of_kb "$many_rss") MiB**; find took $find_a s (1 run) " " local find of the same tree: $find_l s " " find $(calc '%.2f' "$find_a / $find_l")x (lower is better) " \
    " $(goal '<=' 256 "$(mib_of_kb "$many_rss")" MiB) " " $(mib_of_kb "$many_rss") MiB "
  if [ -n "$why" ]; then
    note "- **Part 8b used $n files, not $((MANY_DIRS * MANY_PER_DIR)): $why.**"
  fi
  note "- Part 8a/8b: the ${HUGE_MIB} MiB file and the $n-file tree ($dirs dirs x $per files of 1-100 B; push took $push_s s) are in a \`file://\` store; VmHWM is read from /proc/<daemon pid>/status just before unmounting."

  # Many large versions, one after another, on one mount.
  local vsrc="$W/src-vers" vdirs=$(( (VERSION_FILES + 999) / 1000 )) v pushes=() hwm=() rss=() finds=()
  "$PY" "$TOOLS" tree "$vsrc" "$vdirs" $((VERSION_FILES / vdirs)) 3 >/dev/null
  local vn=$(( vdirs * (VERSION_FILES / vdirs) + 1 ))
  log "  pushing $VERSIONS versions of $vn files"
  for v in $(seq "$VERSIONS"); do
    # One changed file per version: every version has its own manifest (a shared one would be decoded once).
    echo "version $v" >"$vsrc/version.txt"
    timed_cmd "$BIN" --json --store "$STORE_F" --cache-dir "$W/cache-fpush" push features/vers "$vsrc"
    pushes+=("$SECS")
  done
  rm -rf "$vsrc" "$W/cache-fpush" "$W/cache-vers"
  amount "$STORE_F" "$W/cache-vers" "$mnt"; flush
  for v in $(seq "$VERSIONS"); do
    timed_cmd count_files "$mnt/features/vers@$v"
    [ "$OUT" = "$vn" ] || die "find saw $OUT files in features/vers@$v, expected $vn"
    finds+=("$SECS"); hwm+=("$(mib_of_kb "$(hwm_kb "$MNT_PID")")"); rss+=("$(mib_of_kb "$(rss_kb "$MNT_PID")")")
  done
  aunmount
  rm -rf "$W/cache-vers"
  log "  versions: VmHWM after each find: ${hwm[*]} MiB; VmRSS: ${rss[*]} MiB"
  row " 8c " " peak RSS while $VERSIONS versions of $vn files each are opened one after another on one mount (\`find V@i -type f\` each; fresh mount, empty cache) " \
    " **VmHWM after the last: ${hwm[-1]} MiB**; VmHWM after each: ${hwm[*]} MiB; VmRSS after each: ${rss[*]} MiB " " one version: VmHWM ${hwm[0]} MiB " \
    " last/first $(calc '%.2f' "${hwm[-1]} / ${hwm[0]}")x " " bounded; $(goal '<=' 256 "${hwm[-1]}" MiB) " " ${hwm[-1]} MiB "
  note "- Part 8c: $VERSIONS versions of features/vers (${vdirs} dirs of 1-100 B files plus a version.txt that differs per version, so each version has its own manifest) pushed to the \`file://\` store (push times: ${pushes[*]} s); find times on the mount: ${finds[*]} s. 'bounded' means the peak stops growing with the number of versions opened; the 256 MiB line is goal 8's bound for one 1,000,000-file version."
}

# ------------------------------------------------------------------------------------------------------------
part9() {
  log "part 9: file:// store on the same disk, cold read"
  if [ ! -f "$SRC_BIG/big.bin" ]; then mkdir -p "$SRC_BIG"; head -c "$BIG_BYTES" /dev/urandom >"$SRC_BIG/big.bin"; fi
  local store="$W/fstore9" mnt="$W/mnt/f9" r a=() p=() cpus=() rss=() c0 packs=() t=() tcpus=()
  ainit "file://$store"
  timed_cmd "$BIN" --json --store "file://$store" --cache-dir "$W/cache-f9push" push models/big "$SRC_BIG"
  local push_s=$SECS
  rm -rf "$W/cache-f9push"
  # Pack files in the order they were written (= the order of the file's bytes, up to the 4 writes in flight).
  mapfile -t packs < <(ls -1tr -d "$store"/packs/*)
  [ "${#packs[@]}" -gt 0 ] || die "no pack files under $store/packs"
  p9_mount() {
    rm -rf "$W/cache-f9"; amount "file://$store" "$W/cache-f9" "$mnt"; flush; c0=$(snap "$MNT_PID")
    catread "$mnt/models/big@1/big.bin"; cpus+=("$(snapcpu "$c0" "$(snap "$MNT_PID")")")
    aunmount; rss+=("$HWM_KB")
    [ "$BYTES" = "$BIG_BYTES" ] || die "part 9 read $BYTES bytes"
    a+=("$(mibs "$BYTES" "$SECS")")
  }
  p9_packs() { flush; catread "${packs[@]}"; p+=("$(mibs "$BYTES" "$SECS")"); }
  # Row 9b: the same store copied to tmpfs (its cache there too), so no read waits on a disk: how fast the
  # mount's own path (hashing, FUSE, the reader's copy) goes on this machine.
  SHM9=$(mktemp -d /dev/shm/assetfs-bench9.XXXXXX)
  cp -r "$store" "$SHM9/store"
  p9_tmpfs() {
    rm -rf "$SHM9/cache"; amount "file://$SHM9/store" "$SHM9/cache" "$mnt"; flush; c0=$(snap "$MNT_PID")
    catread "$mnt/models/big@1/big.bin"; tcpus+=("$(snapcpu "$c0" "$(snap "$MNT_PID")")")
    aunmount
    [ "$BYTES" = "$BIG_BYTES" ] || die "part 9 (tmpfs) read $BYTES bytes"
    t+=("$(mibs "$BYTES" "$SECS")")
  }
  for r in $(seq "$RUNS"); do
    pair "$r" p9_mount p9_packs
    p9_tmpfs
    log "  run $r: assetfs cold ${a[-1]} MiB/s, cat of the ${#packs[@]} packs ${p[-1]} MiB/s; assetfs cold from tmpfs ${t[-1]} MiB/s"
  done
  rm -rf "$W/cache-f9" "$store" "$SHM9"; SHM9=
  local m l ratio mt
  m=$(median "${a[@]}"); l=$(median "${p[@]}"); ratio=$(calc '%.2f' "$m / $l"); mt=$(median "${t[@]}")
  row " 9 " " cold sequential read (\`cat\`), ${BIG_MIB} MiB, \`file://\` store on the same disk, empty cache, fresh mount " " **$m MiB/s** (runs: $(runs_list "${a[@]}")); daemon $(calc '%.2f' "$(median "${cpus[@]}") * 1024 / $BIG_MIB") CPU-s/GiB " \
    " \`cat\` of the version's ${#packs[@]} pack files in write order, page cache dropped: $l MiB/s (runs: $(runs_list "${p[@]}")) " " **${ratio}x** ($(run_ratios a p)) " " $(goal '>=' 0.9 "$ratio") " " $(mib_of_kb "$(max "${rss[@]}")") MiB "
  row " 9b " " (diagnostic) the same cold read from a copy of the store on tmpfs (\`/dev/shm\`, its cache there too): no disk under the mount, so this is how fast its own path (BLAKE3, the FUSE reply, the reader's copy) goes here " \
    " $mt MiB/s (runs: $(runs_list "${t[@]}")); daemon $(calc '%.2f' "$(median "${tcpus[@]}") * 1024 / $BIG_MIB") CPU-s/GiB " " \`cat\` of the packs on disk (row 9): $l MiB/s " " $(calc '%.2f' "$mt / $l")x " " - ($(if [ "$(calc '%d' "($mt / $l < 0.9) ? 1 : 0")" = 1 ]; then echo "under 0.9x: goal 9 needs less CPU per byte, not a faster disk path"; else echo "0.9x or more: the mount's own path allows goal 9 here; the gap of row 9 is in how it reads the disk"; fi)) " " - "
  note "- Part 9: the ${BIG_MIB} MiB file of part 1 pushed to a fresh \`file://\` store in $push_s s; the cold read also writes the chunks' block checksums (not their bytes) to the chunk cache on the same disk."
}

# ------------------------------------------------------------------------------------------------------------
for p in 1 2 3 4 5 6 7 8 9; do
  if has_part "$p"; then "part$p"; fi
done

TOTAL=$(secs "$STARTED" "$(now)")
note "- Total run time: $(calc '%.0f' "$TOTAL / 60") min (parts $PARTS). Ratios are assetfs / baseline: above 1 is better for throughput, IOPS and files/s, below 1 is better for times, bytes and memory. The goal column is issue 8's target for that row and whether this run met it."
OUTMD="$ROOT/target/bench-mount.md"
mkdir -p "$ROOT/target"
{
  echo "| # | measurement | assetfs | baseline (same run) | ratio | goal (issue 8): met? | assetfs daemon peak RSS (VmHWM) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  cat "$ROWS"
  echo
  cat "$NOTES"
} | tee "$OUTMD"
log "table saved to $OUTMD"
