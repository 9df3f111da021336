#!/usr/bin/env python3
"""Builds the store of the lifecycle benchmark (scripts/bench-core.sh part 7) with the real binary.

  lifecycle_store.py BIN STORE_URL CACHE_DIR WORK_DIR ASSETS VERSIONS NEW CARRY GC_EVERY DELETE_EVERY

ASSETS assets (models/a00, ...) get VERSIONS versions each, pushed round-robin. A version holds NEW
tiny files of its own (16-40 bytes, unique content: one chunk each) plus CARRY files carried over
from the previous version of the same asset, so consecutive versions share chunks and a pack of a
deleted version can still hold live chunks. `gc --grace 0s` runs every GC_EVERY pushes, as a cron
job would (it compacts the chunk index, which keeps each push's index reads bounded). At the end,
every DELETE_EVERY-th version of every asset is deleted (`rm --force`), and nothing is collected
yet. Prints JSON: pushes, versions deleted, chunks stored, files, seconds.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time


def run(cmd):
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"lifecycle_store.py: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return out.stdout


def main(argv):
    binary, url, cache, work = argv[1:5]
    assets, versions, new, carry, gc_every, delete_every = map(int, argv[5:11])
    rng = random.Random(42)
    base = [binary, "--json", "--store", url, "--cache-dir", cache]
    t0 = time.monotonic()
    prev = {}
    chunks = files = pushes = 0
    for v in range(1, versions + 1):
        for a in range(assets):
            d = os.path.join(work, f"a{a:02d}-v{v}")
            os.makedirs(d)
            for i in range(new):
                with open(os.path.join(d, f"n{i:05d}"), "w") as f:
                    f.write(f"{a}/{v}/{i}/{rng.getrandbits(8 * rng.randint(4, 14)):x}")
            p = prev.get(a)
            if p:
                for i in range(min(carry, new)):
                    shutil.copyfile(os.path.join(p, f"n{i:05d}"), os.path.join(d, f"c{i:05d}"))
            out = json.loads(run(base + ["push", f"models/a{a:02d}", d]))
            chunks += out["new_chunks"]
            files += out["files"]
            pushes += 1
            if p:
                shutil.rmtree(p)
            prev[a] = d
            if gc_every and pushes % gc_every == 0:
                run(base + ["gc", "--grace", "0s"])
    for p in prev.values():
        shutil.rmtree(p)
    deleted = 0
    for a in range(assets):
        for v in range(delete_every, versions + 1, delete_every):
            run(base + ["rm", f"models/a{a:02d}@{v}", "--yes", "--force", "-m", "benchmark"])
            deleted += 1
    print(json.dumps({"pushes": pushes, "deleted": deleted, "chunks": chunks, "files": files,
                      "seconds": round(time.monotonic() - t0, 1)}))


if __name__ == "__main__":
    main(sys.argv)
