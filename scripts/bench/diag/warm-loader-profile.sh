#!/bin/bash
# Warm data-loader pass (docs/benchmarks.md, 'Full run of bench-mount.sh'): N files of 100 KiB
# (default 5000) in Garage, cache filled by `cache prefetch`, two passes of 8 threads on fresh mounts with
# the page cache dropped, then the same over the local files. PERF=1: `perf record -a -g` of the second
# pass into /tmp/p3.data. Root; needs garage, perf, the repo's .venv (boto3 not needed).
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
S=s3://bench/p3
$PY $T files $W/src $((100*1024)) ${N:-5000} 200 > /dev/null
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push features/dl $W/src -m p >/dev/null 2>&1
$A --store $S --cache-dir $W/c cache prefetch features/dl@1 >/dev/null 2>&1
(cd $W/src && find . -type f | sed 's|^\./||' > $W/list)
for round in 1 2; do
$A --store $S --cache-dir $W/c mount $W/mnt >/dev/null
PID=$(pgrep -f "mount.*$W/mnt" | head -1)
sync; echo 3 > /proc/sys/vm/drop_caches
if [ $round = 2 ] && [ -n "$PERF" ]; then perf record -a -F 2999 -g -o /tmp/p3.data -- sleep 2 > /dev/null 2>&1 & PP=$!; fi
$PY $T loader $W/mnt/features/dl@1 $W/list 8 1
[ -n "$PP" ] && wait $PP
cat /proc/$PID/stat | awk '{print "daemon utime", $14, "stime", $15}'
$A unmount $W/mnt
done
sync; echo 3 > /proc/sys/vm/drop_caches
$PY $T loader $W/src $W/list 8 1
