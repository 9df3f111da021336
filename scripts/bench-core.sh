#!/usr/bin/env bash
# Core benchmarks of assetfs, in one run (about 10-20 minutes on 2 cores). See docs/benchmarks.md.
#
#   cargo build --release && scripts/bench-core.sh
#
# Prints a markdown results table to stdout and writes it to target/bench-core.md; progress goes to stderr.
#   1. push of one large random file into a file:// store, as a ratio to `cp` of the same file (median of runs)
#   2. re-push after (a) 1% of the bytes overwritten in place, (b) 1 MiB inserted in the middle: new bytes stored
#   3. push and get of many small files against a local Garage S3 server, vs boto3 (one request per file),
#      with the S3 requests counted by Garage's own metrics (cross-checked against Garage's request log)
#   4. manifest load (`assetfs ls REF`) of a 1,000,000-file version: wall time, peak RSS, manifest size
#   5. re-push of an unchanged tree of BENCH_REPUSH_FILES x BENCH_REPUSH_FILE_MIB (10 GiB) into a file:// store
#      (issue 9 goal: under 1 s), vs the first push of the same tree and a stat walk of it
#   6. push of BENCH_TINY_DIRS x BENCH_TINY_PER_DIR (100,000) tiny files into an empty file:// store, in files/s,
#      vs `cp -a` of the same tree on the same disk (+ sync)
#   7. store lifecycle (issue 9 items 3, 4): a store of 1,000 versions holding ~1M chunks, every 10th version deleted
#      (~10% of the chunk bytes dead): (a) gc: time, RSS, bytes freed against bytes dead; (b) push of one new file
#      into it: time, RSS, vs the same push into an empty store; (c) on Garage S3: the requests of that gc and of
#      that push with an empty node cache (Garage's request counters)
#
# Knobs (environment, defaults in brackets):
#   BENCH_PARTS [1234567]      which parts to run (part 2 builds on part 1's store and runs part 1's setup if needed)
#   BENCH_BIG_MIB [1024]       size of the large file (parts 1, 2)
#   BENCH_RUNS [3]             timed repetitions of part 1 (the median is reported)
#   BENCH_EDIT_RUNS [16]       part 2a: number of evenly spread runs overwritten with random bytes ...
#   BENCH_EDIT_PCT [1]         ... together this percentage of the file
#   BENCH_INSERT_KIB [1024]    part 2b: random bytes inserted at the middle of the file
#   BENCH_SMALL_FILES [20000]  part 3: file count; sizes uniform in [BENCH_SMALL_MIN_KIB, BENCH_SMALL_MAX_KIB] ...
#   BENCH_SMALL_MIN_KIB [4] BENCH_SMALL_MAX_KIB [64]
#   BENCH_S3_THREADS [16]      part 3: boto3 thread pool size
#   BENCH_S3_RUNS [2]          part 3: repetitions (each into a fresh prefix; medians reported)
#   BENCH_MANY_DIRS [1000] BENCH_MANY_PER_DIR [1000]   part 4: tree of tiny files
#   BENCH_MANY_PUSH_LIMIT_S [600]   part 4: if pushing the full tree takes longer, push BENCH_MANY_FALLBACK_DIRS
#   BENCH_MANY_FALLBACK_DIRS [200]  of its directories instead and say so (extrapolation is labelled)
#   BENCH_REPUSH_FILES [100] BENCH_REPUSH_FILE_MIB [100]   part 5 tree (random content)
#   BENCH_TINY_DIRS [100] BENCH_TINY_PER_DIR [1000]         part 6 tree (16-40 B files, unique content)
#   BENCH_LIFE_ASSETS [10] BENCH_LIFE_VERSIONS [100] BENCH_LIFE_NEW [1000] BENCH_LIFE_CARRY [100]   part 7 store:
#                              assets x versions, each with NEW tiny files of its own and CARRY from its predecessor
#   BENCH_LIFE_GC_EVERY [50]   part 7 setup: gc every N pushes (as a cron job would)
#   BENCH_LIFE_DELETE_EVERY [10]  part 7: every N-th version of each asset is deleted before the measured gc
#   BENCH_LIFE_STORE []        part 7: a directory to keep the built store in and reuse on later runs (setup: ~5 min)
#   BENCH_DROP_CACHES [auto]   1: `sync; echo 3 > /proc/sys/vm/drop_caches` before every timed step (auto: if
#                              writable); 0: only `sync` (page cache warm)
#   BENCH_GARAGE_PORT [39400]  first of the ports Garage uses (PORT, PORT+1 rpc, PORT+3 admin/metrics)
#   BENCH_GARAGE_WAIT_S [1800] wait this long for a running `cargo install garage` before skipping part 3
#   BENCH_TMP [/tmp]           where the work directory goes (needs ~4 GiB and 1M inodes)
#   BENCH_WAIT_IDLE_S [0]      wait up to this long for the 1-minute load average to fall below 0.5 before starting
#   BENCH_KEEP [0]             1: keep the work directory
#   ASSETFS_BIN [target/release/assetfs]   BENCH_PYTHON [.venv/bin/python, needs boto3]
# shellcheck disable=SC2016  # sh -c scripts take their arguments as $1.. on purpose
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
PY=${BENCH_PYTHON:-$ROOT/.venv/bin/python}
GEN=(python3 "$ROOT/scripts/bench/gen.py")
S3PY="$ROOT/scripts/bench/s3_baseline.py"
GARAGE_UP=${BENCH_GARAGE_UP:-/work/shared/bench/garage-up.sh}

