#!/bin/bash
# Daemon memory streaming MIB (default 1024) MiB from a file:// store, cold: samples RssAnon and RssFile
# (mapped pack pages count in VmHWM) and prints VmHWM. Root.
set -e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
W=$(mktemp -d /tmp/p8.XXXX)
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
S=file://$W/store
mkdir -p $HOME $W/mnt $W/src
cleanup() { $A unmount $W/mnt >/dev/null 2>&1 || umount -l $W/mnt 2>/dev/null || true; rm -rf $W; }
trap cleanup EXIT
head -c $((${MIB:-1024}<<20)) /dev/urandom > $W/src/big.bin
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push models/big $W/src -m p >/dev/null 2>&1
rm -rf $W/src
sync; echo 3 > /proc/sys/vm/drop_caches
$A --store $S --cache-dir $W/c mount $W/mnt >/dev/null
PID=$(pgrep -f "mount.*$W/mnt" | head -1)
( maxa=0; maxf=0; while kill -0 $PID 2>/dev/null && [ ! -e $W/done ]; do a=$(awk '/RssAnon/{print $2}' /proc/$PID/status); f=$(awk '/RssFile/{print $2}' /proc/$PID/status); [ "$a" -gt $maxa ] && maxa=$a; [ "$f" -gt $maxf ] && maxf=$f; sleep 0.05; done; echo "max RssAnon $((maxa/1024)) MiB, max RssFile $((maxf/1024)) MiB" ) &
SP=$!
T0=$(date +%s.%N); cat $W/mnt/models/big@1/big.bin > /dev/null; T1=$(date +%s.%N)
touch $W/done; wait $SP
echo "MiB/s $(echo "${MIB:-1024} / ($T1 - $T0)" | bc)"
grep -E 'VmHWM' /proc/$PID/status
