#!/usr/bin/env python3
"""Helpers for scripts/bench-mount.sh (written for it; nothing here is assetfs-specific).

  mount-tools.py tree DIR DIRS PER_DIR SEED        DIRS x PER_DIR tiny files of 1-100 random bytes
                                                   (DIR/dNNNN/fNNNNNN), sizes from SEED; prints JSON
  mount-tools.py put BUCKET KEY FILE               upload FILE as one plain object (boto3 managed upload)
  mount-tools.py rawget BUCKET PREFIX RANGE_KIB CONC
                                                   ranged GETs of every object under PREFIX/ (RANGE_KIB
                                                   ranges, CONC requests in flight, bytes discarded);
                                                   prints JSON: objects, requests, bytes, seconds
  mount-tools.py rawget-curl BUCKET PREFIX RANGE_KIB CONC
                                                   the same ranged GETs by one `curl --parallel` process
                                                   (CONC transfers at once, SigV4 signed by curl, bodies to
                                                   /dev/null); prints the same JSON
  mount-tools.py ttfb-get BUCKET KEY               one GET of bytes 0-4095 of KEY with a fresh client;
                                                   prints seconds from the request to the body read
  mount-tools.py ttfb FILE                         seconds from open(FILE) to the first 4 KiB read returning
  mount-tools.py getall BUCKET KEY                 one plain GET of the whole object, read in 1 MiB pieces
                                                   (single stream); prints JSON: bytes, seconds
  mount-tools.py getall-curl BUCKET KEY            the same with one curl (body to /dev/null)
  mount-tools.py files DIR BYTES COUNT PER_DIR     COUNT files of BYTES random bytes (DIR/dNNNN/fNNNNNN.bin),
                                                   PER_DIR a directory; writes DIR.list (relative paths)
  mount-tools.py loader ROOT LIST THREADS SEED [N] DataLoader-style pass: every file named in LIST (paths
                                                   relative to ROOT) read whole, in a random order from SEED,
                                                   by THREADS threads (only the first N of that order when N
                                                   is given); prints JSON: files, bytes, seconds
  mount-tools.py readers FILE...                   one thread per FILE, each reading it sequentially in
                                                   1 MiB pieces, all at once; prints JSON: bytes, seconds
  mount-tools.py putdir DIR BUCKET PREFIX THREADS  upload every file under DIR as PREFIX/<relpath>, THREADS
                                                   at a time (one PutObject each)
  mount-tools.py sizes BUCKET PREFIX               number and total bytes of the objects under PREFIX/

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


def list_objects(s3, bucket, prefix):
    objs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        objs += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return objs


def curl_opts():
    """Per-transfer curl options: SigV4 with the AWS_* environment, fail on HTTP errors, body discarded."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return [
        f'aws-sigv4 = "aws:amz:{region}:s3"',
        f'user = "{os.environ["AWS_ACCESS_KEY_ID"]}:{os.environ["AWS_SECRET_ACCESS_KEY"]}"',
        # curl 7.88 does not add this header itself; Garage requires it.
        'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"',
        "fail",
        'output = "/dev/null"',
        'write-out = "%{http_code} %{size_download}\\n"',
    ]


