#!/usr/bin/env python3
"""Helpers for scripts/bench-mount.sh (written for it; nothing here is assetfs-specific).

  mount-tools.py tree DIR DIRS PER_DIR SEED        DIRS x PER_DIR tiny files of 1-100 random bytes
                                                   (DIR/dNNNN/fNNNNNN), sizes from SEED; prints JSON
  mount-tools.py put BUCKET KEY FILE               upload FILE as one plain object (boto3 managed upload)
  mount-tools.py rawget BUCKET PREFIX RANGE_KIB CONC
                                                   ranged GETs of every object under PREFIX/ (RANGE_KIB
                                                   ranges, CONC requests in flight, bytes discarded);
                                                   prints JSON: objects, requests, bytes, seconds
  mount-tools.py ttfb-get BUCKET KEY               one GET of bytes 0-4095 of KEY with a fresh client;
                                                   prints seconds from the request to the body read
  mount-tools.py ttfb FILE                         seconds from open(FILE) to the first 4 KiB read returning

S3 endpoint and keys come from the AWS_* environment (AWS_ENDPOINT_URL or AWS_ENDPOINT). Timings are
taken inside Python with time.perf_counter, after imports and client creation.
"""
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def s3client(conc=10):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or os.environ["AWS_ENDPOINT"],
        config=Config(max_pool_connections=max(conc, 10), s3={"addressing_style": "path"},
                      retries={"max_attempts": 3, "mode": "standard"}),
    )


def tree(root, dirs, per_dir, seed):
    rng = random.Random(seed)
    total = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for d in range(dirs):
        dp = os.path.join(root, f"d{d:04d}")
        os.makedirs(dp, exist_ok=True)
        for i in range(per_dir):
            size = rng.randint(1, 100)
            fd = os.open(os.path.join(dp, f"f{d * per_dir + i:07d}"), flags, 0o644)
            os.write(fd, rng.randbytes(size))
            os.close(fd)
            total += size
    return {"files": dirs * per_dir, "bytes": total}


def put(bucket, key, path):
    from boto3.s3.transfer import TransferConfig

    s3 = s3client()
    t = time.perf_counter()
    s3.upload_file(path, bucket, key,
                   Config=TransferConfig(multipart_chunksize=64 << 20, max_concurrency=4))
    return {"key": key, "bytes": os.path.getsize(path), "seconds": time.perf_counter() - t}


def rawget(bucket, prefix, range_kib, conc):
    s3 = s3client(conc)
    objs = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    for page in pages:
        objs += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    step = range_kib * 1024
    reqs = [(k, off, min(off + step, size) - 1) for k, size in objs for off in range(0, size, step)]

    def get(r):
        k, a, b = r
        body = s3.get_object(Bucket=bucket, Key=k, Range=f"bytes={a}-{b}")["Body"]
        n = 0
        while True:
            part = body.read(1 << 20)
            if not part:
                break
            n += len(part)
        if n != b - a + 1:
            raise SystemExit(f"{k} bytes={a}-{b}: got {n} bytes")
        return n

    t = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        total = sum(ex.map(get, reqs))
    secs = time.perf_counter() - t
    return {"objects": len(objs), "requests": len(reqs), "bytes": total, "seconds": secs}


def ttfb_get(bucket, key):
    s3 = s3client()
    t = time.perf_counter()
    data = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-4095")["Body"].read()
    secs = time.perf_counter() - t
    assert len(data) == 4096, len(data)
    return {"seconds": secs}


def ttfb(path):
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    data = os.read(fd, 4096)
    secs = time.perf_counter() - t
    os.close(fd)
    assert len(data) == 4096, len(data)
    return {"seconds": secs}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "tree":
        out = tree(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "put":
        out = put(*args)
    elif cmd == "rawget":
        out = rawget(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "ttfb-get":
        out = ttfb_get(*args)
    elif cmd == "ttfb":
        out = ttfb(args[0])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
