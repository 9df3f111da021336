#!/usr/bin/env bash
# Push and commit speed (issue 9, item 5), each against a baseline measured in the same run:
#   1. push of one large random file to a file:// store vs `cp` of it to the same disk (both + sync)
#   2. re-push of an unchanged tree (BENCH_TREE_FILES x BENCH_TREE_MIB) vs its first push
#   3. push of many tiny files (BENCH_TINY_DIRS x BENCH_TINY_PER_DIR, 16-40 B each) to a fresh store
#   4. `commit` of a large file written into @staging through a mount vs `push` of the same bytes
# With ASSETFS_BASE_BIN set (an older build), parts 1-4 also time it on the same data, for before/after.
#
#   cargo build --release && flock -x /work/locks/quiet scripts/bench-push.sh
#
# Knobs: BENCH_PARTS [1234], BENCH_BIG_MIB [1024], BENCH_RUNS [3], BENCH_TREE_FILES [100], BENCH_TREE_MIB [100],
#   BENCH_TINY_DIRS [100], BENCH_TINY_PER_DIR [1000], BENCH_STAGING_MIB [2048], BENCH_TMP [/tmp],
#   ASSETFS_BIN [target/release/assetfs], ASSETFS_BASE_BIN [unset]. Needs root (drop_caches, FUSE for part 4).
# Prints a markdown table (also target/bench-push.md). Page cache dropped before every timed step.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARTS=${BENCH_PARTS:-1234}
BIG_MIB=${BENCH_BIG_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
TREE_FILES=${BENCH_TREE_FILES:-100}
TREE_MIB=${BENCH_TREE_MIB:-100}
TINY_DIRS=${BENCH_TINY_DIRS:-100}
TINY_PER_DIR=${BENCH_TINY_PER_DIR:-1000}
STAGING_MIB=${BENCH_STAGING_MIB:-2048}
W=$(mktemp -d "${BENCH_TMP:-/tmp}/assetfs-bench-push.XXXXXX")
# Own copies: a rebuild during the run cannot swap the binaries.
cp "${ASSETFS_BIN:-$ROOT/target/release/assetfs}" "$W/new"
BINS=(new)
if [ -n "${ASSETFS_BASE_BIN:-}" ]; then cp "$ASSETFS_BASE_BIN" "$W/base"; BINS=(new base); fi
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache ASSETFS_AUTHOR=bench
mkdir -p "$HOME" "$W/mnt"
cleanup() {
  for b in "${BINS[@]}"; do "$W/$b" unmount "$W/mnt" >/dev/null 2>&1 || true; done
  grep -q " $W/mnt " /proc/mounts && umount -l "$W/mnt" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "[bench-push $(date +%T)] $*" >&2; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
el() { python3 -c "print(f'{$2-$1:.3f}')"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
# Times a command (after dropping the page cache); prints seconds. Its stdout goes to $W/last.out.
timed() { drop; local t0 t1; t0=$(now); "$@" >"$W/last.out"; t1=$(now); el "$t0" "$t1"; }
ROWS=()
row() { ROWS+=("| $* |"); echo "ROW | $* |" >&2; }

if [[ $PARTS == *1* ]]; then
  log "part 1: $BIG_MIB MiB random file"
  mkdir -p "$W/big"; head -c $((BIG_MIB << 20)) /dev/urandom > "$W/big/big.bin"
  declare -A P1
  cps=()
  for i in $(seq "$RUNS"); do
    rm -f "$W/cp.bin"; cps+=("$(timed sh -c "cp '$W/big/big.bin' '$W/cp.bin' && sync")")
    for b in "${BINS[@]}"; do
      rm -rf "$W/s1-$b" "$W/cache-$b"
      "$W/$b" --store "file://$W/s1-$b" --cache-dir "$W/cache-$b" init >/dev/null
      t=$(timed sh -c "'$W/$b' --store 'file://$W/s1-$b' --cache-dir '$W/cache-$b' push models/big '$W/big' >/dev/null && sync")
      P1[$b]="${P1[$b]:-} $t"
    done
  done
  rm -f "$W/cp.bin"
  cp_m=$(median "${cps[@]}")
  for b in "${BINS[@]}"; do
    # shellcheck disable=SC2086
    m=$(median ${P1[$b]})
    row "1 | push $BIG_MIB MiB file to file:// ($b) | $m s (runs:${P1[$b]}) | cp + sync: $cp_m s (runs: ${cps[*]}) | **$(ratio "$cp_m" "$m")x** cp throughput"
  done
  rm -rf "$W/s1-"* "$W/big"
fi

if [[ $PARTS == *2* ]]; then
  log "part 2: tree of $TREE_FILES x $TREE_MIB MiB"
  mkdir -p "$W/tree"
  for i in $(seq "$TREE_FILES"); do head -c $((TREE_MIB << 20)) /dev/urandom > "$W/tree/f$i.bin"; done
  sleep 2.5  # past the stat cache's racy-timestamp slack
  for b in "${BINS[@]}"; do
    rm -rf "$W/cache-$b"
    "$W/$b" --store "file://$W/s2-$b" --cache-dir "$W/cache-$b" init >/dev/null
    first=$(timed "$W/$b" --json --store "file://$W/s2-$b" --cache-dir "$W/cache-$b" push models/tree "$W/tree")
    again=$(timed "$W/$b" --json --store "file://$W/s2-$b" --cache-dir "$W/cache-$b" push models/tree "$W/tree")
    read_n=$(jq -r '.files_read // "n/a"' "$W/last.out")
    new_b=$(jq -r '.new_bytes' "$W/last.out")
    row "2 | re-push unchanged $TREE_FILES x $TREE_MIB MiB tree ($b) | $again s (files read: $read_n, new bytes: $new_b) | first push of it: $first s | $(ratio "$again" "$first")x first push time (goal: under 1 s)"
    rm -rf "$W/s2-$b"
  done
  rm -rf "$W/tree"
fi

if [[ $PARTS == *3* ]]; then
  n=$((TINY_DIRS * TINY_PER_DIR))
  log "part 3: $n tiny files"
  python3 - "$W/tiny" "$TINY_DIRS" "$TINY_PER_DIR" <<'PY'
import os, sys
root, dirs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    p = os.path.join(root, f"d{d:04d}")
    os.makedirs(p)
    for f in range(per):
        with open(os.path.join(p, f"f{f:05d}"), "wb") as fh:
            fh.write(f"{d}/{f} ".encode() * (1 + (d * per + f) % 5) + os.urandom(8))
PY
  sleep 2.5
  declare -A T3
  for b in "${BINS[@]}"; do
    rm -rf "$W/s3-$b" "$W/cache-$b"
    "$W/$b" --store "file://$W/s3-$b" --cache-dir "$W/cache-$b" init >/dev/null
    T3[$b]=$(timed "$W/$b" --store "file://$W/s3-$b" --cache-dir "$W/cache-$b" push models/tiny "$W/tiny")
    rm -rf "$W/s3-$b"
  done
  if [ -n "${T3[base]:-}" ]; then
    row "3 | push $n tiny files (16-40 B) to a fresh file:// store | new: ${T3[new]} s | base: ${T3[base]} s | **$(ratio "${T3[base]}" "${T3[new]}")x** faster (goal: 3x)"
  else
    row "3 | push $n tiny files (16-40 B) to a fresh file:// store | ${T3[new]} s | (no ASSETFS_BASE_BIN) | "
  fi
  rm -rf "$W/tiny"
fi

if [[ $PARTS == *4* ]]; then
  log "part 4: $STAGING_MIB MiB through @staging"
  mkdir -p "$W/src4"; head -c $((STAGING_MIB << 20)) /dev/urandom > "$W/src4/big.bin"
  declare -A C4 P4
  # Commit and push alternate in each run: which one runs first after a large write or page-cache drop
  # moves either by up to 2x on this VM, so one pair of each is not a measurement.
  for i in $(seq "$RUNS"); do
    for b in "${BINS[@]}"; do
      S="file://$W/s4-$b"; C="$W/cache4-$b"
      "$W/$b" --store "$S" --cache-dir "$C" init >/dev/null
      "$W/$b" --store "$S" --cache-dir "$C" mount "$W/mnt" >/dev/null
      mkdir "$W/mnt/models/w@staging"
      dd if="$W/src4/big.bin" of="$W/mnt/models/w@staging/big.bin" bs=1M conv=fsync status=none
      # Into a fresh store: pushed into the same one, every chunk would already be there (the commit stored
      # them) and the push would write nothing.
      "$W/$b" --store "file://$W/s4p-$b" --cache-dir "$C" init >/dev/null
      p4() { timed "$W/$b" --json --store "file://$W/s4p-$b" --cache-dir "$C" push models/p "$W/src4" -m bench; }
      [ $((i % 2)) = 0 ] && push=$(p4)
      commit=$(timed "$W/$b" --json --store "$S" --cache-dir "$C" commit models/w -m bench)
      [ $((i % 2)) = 1 ] && push=$(p4)
      "$W/$b" unmount "$W/mnt" >/dev/null
      C4[$b]="${C4[$b]:-} $commit"; P4[$b]="${P4[$b]:-} $push"
      rm -rf "$W/s4-$b" "$W/s4p-$b" "$C" "$W/data/assetfs/staging"
    done
  done
  for b in "${BINS[@]}"; do
    # shellcheck disable=SC2086
    cm=$(median ${C4[$b]}); pm=$(median ${P4[$b]})
    row "4 | commit of $STAGING_MIB MiB written into @staging ($b) | $cm s (runs:${C4[$b]}) | push of the same file to a fresh store: $pm s (runs:${P4[$b]}) | $(ratio "$cm" "$pm")x push time (goal: at most 1.11x, i.e. 0.9x push speed)"
  done
  rm -rf "$W/src4"
fi

out=$ROOT/target/bench-push.md
mkdir -p "$ROOT/target"
{
  echo "| # | measurement | value | baseline (same run) | ratio |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- $(nproc) CPUs, $(uname -r); work dir $W on $(df --output=source "$W" | tail -1); load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
