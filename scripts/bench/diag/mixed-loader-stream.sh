#!/bin/bash
# A cold 1 GiB sequential `dd` through the mount, alone and with a cold data-loader pass (8 threads, 20,000 files
# of 100 KiB of the same version, `mount-tools.py loader`) running beside it: the stream's MiB/s and the pass's
# files/s (over the whole pass, which outlasts the `dd`). ROUNDS (3); ASSETFS_BIN_B: a second build (A/B, order
# swapped in even rounds). Whole packs fetched for small files share the readahead budget with streams: this
# shows what the one costs the other. Root; needs garage, jq, bc and the repo's .venv.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
S=s3://bench/mix
$PY $T files "$W/src" 102400 20000 200 >/dev/null
head -c $((1024 << 20)) /dev/urandom > "$W/src/big.bin"
$A --store $S init >/dev/null 2>&1 || true
$A --store $S push features/mix "$W/src" -m p >/dev/null 2>&1
for r in $(seq "${ROUNDS:-3}"); do
  for X in $(ab_order "$r" "$A" "${ASSETFS_BIN_B:-}"); do
    for mode in alone mixed; do
      rm -rf "$W/c"; $X --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
      sync; echo 3 >/proc/sys/vm/drop_caches
      t0=$(date +%s.%N)
      if [ $mode = mixed ]; then $PY $T loader "$W/mnt/features/mix@1" "$W/src.list" 8 "$r" > "$W/l.json" & L=$!; fi
      dd if="$W/mnt/features/mix@1/big.bin" of=/dev/null bs=1M 2>/dev/null
      t1=$(date +%s.%N)
      lr=""
      if [ $mode = mixed ]; then wait $L; lr=$(jq -r '"loader \(.files / .seconds | floor) files/s"' "$W/l.json"); fi
      $X unmount "$W/mnt" >/dev/null
      awk -v l="$(basename "$X") $mode" -v s="$(echo "$t1 - $t0" | bc)" -v lr="$lr" 'BEGIN { printf "  %-28s stream %4.0f MiB/s  %s\n", l, 1024 / s, lr }'
    done
  done
done
