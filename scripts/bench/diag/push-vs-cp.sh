#!/bin/bash
# One large push against `cp`, by hand: RUNS (default 2) rounds of `cp` + sync, then `push` + sync into a
# fresh file:// store, page cache dropped before each; prints both and the push's user/sys CPU and max RSS.
# PERF=1 records the push instead (perf.data in the work dir's parent: /tmp/push-vs-cp.data). Root.
set -e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
W=$(mktemp -d /tmp/push-vs-cp.XXXX)
trap 'rm -rf $W' EXIT
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache ASSETFS_AUTHOR=bench
mkdir -p $HOME $W/big
head -c $((${MIB:-1024} << 20)) /dev/urandom > $W/big/big.bin
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
for i in $(seq "${RUNS:-2}"); do
  rm -f $W/cp.bin; drop; t0=$(date +%s.%N); cp $W/big/big.bin $W/cp.bin; sync; t1=$(date +%s.%N)
  rm -rf $W/s $W/c; $A --store file://$W/s --cache-dir $W/c init >/dev/null; drop
  t2=$(date +%s.%N)
  if [ -n "${PERF:-}" ]; then
    perf record -F 1999 -g -o /tmp/push-vs-cp.data -- $A --store file://$W/s --cache-dir $W/c push models/big $W/big >/dev/null
  else
    /usr/bin/time -f "push user %U s, sys %S s, max RSS %M KiB" $A --store file://$W/s --cache-dir $W/c push models/big $W/big >/dev/null
  fi
  t3=$(date +%s.%N); sync; t4=$(date +%s.%N)
  python3 -c "print(f'cp + sync {$t1-$t0:.3f} s; push {$t3-$t2:.3f} s, + sync {$t4-$t2:.3f} s; ratio {($t1-$t0)/($t4-$t2):.2f}x cp')"
done
