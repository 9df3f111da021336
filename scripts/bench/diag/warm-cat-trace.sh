#!/bin/bash
# Where a warm sequential `cat` through the mount waits (docs/benchmarks.md, 'Where a warm `cat` waits'): a MIB
# (1024) MiB file pushed to Garage, its cache filled by a cold `cat` through the mount, then ROUNDS (2) warm `cat`s
# on fresh mounts (page cache dropped) with the read path's trace events on (`read served`, `top-up`, `disk run`),
# summed up by read-waits.py: the READs that waited and where, the reads of the disk cache (their size, and how long
# each waited for a slot, a thread, the disk and the checks). KEEP_LOGS=DIR copies the logs there. ASSETFS_BIN:
# the build (default target/release/assetfs). Root; Garage on loopback.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
MIB=${MIB:-1024}
S=s3://bench/warmtrace
push_big "$MIB" $S
fill_by_cat $S
for r in $(seq 1 "${ROUNDS:-2}"); do
  rm -f "$W"/c/logs/*.log
  ASSETFS_LOG=assetfs::mount::readahead=trace,assetfs::mount::reader=trace \
    "$A" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
  ls -la "$W/mnt/models/big@1/big.bin" >/dev/null
  sync; echo 3 >/proc/sys/vm/drop_caches
  t0=$(date +%s%N); cat "$W/mnt/models/big@1/big.bin" >/dev/null; t1=$(date +%s%N)
  "$A" unmount "$W/mnt" >/dev/null
  echo "warm cat: $(( MIB * 1000000000 / (t1 - t0) )) MiB/s (trace events on)"
  python3 "$(dirname "${BASH_SOURCE[0]}")/read-waits.py" "$W"/c/logs/*.log
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS"; cp "$W"/c/logs/*.log "$KEEP_LOGS/warm-cat-$r.log"; fi
done