def run_curl(blocks, conc):
    """Runs one curl process over BLOCKS (lists of config lines, one transfer each); returns (bytes, seconds)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".curlrc", delete=False) as cfg:
        cfg.write("\nnext\n".join("\n".join(b) for b in blocks) + "\n")
    try:
        cmd = ["curl", "-sS", "-K", cfg.name]
        if conc > 1:
            cmd[1:1] = ["--parallel", "--parallel-immediate", "--parallel-max", str(conc)]
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        secs = time.perf_counter() - t
    finally:
        os.unlink(cfg.name)
    lines = out.split()
    codes, sizes = lines[0::2], lines[1::2]
    if len(codes) != len(blocks) or any(c not in ("200", "206") for c in codes):
        raise SystemExit(f"curl: unexpected status codes {sorted(set(codes))} for {len(blocks)} transfers")
    return sum(int(x) for x in sizes), secs


def url_of(bucket, key):
    from urllib.parse import quote

    endpoint = (os.environ.get("AWS_ENDPOINT_URL") or os.environ["AWS_ENDPOINT"]).rstrip("/")
    return f"{endpoint}/{bucket}/{quote(key)}"


def rawget_curl(bucket, prefix, range_kib, conc):
    objs = list_objects(s3client(), bucket, prefix)
    step = range_kib * 1024
    blocks = []
    for k, size in objs:
        for off in range(0, size, step):
            blocks.append([f'url = "{url_of(bucket, k)}"', f'range = "{off}-{min(off + step, size) - 1}"'] + curl_opts())
    want = sum(size for _, size in objs)
    n, secs = run_curl(blocks, conc)
    if n != want:
        raise SystemExit(f"curl fetched {n} bytes, expected {want}")
    return {"objects": len(objs), "requests": len(blocks), "bytes": n, "seconds": secs}


def getall_curl(bucket, key):
    n, secs = run_curl([[f'url = "{url_of(bucket, key)}"'] + curl_opts()], 1)
    return {"bytes": n, "seconds": secs}


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


def getall(bucket, key):
    s3 = s3client()
    t = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    n = 0
    while True:
        part = body.read(1 << 20)
        if not part:
            break
        n += len(part)
    return {"bytes": n, "seconds": time.perf_counter() - t}


def files(root, size, count, per_dir):
    names = []
    for i in range(count):
        d = f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        rel = f"{d}/f{i:06d}.bin"
        with open(os.path.join(root, rel), "wb") as f:
            f.write(os.urandom(size))
        names.append(rel)
    with open(root.rstrip("/") + ".list", "w") as f:
        f.write("\n".join(names) + "\n")
    return {"files": count, "bytes": size * count}


def loader(root, listfile, threads, seed, limit=None):
    import itertools
    import threading

    with open(listfile) as f:
        names = [os.path.join(root, line.rstrip("\n")) for line in f if line.strip()]
    random.Random(seed).shuffle(names)
    if limit is not None:
        names = names[:limit]
    nxt = itertools.count()
    totals = [0] * threads
    errors = []

    def work(w):
        n = 0
        try:
            while True:
                i = next(nxt)
                if i >= len(names):
                    break
                # Read whole, as a dataset's __getitem__ does (np.load, torch.load, f.read()).
                with open(names[i], "rb", buffering=0) as f:
                    n += len(f.read())
        except Exception as e:  # reported below; the pass is invalid
            errors.append(repr(e))
        totals[w] = n

    ts = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    secs = time.perf_counter() - t
    if errors:
        raise SystemExit(f"loader: {len(errors)} errors, first: {errors[0]}")
    return {"files": len(names), "bytes": sum(totals), "seconds": secs}


def readers(paths):
    import threading

    totals = [0] * len(paths)

    def work(i):
        buf = bytearray(1 << 20)
        n = 0
        with open(paths[i], "rb", buffering=0) as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                n += k
        totals[i] = n

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(paths))]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return {"files": len(paths), "bytes": sum(totals), "per_file": totals, "seconds": time.perf_counter() - t}


def putdir(root, bucket, prefix, threads):
    s3 = s3client(threads)
    items = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            items.append((p, prefix.rstrip("/") + "/" + os.path.relpath(p, root)))

    def put(item):
        p, key = item
        with open(p, "rb") as f:
            body = f.read()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(put, items, chunksize=16))
    return {"files": len(items), "bytes": total, "seconds": time.perf_counter() - t}


def sizes(bucket, prefix):
    s3 = s3client()
    n = b = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for o in page.get("Contents", []):
            n += 1
            b += o["Size"]
    return {"objects": n, "bytes": b}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "tree":
        out = tree(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "put":
        out = put(*args)
    elif cmd == "rawget":
        out = rawget(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "rawget-curl":
        out = rawget_curl(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "getall-curl":
        out = getall_curl(*args)
    elif cmd == "ttfb-get":
        out = ttfb_get(*args)
    elif cmd == "ttfb":
        out = ttfb(args[0])
    elif cmd == "getall":
        out = getall(*args)
    elif cmd == "files":
        out = files(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "loader":
        out = loader(args[0], args[1], int(args[2]), int(args[3]), int(args[4]) if len(args) > 4 else None)
    elif cmd == "readers":
        out = readers(args)
    elif cmd == "putdir":
        out = putdir(args[0], args[1], args[2], int(args[3]))
    elif cmd == "sizes":
        out = sizes(*args)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
