#!/usr/bin/env python3
"""Test-data generators and in-place edits for scripts/bench-core.sh.

  gen.py small DIR COUNT MIN_KIB MAX_KIB SEED   COUNT files of random size in [MIN_KIB, MAX_KIB] KiB,
                                                random content, 100 per subdirectory
  gen.py many DIR DIRS PER_DIR                  DIRS x PER_DIR tiny files (16-40 bytes, unique content)
  gen.py overwrite FILE RUNS PERCENT            overwrite RUNS evenly spread contiguous runs, together
                                                PERCENT % of FILE, with random bytes (in place); prints JSON
  gen.py insert SRC DST KIB                     DST = SRC with KIB KiB of random bytes inserted at the
                                                middle (offset = size // 2); prints JSON

File sizes of `small` come from SEED and edit offsets are fixed, so runs are comparable; contents
come from os.urandom (random, so nothing compresses or deduplicates by accident).
"""
import json
import os
import random
import sys


def small(root, count, min_kib, max_kib, seed):
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        d = os.path.join(root, f"d{i // 100:04d}")
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        size = rng.randint(min_kib * 1024, max_kib * 1024)
        with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
            f.write(os.urandom(size))
        total += size
    print(json.dumps({"files": count, "bytes": total}))


def many(root, dirs, per_dir):
    salt = os.urandom(4).hex()
    n = 0
    for d in range(dirs):
        dp = os.path.join(root, f"d{d:04d}")
        os.makedirs(dp)
        for i in range(per_dir):
            fd = os.open(os.path.join(dp, f"f{i:04d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            # Unique content per file (so every file has its own chunk hash in the manifest).
            os.write(fd, f"{salt} {d} {i}\n".encode())
            os.close(fd)
            n += 1
    print(json.dumps({"files": n, "dirs": dirs}))


def overwrite(path, runs, percent):
    size = os.path.getsize(path)
    changed = int(size * percent / 100)
    run_len = changed // runs
    stride = size // runs
    offsets = []
    with open(path, "r+b") as f:
        for i in range(runs):
            # Centre of each run at the middle of its 1/RUNS slice of the file.
            off = i * stride + stride // 2 - run_len // 2
            f.seek(off)
            f.write(os.urandom(run_len))
            offsets.append(off)
    print(json.dumps({"size": size, "runs": runs, "run_len": run_len,
                      "changed_bytes": run_len * runs, "offsets": offsets}))


def insert(src, dst, kib):
    size = os.path.getsize(src)
    mid = size // 2
    buf = 8 << 20
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = mid
        while left:
            b = fi.read(min(buf, left))
            fo.write(b)
            left -= len(b)
        fo.write(os.urandom(kib * 1024))
        while True:
            b = fi.read(buf)
            if not b:
                break
            fo.write(b)
    print(json.dumps({"size": size + kib * 1024, "inserted_bytes": kib * 1024, "offset": mid}))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "small":
        small(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "many":
        many(args[0], int(args[1]), int(args[2]))
    elif cmd == "overwrite":
        overwrite(args[0], int(args[1]), float(args[2]))
    elif cmd == "insert":
        insert(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