PARTS=${BENCH_PARTS:-1234567}
BIG_MIB=${BENCH_BIG_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
EDIT_RUNS=${BENCH_EDIT_RUNS:-16}
EDIT_PCT=${BENCH_EDIT_PCT:-1}
INSERT_KIB=${BENCH_INSERT_KIB:-1024}
SMALL_FILES=${BENCH_SMALL_FILES:-20000}
SMALL_MIN_KIB=${BENCH_SMALL_MIN_KIB:-4}
SMALL_MAX_KIB=${BENCH_SMALL_MAX_KIB:-64}
S3_THREADS=${BENCH_S3_THREADS:-16}
S3_RUNS=${BENCH_S3_RUNS:-2}
MANY_DIRS=${BENCH_MANY_DIRS:-1000}
MANY_PER_DIR=${BENCH_MANY_PER_DIR:-1000}
MANY_LIMIT=${BENCH_MANY_PUSH_LIMIT_S:-600}
MANY_FALLBACK_DIRS=${BENCH_MANY_FALLBACK_DIRS:-200}
REPUSH_FILES=${BENCH_REPUSH_FILES:-100}
REPUSH_FILE_MIB=${BENCH_REPUSH_FILE_MIB:-100}
TINY_DIRS=${BENCH_TINY_DIRS:-100}
TINY_PER_DIR=${BENCH_TINY_PER_DIR:-1000}
LIFE_ASSETS=${BENCH_LIFE_ASSETS:-10}
LIFE_VERSIONS=${BENCH_LIFE_VERSIONS:-100}
LIFE_NEW=${BENCH_LIFE_NEW:-1000}
LIFE_CARRY=${BENCH_LIFE_CARRY:-100}
LIFE_GC_EVERY=${BENCH_LIFE_GC_EVERY:-50}
LIFE_DELETE_EVERY=${BENCH_LIFE_DELETE_EVERY:-10}
LIFE_STORE=${BENCH_LIFE_STORE:-}
GARAGE_PORT=${BENCH_GARAGE_PORT:-39400}
GARAGE_WAIT=${BENCH_GARAGE_WAIT_S:-1800}
KEEP=${BENCH_KEEP:-0}
IDLE_WAIT=${BENCH_WAIT_IDLE_S:-0}
DROP=${BENCH_DROP_CACHES:-auto}

log() { echo "[bench $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: run cargo build --release first"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
command -v jq >/dev/null || die "jq missing (apt-get install jq)"
if [ "$DROP" = auto ]; then
  if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then DROP=1; else DROP=0; fi
fi

W=$(mktemp -d "${BENCH_TMP:-/tmp}/assetfs-bench.XXXXXX")
GARAGE_PID=
GARAGE_TICKS=0
# Garage runs detached (garage-up.sh backgrounds it), so it is not our child: kill it by PID and poll until gone.
stop_garage() {
  [ -n "$GARAGE_PID" ] || return 0
  kill "$GARAGE_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$GARAGE_PID" 2>/dev/null || break; sleep 0.2; done
  GARAGE_PID=
}
cleanup() {
  local rc=$?
  stop_garage
  if [ "$KEEP" = 1 ]; then log "work directory kept: $W"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a private copy: a concurrent `cargo build --release` must not swap the binary halfway through.
BIN_SRC=$BIN
BIN_DESC="$("$BIN" --version), built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ); checkout at start: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ', src/ modified')"
cp "$BIN" "$W/assetfs"
BIN="$W/assetfs"

ROWS="$W/rows.md"    # the results table, one markdown row per measurement
NOTES="$W/notes.md"  # lines printed under the table
: >"$ROWS"
: >"$NOTES"
# Rows also go to the log as they come, so a run that stops early keeps what it measured.
row() { local IFS='|'; echo "| $* |" >>"$ROWS"; log "row: | $* |"; }
note() { echo "$*" >>"$NOTES"; }

# sync, and drop the page cache when enabled, so every timed step starts from the same state.
flush() {
  sync
  if [ "$DROP" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# timed CMD...: runs CMD, sets WALL (seconds), CPU (user + system seconds) and RSS (max resident KiB), all of
# CMD and its children. Returns CMD's status.
timed() {
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%M %U %S' -o "$W/.rss" "$@" || rc=$?
  t1=$(date +%s%N)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  RSS=$(tail -n 1 "$W/.rss" | cut -d' ' -f1)
  CPU=$(tail -n 1 "$W/.rss" | awk '{ printf "%.2f", $2 + $3 }')
  return "$rc"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }  # calc FORMAT EXPR
mibs() { calc '%.0f' "$1 / 1048576 / $2"; }     # mibs BYTES SECONDS -> MiB/s
hsize() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
du_b() { du -sb "$1" | cut -f1; }
af() { "$BIN" --json "$@"; }   # assetfs, machine-readable output
# ainit URL: creates the store and its marker (`push` refuses a store without one); not timed.
ainit() {
  case "$1" in
    s3://*) ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --store "$1" init >/dev/null ;;
    *) "$BIN" --store "$1" init >/dev/null ;;
  esac || die "assetfs init of $1 failed"
}

log "work directory $W; drop caches: $DROP"
note "- Work directory under ${BENCH_TMP:-/tmp} ($(df -h --output=source,fstype "$W" | tail -n 1 | tr -s ' ')); page cache: $( [ "$DROP" = 1 ] && echo 'sync + drop_caches before every timed step (cold reads)' || echo 'sync before every timed step, cache NOT dropped (warm reads)')."

BIG="$W/big"            # one-file directory pushed in parts 1 and 2
STORE1="$W/store1"      # file:// store of parts 1 and 2
BIG_BYTES=$((BIG_MIB * 1048576))

# ---------------------------------------------------------------------------------------------------------------
part1() {
  log "part 1: ${BIG_MIB} MiB random file"
  mkdir -p "$BIG"
  head -c "$BIG_BYTES" /dev/urandom >"$BIG/data.bin"
  local cp_t=() push_t=() cp_c=() push_c=() push_rss=0 r
  for r in $(seq "$RUNS"); do
    rm -f "$W/cp.bin"; flush
    timed sh -c 'cp "$1" "$2" && sync' sh "$BIG/data.bin" "$W/cp.bin"
    cp_t+=("$WALL"); cp_c+=("$CPU")
    rm -rf "$W/cp.bin" "$STORE1" "$W/cache1"; ainit "file://$STORE1"; flush
    timed sh -c '"$1" --json --store "file://$2" --cache-dir "$3" push models/big "$4" >"$5" && sync' \
      sh "$BIN" "$STORE1" "$W/cache1" "$BIG" "$W/push1.json"
    push_t+=("$WALL"); push_c+=("$CPU"); push_rss=$(( RSS > push_rss ? RSS : push_rss ))
    log "  run $r: cp ${cp_t[-1]} s, push ${push_t[-1]} s"
  done
  local cp_m push_m
  cp_m=$(median "${cp_t[@]}"); push_m=$(median "${push_t[@]}")
  row " 1 " " push ${BIG_MIB} MiB random file (1 file) to file:// store " \
    " ${push_m} s = $(mibs "$BIG_BYTES" "$push_m") MiB/s (runs: ${push_t[*]}); CPU $(median "${push_c[@]}") s; max RSS $((push_rss / 1024)) MiB; $(jq -r '"\(.new_chunks) chunks, \(.packs) packs"' "$W/push1.json") " \
    " cp: ${cp_m} s = $(mibs "$BIG_BYTES" "$cp_m") MiB/s (runs: ${cp_t[*]}); CPU $(median "${cp_c[@]}") s " \
    " **$(calc '%.2f' "$cp_m / $push_m")x** cp throughput "
  PART1_DONE=1
}

# ---------------------------------------------------------------------------------------------------------------
# repush LABEL: pushes $BIG again into STORE1 and adds a row for the new bytes.
repush() {
  local label=$1 detail=$2 before after j
  before=$(du_b "$STORE1/packs")
  flush
  timed sh -c '"$1" --json --store "file://$2" --cache-dir "$3" push models/big "$4" >"$5" && sync' \
    sh "$BIN" "$STORE1" "$W/cache1" "$BIG" "$W/repush.json"
  after=$(du_b "$STORE1/packs")
  j="$W/repush.json"
  local nb tb
  nb=$(jq .new_bytes "$j"); tb=$(jq .total_bytes "$j")
  log "  $label: new_bytes $nb of $tb, packs/ grew $((after - before)) bytes, ${WALL} s"
  row " $label " " re-push after $detail " \
    " new_bytes $(commas "$nb") = **$(calc '%.2f' "100 * $nb / $tb")%** of $(commas "$tb"); $(jq -r '"\(.new_chunks) new / \(.reused_chunks) reused chunks, \(.packs) pack(s)"' "$j"); ${WALL} s, CPU ${CPU} s " \
    " du -sb packs/ grew $(commas $((after - before))) B = $(calc '%.2f' "100 * ($after - $before) / $tb")% " \
    " goal < 3% "
}

part2() {
  [ -n "${PART1_DONE:-}" ] || { BENCH_RUNS_SAVED=$RUNS; RUNS=1; part1; RUNS=$BENCH_RUNS_SAVED; }
  log "part 2: re-push after edits"
  local e
  e=$("${GEN[@]}" overwrite "$BIG/data.bin" "$EDIT_RUNS" "$EDIT_PCT")
  repush 2a "$(jq -r '"\(.runs) evenly spread runs x \(.run_len) B overwritten with random bytes (\(.changed_bytes) B changed)"' <<<"$e")"
  e=$("${GEN[@]}" insert "$BIG/data.bin" "$W/ins.bin" "$INSERT_KIB")
  mv "$W/ins.bin" "$BIG/data.bin"
  repush 2b "$(jq -r '"\(.inserted_bytes) random B inserted at offset \(.offset) (the middle)"' <<<"$e")"
  note "- Part 2: versions 2 and 3 of models/big; 2a is measured against v1, 2b against v1+v2 (v3 = v2 with the insertion). new_bytes is assetfs's own count of chunk bytes it stored; the du column is the growth of the store's packs/ directory (packs are raw concatenated chunks)."
  rm -rf "$BIG" "$STORE1" "$W/cache1"
}

# ---------------------------------------------------------------------------------------------------------------
garage_bin() { command -v garage 2>/dev/null || { [ -x "$HOME/.cargo/bin/garage" ] && echo "$HOME/.cargo/bin/garage"; }; }

# s3_counts: Garage's per-endpoint S3 request counters (Prometheus text from the admin API), one "Endpoint N" a line.
s3_counts() {
  curl -fsS "http://127.0.0.1:$((GARAGE_PORT + 3))/metrics" |
    sed -n 's/^api_s3_request_counter{.*api_endpoint="\([A-Za-z0-9]*\)".*} \([0-9.e+]*\)$/\1 \2/p' | sort
}
# s3_diff BEFORE AFTER: "N PutObject + M GetObject ... (T requests)"
s3_diff() {
  awk 'FILENAME == ARGV[1] { b[$1] = $2; next } { d = $2 - b[$1]; if (d > 0) { s = s (s ? " + " : "") d " " $1; t += d } }
       END { printf "%s (%d requests)", (s ? s : "none"), t }' "$1" "$2"
}
# Garage logs every S3 request (INFO, "(key GK...) METHOD /path"): a second, independent count.
log_lines() { grep -cE '\(key [A-Za-z0-9]+\) (GET|PUT|POST|HEAD|DELETE) /' "$W/garage/garage.log" || true; }
garage_cpu() { awk '{ print $14 + $15 }' "/proc/$GARAGE_PID/stat"; }  # utime + stime, clock ticks
TCK=$(getconf CLK_TCK)

# Per-step results of part 3, keyed by step: space-separated lists of wall / client CPU / Garage CPU seconds per
# run, and the last run's request breakdown, log-line count and the max RSS.
declare -A WALLS CPUS GCPUS REQS LOGS MAXRSS
# s3_step KEY CMD...: flush, snapshot Garage's counters and CPU, run CMD timed, record the deltas under KEY.
s3_step() {
  local key=$1 g0 g1 l0 l1; shift
  flush; s3_counts >"$W/m0"; l0=$(log_lines); g0=$(garage_cpu)
  timed "$@" || return 1
  s3_counts >"$W/m1"; l1=$(log_lines); g1=$(garage_cpu)
  printf -v "WALL_$key" %s "$WALL"
  WALLS[$key]+="$WALL "; CPUS[$key]+="$CPU "; GCPUS[$key]+="$(calc '%.2f' "($g1 - $g0) / $TCK") "
  REQS[$key]=$(s3_diff "$W/m0" "$W/m1"); LOGS[$key]=$((l1 - l0))
  MAXRSS[$key]=$(( RSS > ${MAXRSS[$key]:-0} ? RSS : ${MAXRSS[$key]:-0} ))
}

start_garage() {
  local bin waited=0
  bin=$(garage_bin || true)
  while [ -z "$bin" ] && pgrep -f 'cargo install garage' >/dev/null && [ "$waited" -lt "$GARAGE_WAIT" ]; do
    [ $((waited % 60)) = 0 ] && log "waiting for 'cargo install garage' to finish (see /tmp/garage-install.log)"
    sleep 10; waited=$((waited + 10)); bin=$(garage_bin || true)
  done
  [ -n "$bin" ] || return 1
  # Ports PORT, PORT+1 and PORT+3 must be free; move up in steps of 10 until they are.
  GARAGE_PORT=$(python3 - "$GARAGE_PORT" <<'P'
import socket, sys
p = int(sys.argv[1])
def free(q):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", q)); return True
    except OSError:
        return False
    finally:
        s.close()
while not all(free(p + d) for d in (0, 1, 3)):
    p += 10
print(p)
P
)
  local envs
  envs=$(PATH="$(dirname "$bin"):$PATH" env -u RUST_LOG "$GARAGE_UP" "$W/garage" "$GARAGE_PORT") || return 1
  eval "$envs"
  [ -n "$GARAGE_PID" ] || return 1
  for _ in $(seq 50); do s3_counts >/dev/null 2>&1 && break; sleep 0.2; done
  GARAGE_VERSION=$("$bin" --version 2>/dev/null | head -n 1 || echo garage)
  log "garage ($GARAGE_VERSION) pid $GARAGE_PID on 127.0.0.1:$GARAGE_PORT"
}

part3() {
  log "part 3: $SMALL_FILES small files against Garage S3"
  if ! start_garage; then
    row " 3 " " push/get $(commas "$SMALL_FILES") small files via S3 " " NOT RUN: garage binary missing " " " " "
    note "- Part 3 NOT RUN: no garage binary (cargo install garage --locked)."
    return
  fi
  local small="$W/small" info files bytes
  info=$("${GEN[@]}" small "$small" "$SMALL_FILES" "$SMALL_MIN_KIB" "$SMALL_MAX_KIB" 42)
  files=$(jq .files <<<"$info"); bytes=$(jq .bytes <<<"$info")
  echo >&2
  echo "##############################################################################################" >&2
  echo "# NOTE: part 3 runs with ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 because Garage ignores        #" >&2
  echo "# conditional writes (If-None-Match). Never do this against a store you commit to for real.   #" >&2
  echo "##############################################################################################" >&2
  note "- **Part 3 ran with \`ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1\`**: Garage ignores conditional writes, so assetfs's create-if-absent self-check (3 requests + 1 delete per push) is skipped and version claims are not race-safe there. Benchmark-only setting."
  local r
  for r in $(seq "$S3_RUNS"); do
    local url="s3://$BENCH_BUCKET/assetfs-r$r"
    ainit "$url"
    s3_step apush env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$url" --cache-dir "$W/cache3-$r" \
      push models/small "$small" >"$W/push3.json" 2>"$W/push3.err" || { cat "$W/push3.err" >&2; die "assetfs push to Garage failed"; }
    s3_step aget env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$url" \
      get models/small@1 "$W/get-a" >"$W/get3.json" 2>"$W/get3.err" || { cat "$W/get3.err" >&2; die "assetfs get from Garage failed"; }
    diff -r "$small" "$W/get-a" >/dev/null || die "assetfs get: files differ from the source"
    rm -rf "$W/get-a"
    s3_step bup "$PY" "$S3PY" up "$small" "$BENCH_BUCKET" "boto-r$r" "$S3_THREADS" >"$W/up.json" || die "boto3 upload failed"
    s3_step bdown "$PY" "$S3PY" down "$W/get-b" "$BENCH_BUCKET" "boto-r$r" "$S3_THREADS" >"$W/down.json" || die "boto3 download failed"
    diff -r "$small" "$W/get-b" >/dev/null || die "boto3 download: files differ from the source"
    rm -rf "$W/get-b"
    # shellcheck disable=SC2154  # WALL_<step> is set by s3_step through printf -v
    log "  run $r: assetfs push $WALL_apush s, get $WALL_aget s; boto3 up $WALL_bup s, down $WALL_bdown s"
  done
  local desc
  desc="$(commas "$files") files of ${SMALL_MIN_KIB}-${SMALL_MAX_KIB} KiB ($(hsize "$bytes"))"
  # shellcheck disable=SC2086  # the per-step lists are meant to split into words
  {
    local ap ag bu bd
    ap=$(median ${WALLS[apush]}); ag=$(median ${WALLS[aget]}); bu=$(median ${WALLS[bup]}); bd=$(median ${WALLS[bdown]})
    row " 3a " " push $desc to Garage S3 " \
      " ${ap} s = $(mibs "$bytes" "$ap") MiB/s (runs: ${WALLS[apush]% }); CPU: assetfs $(median ${CPUS[apush]}) s + Garage $(median ${GCPUS[apush]}) s; max RSS $((MAXRSS[apush] / 1024)) MiB; **requests: ${REQS[apush]}**; log lines: ${LOGS[apush]}; $(jq -r '"\(.new_chunks) chunks in \(.packs) packs"' "$W/push3.json") " \
      " boto3 put_object x ${S3_THREADS} threads: ${bu} s = $(mibs "$bytes" "$bu") MiB/s (runs: ${WALLS[bup]% }); CPU: python $(median ${CPUS[bup]}) s + Garage $(median ${GCPUS[bup]}) s; requests: ${REQS[bup]}; log lines: ${LOGS[bup]} " \
      " **$(calc '%.1f' "$bu / $ap")x** faster than boto3 (time ratio assetfs/boto3 $(calc '%.3f' "$ap / $bu")) "
    row " 3b " " get the same files from Garage S3 " \
      " ${ag} s = $(mibs "$bytes" "$ag") MiB/s (runs: ${WALLS[aget]% }); CPU: assetfs $(median ${CPUS[aget]}) s + Garage $(median ${GCPUS[aget]}) s; max RSS $((MAXRSS[aget] / 1024)) MiB; **requests: ${REQS[aget]}**; log lines: ${LOGS[aget]} " \
      " boto3 list + get_object x ${S3_THREADS} threads: ${bd} s = $(mibs "$bytes" "$bd") MiB/s (runs: ${WALLS[bdown]% }); CPU: python $(median ${CPUS[bdown]}) s + Garage $(median ${GCPUS[bdown]}) s; requests: ${REQS[bdown]}; log lines: ${LOGS[bdown]} " \
      " **$(calc '%.1f' "$bd / $ag")x** faster than boto3 (time ratio assetfs/boto3 $(calc '%.3f' "$ag / $bd")) "
  }
  note "- Part 3: ${GARAGE_VERSION:-garage} on 127.0.0.1 (single node, lmdb, data on the same disk), $S3_RUNS run(s), median shown. Requests are the delta of Garage's \`api_s3_request_counter\` per endpoint (admin API /metrics) around each command; \"log lines\" counts Garage's INFO request log lines over the same span as a cross-check. Times are whole processes (assetfs: store open, manifest, chunking/verification; boto3: interpreter start and imports, ~0.5 s). CPU: user + system seconds of the client process (/usr/bin/time) and of the Garage server (/proc/PID/stat delta); both share the same 2 cores. Both downloads are checked with \`diff -r\` afterwards (not timed). boto3 $("$PY" -c 'import boto3; print(boto3.__version__)') with default settings (checksums as boto3 defaults), one shared client, max_pool_connections=$S3_THREADS."
  GARAGE_TICKS=$(garage_cpu)
  stop_garage
  rm -rf "$small" "$W/garage"
}

# ---------------------------------------------------------------------------------------------------------------
part4() {
  local many="$W/many" store="$W/store4" n=$((MANY_DIRS * MANY_PER_DIR)) label rc=0
  log "part 4: creating $(commas $n) tiny files"
  local t0=$SECONDS
  "${GEN[@]}" many "$many" "$MANY_DIRS" "$MANY_PER_DIR" >/dev/null
  log "  created in $((SECONDS - t0)) s; pushing (limit ${MANY_LIMIT} s)"
  ainit "file://$store"; flush
  timed timeout "$MANY_LIMIT" "$BIN" --json --store "file://$store" --cache-dir "$W/cache4" push models/many "$many" >"$W/push4.json" || rc=$?
  label=$(commas $n); local ndirs=$MANY_DIRS
  if [ "$rc" != 0 ]; then
    local n2=$((MANY_FALLBACK_DIRS * MANY_PER_DIR))
    log "  push of $n files did not finish within ${MANY_LIMIT} s (status $rc): measuring $n2 instead"
    note "- Part 4: pushing $(commas $n) files took more than ${MANY_LIMIT} s on this machine, so the version measured has $(commas $n2) files ($MANY_FALLBACK_DIRS of the $MANY_DIRS directories); the full-tree numbers in the last column of 4b are EXTRAPOLATED linearly."
    mkdir "$W/many2"
    for d in $(seq 0 $((MANY_FALLBACK_DIRS - 1))); do mv "$many/$(printf 'd%04d' "$d")" "$W/many2/"; done
    rm -rf "$store" "$W/cache4" "$many"; many="$W/many2"; n=$n2; label=$(commas $n2); ndirs=$MANY_FALLBACK_DIRS
    ainit "file://$store"; flush
    timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache4" push models/many "$many" >"$W/push4.json"
  fi
  local many_t=$WALL many_cpu=$CPU many_rss=$RSS mf msize lines
  mf=$(ls "$store"/manifests/*); msize=$(stat -c %s "$mf")
  lines=$("$BIN" --store "file://$store" ls models/many@1 | wc -l)
  local ls_t=() ls_c=() ls_rss=0 r
  for r in 1 2 3; do
    timed sh -c '"$1" --store "file://$2" ls models/many@1 >/dev/null' sh "$BIN" "$store"
    ls_t+=("$WALL"); ls_c+=("$CPU"); ls_rss=$(( RSS > ls_rss ? RSS : ls_rss ))
  done
  # Two manifest loads + an entry-by-entry comparison, and almost no output: separates loading from printing.
  local df_t=() df_rss=0
  for r in 1 2 3; do
    timed sh -c '"$1" --store "file://$2" diff models/many@1 models/many@1 >/dev/null' sh "$BIN" "$store"
    df_t+=("$WALL"); df_rss=$(( RSS > df_rss ? RSS : df_rss ))
  done
  # A later push of one new small file into the same store: every push loads the whole chunk index first.
  mkdir "$W/one"; head -c 100 /dev/urandom >"$W/one/new.bin"
  local idx_b; idx_b=$(du_b "$store/indexes")
  flush
  timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache4" push models/one "$W/one" >"$W/push4d.json"
  local one_t=$WALL one_cpu=$CPU one_rss=$RSS
  rm -rf "$W/one-empty-store"; ainit "file://$W/one-empty-store"; flush
  timed "$BIN" --json --store "file://$W/one-empty-store" --cache-dir "$W/cache4e" push models/one "$W/one" >/dev/null
  local e_t=$WALL e_rss=$RSS
  local lm; lm=$(median "${ls_t[@]}")
  local extra=""
  if [ "$n" != $((MANY_DIRS * MANY_PER_DIR)) ]; then
    local f; f=$(calc '%.3f' "$MANY_DIRS * $MANY_PER_DIR / $n")
    extra=" EXTRAPOLATED to $(commas $((MANY_DIRS * MANY_PER_DIR))): ls ~$(calc '%.1f' "$lm * $f") s, ~$(calc '%.0f' "$ls_rss * $f / 1024") MiB, manifest ~$(hsize "$(calc '%.0f' "$msize * $f")") "
  fi
  row " 4a " " push $label tiny files (${ndirs} dirs; 16-40 B each, unique content) to file:// store " \
    " ${many_t} s = $(calc '%.0f' "$n / $many_t") files/s; CPU ${many_cpu} s; max RSS $((many_rss / 1024)) MiB " " " " (setup for 4b) "
  row " 4b " " \`assetfs ls models/many@1 >/dev/null\` ($label-file version: fetch + decode + validate the manifest, print $(commas "$lines") lines) " \
    " ${lm} s (runs: ${ls_t[*]}); CPU $(median "${ls_c[@]}") s; max RSS **$((ls_rss / 1024)) MiB**; manifest $(commas "$msize") B = **$(calc '%.1f' "$msize / $n") B/file** " " " "$extra"
  row " 4c " " \`assetfs diff models/many@1 models/many@1\` (loads the manifest twice, compares, prints 3 lines) " \
    " $(median "${df_t[@]}") s (runs: ${df_t[*]}); max RSS $((df_rss / 1024)) MiB " " " " 4c/2 bounds one manifest load; 4b minus that ~ printing "
  row " 4d " " push 1 new 100 B file into the same store (loads its $(commas "$idx_b") B chunk index from the local cache) " \
    " ${one_t} s; CPU ${one_cpu} s; max RSS $((one_rss / 1024)) MiB " " same push into an empty store: ${e_t} s, max RSS $((e_rss / 1024)) MiB " " index load cost grows with the store's chunk count "
  note "- Part 4: tree created by scripts/bench/gen.py (not timed in the table; $((SECONDS - t0)) s for create + push + ls). ls runs with a warm page cache (the manifest was just written); max RSS from /usr/bin/time. The push's chunk index for this store is $(commas "$(du_b "$store/indexes")") B."
  rm -rf "$many" "$store" "$W/cache4" "$W/cache4e" "$W/one" "$W/one-empty-store"
}

# ---------------------------------------------------------------------------------------------------------------
part5() {
  local tree="$W/tree5" store="$W/store5" n=$REPUSH_FILES mib=$REPUSH_FILE_MIB i r
  local total=$((n * mib * 1048576))
  log "part 5: re-push of an unchanged tree of $n x $mib MiB"
  mkdir -p "$tree"
  for i in $(seq -w 1 "$n"); do head -c "$((mib * 1048576))" /dev/urandom >"$tree/f$i.bin"; done
  ainit "file://$store"; flush
  timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache5" push models/tree "$tree" >"$W/push5.json"
  local first=$WALL first_cpu=$CPU re=() re_c=() re_rss=0 walk=()
  for r in $(seq "$RUNS"); do
    flush
    timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache5" push models/tree "$tree" >"$W/repush5.json"
    re+=("$WALL"); re_c+=("$CPU"); re_rss=$(( RSS > re_rss ? RSS : re_rss ))
    flush
    timed sh -c 'find "$1" -type f -printf "%s %T@ %i\n" >/dev/null' sh "$tree"
    walk+=("$WALL")
    log "  run $r: re-push ${re[-1]} s (new bytes $(jq .new_bytes "$W/repush5.json")), stat walk ${walk[-1]} s; first push was $first s"
  done
  local m; m=$(median "${re[@]}")
  row " 5 " " re-push of an unchanged tree of $n files x $mib MiB ($(hsize "$total"), random content) to file:// store (page cache dropped before) " \
    " **${m} s** (runs: ${re[*]}); CPU $(median "${re_c[@]}") s; max RSS $((re_rss / 1024)) MiB; new_bytes $(jq .new_bytes "$W/repush5.json"); $(jq -r '"\(.new_chunks) new / \(.reused_chunks) reused chunks"' "$W/repush5.json") " \
    " first push of the same tree: ${first} s (CPU ${first_cpu} s); \`find -printf size,mtime,inode\` of the tree: $(median "${walk[@]}") s (runs: ${walk[*]}) " \
    " goal < 1 s: $(awk -v m="$m" 'BEGIN { print (m < 1) ? "yes" : "**no**" }'); $(calc '%.3f' "$m / $first")x the first push "
  note "- Part 5: each re-push pushes the unchanged tree again to the same ref with the same cache directory (whatever assetfs keeps there between pushes may be used); the page cache is dropped before every timed step (BENCH_DROP_CACHES)."
  rm -rf "$tree" "$store" "$W/cache5"
}

# ---------------------------------------------------------------------------------------------------------------
part6() {
  local tree="$W/tree6" n=$((TINY_DIRS * TINY_PER_DIR)) r push=() push_c=() push_rss=0 cp=()
  log "part 6: push of $(commas $n) tiny files"
  "${GEN[@]}" many "$tree" "$TINY_DIRS" "$TINY_PER_DIR" >/dev/null
  for r in $(seq "$RUNS"); do
    rm -rf "$W/store6" "$W/cache6"; ainit "file://$W/store6"; flush
    timed "$BIN" --json --store "file://$W/store6" --cache-dir "$W/cache6" push models/tiny "$tree" >"$W/push6.json"
    push+=("$WALL"); push_c+=("$CPU"); push_rss=$(( RSS > push_rss ? RSS : push_rss ))
    rm -rf "$W/cp6"; flush
    timed sh -c 'cp -a "$1" "$2" && sync' sh "$tree" "$W/cp6"
    cp+=("$WALL")
    log "  run $r: push ${push[-1]} s, cp -a ${cp[-1]} s"
  done
  local m c
  m=$(median "${push[@]}"); c=$(median "${cp[@]}")
  row " 6 " " push $(commas $n) tiny files (${TINY_DIRS} dirs; 16-40 B each, unique content) to an empty file:// store " \
    " **${m} s = $(calc '%.0f' "$n / $m") files/s** (runs: ${push[*]}); CPU $(median "${push_c[@]}") s; max RSS $((push_rss / 1024)) MiB " \
    " \`cp -a\` of the tree on the same disk + sync: ${c} s = $(calc '%.0f' "$n / $c") files/s (runs: ${cp[*]}) " \
    " $(calc '%.2f' "$c / $m")x cp throughput; compare files/s with the figure recorded in docs/benchmarks.md "
  rm -rf "$tree" "$W/store6" "$W/cache6" "$W/cp6"
}

# ---------------------------------------------------------------------------------------------------------------
# pack_stats DIR: "<count> packs, <bytes> B" of a file:// store's packs/.
pack_stats() { find "$1/packs" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d %d", n, b }'; }

part7() {
  local store="$W/store7" n=$((LIFE_ASSETS * LIFE_VERSIONS)) built
  if [ -n "$LIFE_STORE" ] && [ -f "$LIFE_STORE/built.json" ]; then
    log "part 7: reusing the store built in $LIFE_STORE"
    cp -a "$LIFE_STORE/store" "$store"
  else
    log "part 7: building a store of $n versions ($LIFE_ASSETS assets; $LIFE_NEW new + $LIFE_CARRY carried tiny files each)"
    mkdir -p "$W/work7"; ainit "file://$store"
    python3 "$ROOT/scripts/bench/lifecycle_store.py" "$BIN" "file://$store" "$W/cache7-build" "$W/work7" \
      "$LIFE_ASSETS" "$LIFE_VERSIONS" "$LIFE_NEW" "$LIFE_CARRY" "$LIFE_GC_EVERY" "$LIFE_DELETE_EVERY" >"$W/built7.json" \
      || die "building the part 7 store failed"
    rm -rf "$W/work7" "$W/cache7-build"
    if [ -n "$LIFE_STORE" ]; then
      rm -rf "$LIFE_STORE"; mkdir -p "$LIFE_STORE"; cp -a "$store" "$LIFE_STORE/store"; cp "$W/built7.json" "$LIFE_STORE/built.json"
    fi
  fi
  [ -n "$LIFE_STORE" ] && cp "$LIFE_STORE/built.json" "$W/built7.json"
  built=$(jq -r '"\(.pushes) pushes (\(.chunks) chunks stored, \(.files) files committed) and \(.deleted) versions deleted; setup \(.seconds) s"' "$W/built7.json")
  log "  $built"
  cp -a "$store" "$W/store7-s3"   # the same store, for Garage (7c)
  local before; read -r -a before <<<"$(pack_stats "$store")"

  # 7a: gc on the file:// store, with an empty node cache.
  flush
  timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache7-gc" gc --grace 0s >"$W/gc7.json"
  local gc_t=$WALL gc_cpu=$CPU gc_rss=$RSS after j="$W/gc7.json"
  read -r -a after <<<"$(pack_stats "$store")"
  local dead freed live
  dead=$(jq .store.dead_bytes "$j"); freed=$(jq .freed_bytes "$j"); live=$(jq .store.live_bytes "$j")
  row " 7a " " gc of $(commas "$(jq .store.live_versions "$j")") live versions + $(jq .deleted "$W/built7.json") deleted, $(commas "$(jq .index.chunks "$j")") live chunks in $(commas "${before[0]}") packs ($(hsize "${before[1]}")), file:// store, empty node cache, \`--grace 0s\` " \
    " **${gc_t} s**; CPU ${gc_cpu} s; max RSS $((gc_rss / 1024)) MiB; dead (pack bytes no live version uses) $(commas "$dead") B = $(calc '%.1f' "100 * $dead / ${before[1]}")% of pack bytes; **freed $(commas "$freed") B = $(calc '%.1f' "100 * $freed / ($dead > 0 ? $dead : 1)")% of the dead bytes** ($(jq '[.swept[].packs] | add // 0' "$j") packs, $(jq '[.swept[].manifests] | add // 0' "$j") manifests); packs after: $(commas "${after[0]}") ($(hsize "${after[1]}")) " \
    " live bytes $(commas "$live"); chunk index rewritten: $(jq .index.shards "$j") shards " \
    " bytes freed / bytes dead "
  note "- Part 7 store: $built (scripts/bench/lifecycle_store.py: $LIFE_ASSETS assets x $LIFE_VERSIONS versions, each with $LIFE_NEW tiny files of its own and $LIFE_CARRY carried from its predecessor; gc every $LIFE_GC_EVERY pushes during setup; every $LIFE_DELETE_EVERY-th version deleted). Dead bytes are those gc found in packs no live version uses or in the unused parts of packs some live version still uses."

  # 7b: push of one new 100 B file into the 1M-chunk store: empty and warm node cache; baseline: an empty store.
  mkdir -p "$W/one7a" "$W/one7b" "$W/one7c"
  head -c 100 /dev/urandom >"$W/one7a/new.bin"; head -c 100 /dev/urandom >"$W/one7b/new.bin"; head -c 100 /dev/urandom >"$W/one7c/new.bin"
  flush
  timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache7-push" push models/one "$W/one7a" >/dev/null
  local cold_t=$WALL cold_rss=$RSS
  flush
  timed "$BIN" --json --store "file://$store" --cache-dir "$W/cache7-push" push models/one "$W/one7b" >/dev/null
  local warm_t=$WALL warm_rss=$RSS
  rm -rf "$W/store7-empty"; ainit "file://$W/store7-empty"; flush
  timed "$BIN" --json --store "file://$W/store7-empty" --cache-dir "$W/cache7-e" push models/one "$W/one7c" >/dev/null
  local e_t=$WALL e_rss=$RSS
  row " 7b " " push 1 new 100 B file into that store ($(commas "$(jq .index.chunks "$j")") chunks; chunk index of $(jq .index.shards "$j") shards), file:// " \
    " empty node cache: **${cold_t} s, max RSS $((cold_rss / 1024)) MiB**; warm: ${warm_t} s, $((warm_rss / 1024)) MiB " \
    " same push into an empty store: ${e_t} s, max RSS $((e_rss / 1024)) MiB " \
    " goal <= 0.1 s and 64 MiB: $(awk -v t="$cold_t" -v r="$cold_rss" 'BEGIN { print (t <= 0.1 && r <= 65536) ? "yes" : "**no**" }') "

  # 7c: the same on Garage S3, counting requests.
  if [ -z "$GARAGE_PID" ] && ! start_garage; then
    row " 7c " " gc and push on Garage S3 " " NOT RUN: garage binary missing " " " " "
    rm -rf "$W/store7-s3"; return
  fi
  local url="s3://$BENCH_BUCKET/life"
  "$PY" "$S3PY" up "$W/store7-s3" "$BENCH_BUCKET" life "$S3_THREADS" >/dev/null || die "uploading the part 7 store to Garage failed"
  rm -rf "$W/store7-s3"
  s3_step lgc env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$url" --cache-dir "$W/cache7-s3gc" gc --grace 0s >"$W/gc7s3.json" 2>/dev/null \
    || die "gc on Garage failed"
  s3_step lpush env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "$url" --cache-dir "$W/cache7-s3push" push models/one "$W/one7a" >/dev/null 2>"$W/push7s3.err" \
    || die "push on Garage failed: $(cat "$W/push7s3.err")"
  ainit "s3://$BENCH_BUCKET/life-empty"
  s3_step lpush2 env ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1 "$BIN" --json --store "s3://$BENCH_BUCKET/life-empty" --cache-dir "$W/cache7-s3e" push models/one "$W/one7a" >/dev/null 2>"$W/push7s3e.err" \
    || die "push into an empty store on Garage failed: $(cat "$W/push7s3e.err")"
  row " 7c " " the same store on Garage S3 (uploaded as is): gc, then push 1 new 100 B file with an empty node cache " \
    " gc: ${WALL_lgc} s, **requests: ${REQS[lgc]}**, freed $(commas "$(jq .freed_bytes "$W/gc7s3.json")") B; push: ${WALL_lpush} s, **requests: ${REQS[lpush]}** " \
    " push into an empty store on Garage: ${WALL_lpush2} s, requests: ${REQS[lpush2]} " \
    " push requests beyond the data (1 pack, 1 delta, 1 manifest, 1 version record) "
  note "- Part 7c runs with \`ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1\` (Garage ignores conditional writes): a push there skips the 4-request self-check a real S3 push makes, and gc's create-if-absent records are not race-safe. Request counts are the change in Garage's per-endpoint counters around each command."
}

waited=0
while [ "$waited" -lt "$IDLE_WAIT" ] && awk '{ exit !($1 >= 0.5) }' /proc/loadavg; do
  [ $((waited % 60)) = 0 ] && log "waiting for the machine to go idle (load $(cut -d' ' -f1 /proc/loadavg))"
  sleep 10; waited=$((waited + 10))
done
# CPU used by everything else during the run = all busy CPU time - this script's children - Garage.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
BUSY0=$(busy_ticks)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
T_START=$SECONDS
[[ $PARTS == *1* ]] && part1
[[ $PARTS == *2* ]] && part2
[[ $PARTS == *3* ]] && part3
[[ $PARTS == *4* ]] && part4
[[ $PARTS == *5* ]] && part5
[[ $PARTS == *6* ]] && part6
[[ $PARTS == *7* ]] && part7

BUSY1=$(busy_ticks)
RUN_S=$((SECONDS - T_START))
# `times`, second line: user and system time of this shell's finished children, e.g. "1m2.345s 0m6.789s".
OWN_S=$(times | tail -n 1 | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } print t }')
OTHER_S=$(calc '%.0f' "($BUSY1 - $BUSY0) / $TCK - $OWN_S - $GARAGE_TICKS / $TCK")
OTHER_PCT=$(calc '%.0f' "100 * $OTHER_S / ($RUN_S * $(nproc))")
OUT="$ROOT/target/bench-core.md"
mkdir -p "$ROOT/target"
{
  echo "## assetfs core benchmarks"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')) · $(free -g | awk '/^Mem:/ {print $2}') GiB RAM · ${BIN_SRC#"$ROOT"/} = $BIN_DESC · total run ${RUN_S} s"
  echo
  echo "Other load on the machine during the run: ~${OTHER_S} CPU-seconds = ~${OTHER_PCT}% of all cores (busy time in /proc/stat minus this script's processes and Garage; includes kernel writeback). 1-min load average at start: ${LOAD_START}."
  echo
  echo "| # | benchmark | assetfs | baseline | ratio / goal |"
  echo "| --- | --- | --- | --- | --- |"
  cat "$ROWS"
  echo
  cat "$NOTES"
} | tee "$OUT"
log "results written to $OUT"
