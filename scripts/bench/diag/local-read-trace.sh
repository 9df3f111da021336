#!/bin/bash
# Where a cold `cat` through a mount of a `file://` store waits (docs/benchmarks.md, 'Where a cold local read
# waits'): a MIB (1024) MiB file pushed to a store on the same disk as /tmp, read once through a fresh mount (empty
# cache, page cache dropped) with the read path's trace events on (`local pack read`, `read served`, `top-up`), then
# summed up by read-timeline.py: the share of the read during which the disk was reading one pack or two, mean pack
# read and hash times, the READs that waited and for how long, the top-ups. TIMELINE=1 adds one line per 2 ms (packs
# being read, being hashed, READs waiting). ASSETFS_BIN: the build (default target/release/assetfs). Root.
set -e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
MIB=${MIB:-1024}
W=$(mktemp -d /tmp/local-trace.XXXX)
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
S=file://$W/store
mkdir -p "$HOME" "$W/mnt" "$W/src"
cleanup() { "$A" unmount "$W/mnt" >/dev/null 2>&1 || umount -l "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom >"$W/src/big.bin"
"$A" --store $S init >/dev/null 2>&1 || true
"$A" --store $S push models/big "$W/src" -m p >/dev/null 2>&1
rm -rf "$W/src"
ASSETFS_LOG=assetfs::mount::reader=trace,assetfs::mount::readahead=trace \
  "$A" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
sync; echo 3 >/proc/sys/vm/drop_caches
t0=$(date +%s%N)
cat "$W/mnt/models/big@1/big.bin" >/dev/null
t1=$(date +%s%N)
"$A" unmount "$W/mnt" >/dev/null
echo "cat through the mount: $(( MIB * 1000000000 / (t1 - t0) )) MiB/s (trace events on)"
python3 "$(dirname "${BASH_SOURCE[0]}")/read-timeline.py" "$W"/c/logs/*.log ${TIMELINE:+--timeline}
