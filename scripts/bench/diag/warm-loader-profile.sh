#!/bin/bash
# Warm data-loader pass (docs/benchmarks.md, 'Full run of bench-mount.sh'): N files of 100 KiB
# (default 5000) in Garage, cache filled by `cache prefetch` (FILL=mount: by a cold pass through the mount, as
# bench-mount.sh fills it), ROUNDS (2) rounds of passes of 8 threads on fresh mounts with the page cache dropped,
# each round ending with the same pass over the local files; the machine's busy and iowait shares per pass.
# ASSETFS_BIN_B: a second build, passing beside the first in every round, first in even rounds (A/B).
# SEED_WARM (1): the warm passes' shuffle seed; the cold fill (FILL=mount) always reads in seed 1's order, so
# another seed reads the cache's records in an order unlike the one they were written in (a new epoch's shuffle).
# PERF=1: `perf record -a -g` of the first build's pass in round 2 into /tmp/p3.data. Root; needs garage,
# perf, the repo's .venv (boto3 not needed).
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
S=s3://bench/p3
$PY $T files $W/src $((100*1024)) ${N:-5000} 200 > /dev/null
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push features/dl $W/src -m p >/dev/null 2>&1
(cd $W/src && find . -type f | sed 's|^\./||' > $W/list)
if [ "${FILL:-}" = mount ]; then
  $A --store $S --cache-dir $W/c mount $W/mnt >/dev/null
  $PY $T loader $W/mnt/features/dl@1 $W/list 8 1 > /dev/null
  $A unmount $W/mnt > /dev/null
else
  $A --store $S --cache-dir $W/c cache prefetch features/dl@1 >/dev/null 2>&1
fi
for round in $(seq "${ROUNDS:-2}"); do
  for X in $(ab_order "$round" "$A" "${ASSETFS_BIN_B:-}"); do
    $X --store $S --cache-dir $W/c mount $W/mnt >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    sync; echo 3 > /proc/sys/vm/drop_caches
    PP=
    if [ $round = 2 ] && [ "$X" = "$A" ] && [ -n "${PERF:-}" ]; then perf record -a -F 2999 -g -o /tmp/p3.data -- sleep 2 > /dev/null 2>&1 & PP=$!; fi
    echo "$X:"; cpu_share $PY $T loader $W/mnt/features/dl@1 $W/list 8 "${SEED_WARM:-1}"
    if [ -n "$PP" ]; then wait $PP; fi
    awk '{print "  daemon utime", $14, "stime", $15}' /proc/$PID/stat
    $X unmount $W/mnt > /dev/null
  done
  sync; echo 3 > /proc/sys/vm/drop_caches
  echo "local:"; cpu_share $PY $T loader $W/src $W/list 8 "${SEED_WARM:-1}"
done
