#!/usr/bin/env bash
# Benchmarks for writes through <name>@staging and `assetfs commit` (issue 4),
# with baselines measured in the same run. Prints a markdown table and saves
# it to target/bench-staging.md.
#   BIG_MB=2048 BASE_FILES=100 BASE_FILE_MB=100 CHANGE_MB=10 scripts/bench-staging.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIG_MB=${BIG_MB:-2048}; BASE_FILES=${BASE_FILES:-100}; BASE_FILE_MB=${BASE_FILE_MB:-100}; CHANGE_MB=${CHANGE_MB:-10}
cargo build --release --quiet
A="$PWD/target/release/assetfs"
W=$(mktemp -d /work/assetfs-bench-staging.XXXX)
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache ASSETFS_STORE=file://$W/store
mkdir -p "$HOME" "$W/mnt" "$W/src"
cleanup() { "$A" unmount "$W/mnt" >/dev/null 2>&1 || umount -l "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
"$A" init >/dev/null

echo "== source: $BIG_MB MiB of random data" >&2
head -c $((BIG_MB << 20)) /dev/urandom > "$W/src/big.bin"
drop
t0=$(now); dd if="$W/src/big.bin" of="$W/local-copy.bin" bs=1M conv=fsync status=none; t1=$(now)
local_write=$(secs "$t0" "$t1"); rm -f "$W/local-copy.bin"

"$A" mount "$W/mnt" >/dev/null
mkdir "$W/mnt/models/w@staging"
drop
t0=$(now); dd if="$W/src/big.bin" of="$W/mnt/models/w@staging/big.bin" bs=1M conv=fsync status=none; t1=$(now)
staging_write=$(secs "$t0" "$t1")
drop
t0=$(now); "$A" --json commit models/w -m bench > "$W/commit.json"; t1=$(now)
commit_time=$(secs "$t0" "$t1")
# The push baseline goes to a fresh store: in the same store every chunk is already there (the commit
# stored them), so the push would store nothing and the comparison would be unfair to commit.
"$A" --store "file://$W/store-push" init >/dev/null
drop
t0=$(now); "$A" --json --store "file://$W/store-push" push models/p "$W/src" -m bench > "$W/push.json"; t1=$(now)
push_time=$(secs "$t0" "$t1")
cmp "$W/mnt/models/w@1/big.bin" "$W/src/big.bin"

echo "== base: $BASE_FILES x $BASE_FILE_MB MiB" >&2
rm -f "$W/src/big.bin"; mkdir -p "$W/base"
for i in $(seq 1 "$BASE_FILES"); do head -c $((BASE_FILE_MB << 20)) /dev/urandom > "$W/base/f$i.bin"; done
t0=$(now); "$A" --json push features/big "$W/base" -m base > "$W/base.json"; t1=$(now)
base_push=$(secs "$t0" "$t1")
rm -rf "$W/base"
sleep 1
# Change CHANGE_MB in the middle of one file, in place.
t0=$(now)
python3 - "$W/mnt/features/big@staging/f1.bin" "$CHANGE_MB" <<'PY'
import os, sys
p, mb = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 2 - (mb << 19))
    f.write(os.urandom(mb << 20))
    f.flush(); os.fsync(f.fileno())
PY
t1=$(now); edit_time=$(secs "$t0" "$t1")
t0=$(now); "$A" --json commit features/big -m "10 MiB changed" > "$W/commit10.json"; t1=$(now)
commit10=$(secs "$t0" "$t1")
new10=$(python3 -c "import json; print(json.load(open('$W/commit10.json'))['new_bytes'])")
total10=$(python3 -c "import json; print(json.load(open('$W/commit10.json'))['total_bytes'])")
"$A" unmount "$W/mnt" >/dev/null

r() { python3 -c "print(f'{$1/$2:.2f}')"; }
out=target/bench-staging.md
{
  echo "| measurement | value | baseline (same run) | ratio |"
  echo "| --- | --- | --- | --- |"
  echo "| write $BIG_MB MiB into staging (dd bs=1M, fsync) | ${staging_write} s | local disk ${local_write} s | $(r "$local_write" "$staging_write") x local speed |"
  echo "| commit of that staging | ${commit_time} s | push of the same file ${push_time} s | $(r "$commit_time" "$push_time") x push time |"
  echo "| commit of $((BASE_FILES * BASE_FILE_MB)) MiB staging, $CHANGE_MB MiB changed in one file | ${commit10} s, $((new10 >> 20)) MiB new of $((total10 >> 20)) MiB | push of the base ${base_push} s | $(r "$commit10" "$base_push") x base push time |"
  echo "| first write into a base file (copy-up of $BASE_FILE_MB MiB + $CHANGE_MB MiB write + fsync) | ${edit_time} s | | |"
} | tee "$out"
