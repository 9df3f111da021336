#!/usr/bin/env python3
"""Sums up a mount log written with ASSETFS_LOG=assetfs::mount::readahead=trace,assetfs::mount::reader=trace
(warm-cat-trace.sh): how many READs waited for their chunks and where in the file the long waits were, and the
readahead reads of the disk cache (`disk run`): their size and how long each waited for a read slot, a blocking
thread, the disk and the checks."""
import re
import sys

FIELDS = re.compile(r"(\w+)=(\d+)")


def quantiles(values):
    v = sorted(values)
    n = len(v)
    return f"p50 {v[n // 2]} p90 {v[int(n * 0.9)]} max {v[-1]}" if n else "none"


def main(path):
    waits, runs, reads, topups = [], [], 0, 0
    for line in open(path):
        f = dict(FIELDS.findall(line))
        if "read served" in line:
            waits.append((int(f["offset"]), int(f["wait_us"])))
        elif "disk run" in line:
            runs.append(f)
        elif "top-up" in line:
            topups += 1
        elif "readahead: read " in line and "in_window" in line:
            reads += 1
    long = [(o, w) for o, w in waits if w > 1000]
    print(f"{reads} READs, {len(long)} waited over 1 ms ({sum(w for _, w in long) / 1000:.0f} ms in all, "
          f"overlapping); wait {quantiles([w for _, w in waits])} us; {topups} top-ups")
    print("  long waits, offset MiB:ms: " + " ".join(f"{o >> 20}:{w // 1000}" for o, w in long))
    print(f"{len(runs)} reads of the disk cache; " + "; ".join(
        f"{k} {quantiles([int(r[k]) for r in runs])}" for k in ["bytes", "slot_us", "thread_us", "read_us", "check_us"]))


if __name__ == "__main__":
    main(sys.argv[1])
