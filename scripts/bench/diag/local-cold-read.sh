#!/bin/bash
# Cold sequential `cat` of a 1 GiB file (MIB) through a mount of a `file://` store on the same disk (fresh
# mount, empty cache, page cache dropped), against `cat` of the version's packs in write order, ROUNDS (3) rounds; for
# each mount read: daemon CPU, the disk's requests (/proc/diskstats: count, mean size, mean in flight), the
# machine's busy and iowait share (/proc/stat) and the daemon's VmHWM. ASSETFS_BIN_B: a second build (A/B), first in even rounds.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
source "$(dirname "${BASH_SOURCE[0]}")/local-env.sh"
B=${ASSETFS_BIN_B:-}
# The disk under /tmp (a partition's parent disk).
DEV=${DIAG_DISK:-$(basename "$(df --output=source /tmp | tail -1)")}
[ -e "/sys/block/$DEV" ] || DEV=$(lsblk -no pkname "/dev/$DEV")
ds() { awk -v d="$DEV" '$3==d {print $4, $6, $14}' /proc/diskstats; }
for round in $(seq "${ROUNDS:-3}"); do
  for X in $(ab_order "$round" "$A" "$B"); do
    rm -rf "$W/c"; sync; echo 3 >/proc/sys/vm/drop_caches
    "$X" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
    PID=$(pgrep -f "mount.*$W/mnt" | head -1)
    ls -la "$W/mnt/models/big@1/big.bin" >/dev/null
    read -r r0 s0 w0 < <(ds); c0=($(head -1 /proc/stat)); t0=$(date +%s%N)
    cat "$W/mnt/models/big@1/big.bin" >/dev/null
    t1=$(date +%s%N); read -r r1 s1 w1 < <(ds); c1=($(head -1 /proc/stat))
    ms=$(( (t1 - t0) / 1000000 )); n=$(( r1 - r0 > 0 ? r1 - r0 : 1 ))
    tot=0; for k in 1 2 3 4 5 6 7 8; do tot=$(( tot + c1[k] - c0[k] )); done
    idle=$(( c1[4] - c0[4] + c1[5] - c0[5] ))
    echo "mount $X: $(( MIB * 1000 / ms )) MiB/s; daemon CPU $(awk '{print ($14 + $15) / 100}' /proc/"$PID"/stat) s;" \
      "disk reads $((r1 - r0)) of $(( (s1 - s0) / 2 / n )) KiB, in flight $(echo "scale=1; ($w1 - $w0) / $ms" | bc);" \
      "machine busy $(( 100 * (tot - idle) / tot ))%, iowait $(( 100 * (c1[5] - c0[5]) / tot ))%; $(grep VmHWM /proc/"$PID"/status | tr -s ' \t' ' ')"
    "$X" unmount "$W/mnt" >/dev/null
  done
  sync; echo 3 >/proc/sys/vm/drop_caches
  c0=($(head -1 /proc/stat)); t0=$(date +%s%N)
  ls -tr "$W"/store/packs/* | xargs cat >/dev/null
  t1=$(date +%s%N); c1=($(head -1 /proc/stat))
  tot=0; for k in 1 2 3 4 5 6 7 8; do tot=$(( tot + c1[k] - c0[k] )); done
  idle=$(( c1[4] - c0[4] + c1[5] - c0[5] ))
  echo "cat of the packs: $(( MIB * 1000 * 1000000 / (t1 - t0) )) MiB/s;" \
    "machine busy $(( 100 * (tot - idle) / tot ))%, iowait $(( 100 * (c1[5] - c0[5]) / tot ))%"
done
