#!/bin/bash
# Bytes the daemon reads from its disk cache during a warm sequential `cat` of a MIB-MiB file (default 256),
# from `strace -e pread64` of the daemon: per file descriptor (direct readahead reads vs buffered reads), the
# number of reads, their mean size and the total. The cache is filled by a cold `cat` through the mount (as
# bench-mount.sh fills it). A total well above the file's size means records read twice. Root; needs strace.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
MIB=${MIB:-256}
S=s3://bench/reads
push_big "$MIB" $S
fill_by_cat $S
"$A" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
PID=$(pgrep -f "mount.*$W/mnt" | head -1)
sync; echo 3 > /proc/sys/vm/drop_caches
strace -f -e trace=pread64 -o "$W/strace.out" -p "$PID" 2>/dev/null &
SP=$!
sleep 1
cat "$W/mnt/models/big@1/big.bin" > /dev/null
kill $SP; wait $SP || true
"$A" unmount "$W/mnt" >/dev/null
python3 - "$W/strace.out" "$MIB" <<'PY'
import re, sys
pending, reads = {}, []
for line in open(sys.argv[1]):
    pid = line.split()[0]
    call = re.match(r'\d+ pread64\((\d+), ', line)
    if call and 'unfinished' in line:
        pending[pid] = call.group(1)
        continue
    fd = call.group(1) if call else (pending.pop(pid, '?') if 'pread64 resumed' in line else None)
    done = re.search(r'\.\.\., (\d+), (\d+)\) = (\d+)', line)
    if fd and done:
        reads.append((fd, int(done.group(3))))
for fd in sorted({f for f, _ in reads}):
    sizes = [n for f, n in reads if f == fd]
    print(f"fd {fd}: {len(sizes)} reads, mean {sum(sizes) / len(sizes) / 1024:.0f} KiB, {sum(sizes) / 2**20:.0f} MiB")
total = sum(n for _, n in reads)
print(f"total {total / 2**20:.0f} MiB read for a {sys.argv[2]} MiB file ({total / (int(sys.argv[2]) << 20):.2f}x)")
PY
