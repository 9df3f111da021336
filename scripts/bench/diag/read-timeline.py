#!/usr/bin/env python3
"""Sums up a mount log written with ASSETFS_LOG=assetfs::mount::reader=trace,assetfs::mount::readahead=trace
(local-read-trace.sh): the local pack reads (when each read ran and how long its hashing took), the READs that waited
for their chunks, and the top-ups. --timeline: one line per 2 ms with the packs being read (R), being hashed (H) and
the READs waiting (W)."""
import re
import sys
from datetime import datetime

STAMP = re.compile(r"^(\S+Z)")
FIELDS = re.compile(r"(\w+)=(\d+)")


def micros(line):
    stamp = STAMP.match(line).group(1)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e6


def main(path, timeline):
    packs, waits, topups = [], [], 0
    for line in open(path):
        if "local pack read" in line:
            f = dict(FIELDS.findall(line))
            end = micros(line)
            hashed, read = int(f["hash_us"]), int(f["read_us"])
            packs.append((end - hashed - read, end - hashed, end))
        elif "read served" in line:
            f = dict(FIELDS.findall(line))
            end = micros(line)
            waits.append((end - int(f["wait_us"]), end))
        elif "top-up" in line:
            topups += 1
    if not packs:
        sys.exit(f"{path}: no 'local pack read' events (was the store file:// and the trace on?)")
    packs.sort()
    t0, t1 = packs[0][0], max(p[2] for p in packs)
    edges = sorted([(p[0], 1) for p in packs] + [(p[1], -1) for p in packs])
    busy = both = 0.0
    cur, last = 0, edges[0][0]
    for t, d in edges:
        if cur > 0:
            busy += t - last
        if cur > 1:
            both += t - last
        cur += d
        last = t
    span = t1 - t0
    n = len(packs)
    waited = [w for w in waits if w[1] - w[0] > 1000]
    print(f"{n} pack reads over {span / 1000:.0f} ms: the disk was reading {busy / span:.0%} of it "
          f"(two at once {both / span:.0%}); mean read {sum(p[1] - p[0] for p in packs) / n / 1000:.1f} ms, "
          f"mean hash {sum(p[2] - p[1] for p in packs) / n / 1000:.1f} ms")
    print(f"{len(waits)} READs, {len(waited)} waited over 1 ms ({sum(w[1] - w[0] for w in waited) / 1000:.0f} ms "
          f"in all, overlapping); {topups} top-ups")
    if timeline:
        step = 2000
        for i in range(int(span // step) + 1):
            a, b = t0 + i * step, t0 + (i + 1) * step
            r = sum(1 for p in packs if p[0] < b and p[1] > a)
            h = sum(1 for p in packs if p[1] < b and p[2] > a)
            w = sum(1 for x in waits if x[0] < b and x[1] > a and x[1] - x[0] > 500)
            print(f"{i * 2:5d} ms  R{r} H{h} W{w}")


if __name__ == "__main__":
    main(sys.argv[1], "--timeline" in sys.argv[2:])
