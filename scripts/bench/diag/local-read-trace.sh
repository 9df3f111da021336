#!/bin/bash
# Where a cold `cat` through a mount of a `file://` store waits (docs/benchmarks.md, 'Where a cold local read
# waits'): a MIB (1024) MiB file pushed to a store on the same disk as /tmp, read once through a fresh mount (empty
# cache, page cache dropped) with the read path's trace events on (`local pack read`, `read served`, `top-up`), then
# summed up by read-timeline.py: the share of the read during which the disk was reading one pack or two, mean pack
# read and hash times, the READs that waited and for how long, the top-ups. TIMELINE=1 adds one line per 2 ms (packs
# being read, being hashed, READs waiting). ASSETFS_BIN: the build (default target/release/assetfs). Root.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/local-env.sh"
ASSETFS_LOG=assetfs::mount::reader=trace,assetfs::mount::readahead=trace \
  "$A" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
sync; echo 3 >/proc/sys/vm/drop_caches
t0=$(date +%s%N)
cat "$W/mnt/models/big@1/big.bin" >/dev/null
t1=$(date +%s%N)
"$A" unmount "$W/mnt" >/dev/null
echo "cat through the mount: $(( MIB * 1000000000 / (t1 - t0) )) MiB/s (trace events on)"
python3 "$(dirname "${BASH_SOURCE[0]}")/read-timeline.py" "$W"/c/logs/*.log ${TIMELINE:+--timeline}
