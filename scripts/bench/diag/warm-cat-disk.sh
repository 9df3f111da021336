#!/bin/bash
# Warm sequential `cat` of a 1 GiB file (MIB) through the mount (disk cache full, page cache dropped, fresh
# mount), against a local `cat` and fio (1 MiB, 4 jobs, psync) of the same bytes, 3 rounds; for each, the
# disk's requests from /proc/diskstats: how many, their mean size, the mean number in flight, busy time.
# ASSETFS_BIN_B: a second build, read beside the first in every round, first in even rounds (A/B). FILL=mount fills the cache
# by a cold read through the mount (as bench-mount.sh does), else by `cache prefetch`. Root; Garage on loopback.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
B=${ASSETFS_BIN_B:-}
MIB=${MIB:-1024}
# The disk under /tmp (a partition's parent disk).
DEV=${DIAG_DISK:-$(basename "$(df --output=source /tmp | tail -1)")}
[ -e "/sys/block/$DEV" ] || DEV=$(lsblk -no pkname "/dev/$DEV")
S=s3://bench/warm
push_big "$MIB" $S
if [ "${FILL:-prefetch}" = mount ]; then
  fill_by_cat $S
else
  "$A" --store $S --cache-dir "$W/c" cache prefetch models/big@1 >/dev/null 2>&1
fi
ds() { awk -v d="$DEV" '$3==d {print $4, $6, $14, $13}' /proc/diskstats; }
run() { # LABEL CMD...: timed, page cache dropped first
  local l=$1; shift; sync; echo 3 >/proc/sys/vm/drop_caches
  local r0 s0 w0 i0 r1 s1 w1 i1 t0 t1 ms n
  read -r r0 s0 w0 i0 < <(ds); t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); read -r r1 s1 w1 i1 < <(ds)
  ms=$(( (t1 - t0) / 1000000 )); n=$(( r1 - r0 > 0 ? r1 - r0 : 1 ))
  echo "$l: $(( MIB * 1000 / ms )) MiB/s; disk reads $((r1 - r0)) of $(( (s1 - s0) / 2 / n )) KiB; in flight $(echo "scale=2; ($w1 - $w0) / $ms" | bc); busy $(( (i1 - i0) * 100 / ms ))%"
}
for round in 1 2 3; do
  for X in $(ab_order "$round" "$A" "$B"); do
    "$X" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    ls -la "$W/mnt/models/big@1/big.bin" >/dev/null
    run "mount cat $X" cat "$W/mnt/models/big@1/big.bin"
    echo "  daemon CPU $(awk '{print ($14 + $15) / 100}' /proc/"$PID"/stat) s"
    "$X" unmount "$W/mnt" >/dev/null
  done
  run "local cat" cat "$W/src/big.bin"
  sync; echo 3 >/proc/sys/vm/drop_caches
  fio --name=seq --filename="$W/src/big.bin" --readonly --rw=read --bs=1M --numjobs=4 --offset_increment=$((MIB / 4))M \
    --size=$((MIB / 4))M --ioengine=psync --group_reporting 2>/dev/null | grep -E 'READ:' | sed 's/^ */fio 4 jobs: /'
done
