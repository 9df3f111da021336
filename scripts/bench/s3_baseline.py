#!/usr/bin/env python3
"""boto3 baseline for scripts/bench-core.sh: one S3 request per file, from a thread pool.

  s3_baseline.py up   DIR  BUCKET PREFIX THREADS   put_object every file under DIR as PREFIX/<relpath>
  s3_baseline.py down DIR  BUCKET PREFIX THREADS   list PREFIX/ (ListObjectsV2, 1,000 keys a page),
                                                   then get_object every key into DIR/<relpath>

Endpoint, region and keys come from the standard AWS_* environment (AWS_ENDPOINT_URL, ...).
One shared client (boto3 clients are thread-safe) with a connection pool as large as the thread
pool. put_object/get_object rather than upload_file/download_file: download_file would add a
HeadObject per file. Prints JSON: files, bytes, seconds (inside Python, after imports).
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(threads):
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or os.environ["AWS_ENDPOINT"],
        config=Config(max_pool_connections=threads, s3={"addressing_style": "path"},
                      retries={"max_attempts": 3, "mode": "standard"}),
    )


def up(root, bucket, prefix, threads):
    s3 = client(threads)
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files.append((p, os.path.relpath(p, root)))

    def put(item):
        p, rel = item
        with open(p, "rb") as f:
            body = f.read()
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=body)
        return len(body)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(put, files, chunksize=16))
    return {"files": len(files), "bytes": total, "seconds": time.perf_counter() - t}


def down(root, bucket, prefix, threads):
    s3 = client(threads)
    t = time.perf_counter()
    keys, pages = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        pages += 1
        keys.extend(o["Key"] for o in page.get("Contents", []))

    def get(key):
        rel = key[len(prefix) + 1:]
        dest = os.path.join(root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with open(dest, "wb") as f:
            f.write(body)
        return len(body)

    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(get, keys, chunksize=16))
    return {"files": len(keys), "bytes": total, "list_pages": pages,
            "seconds": time.perf_counter() - t}


def main(argv):
    cmd, root, bucket, prefix, threads = argv[1], argv[2], argv[3], argv[4].strip("/"), int(argv[5])
    out = {"up": up, "down": down}[cmd](root, bucket, prefix, threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
