#!/usr/bin/env bash
# GPU-node check (issue 3): push ~2 GiB of NumPy arrays into a file:// store,
# mount it, and feed a PyTorch DataLoader (8 workers) from the mount into the
# GPU; compare samples/s with the same loader over the same files on local disk.
# Usage: scripts/gpu/run.sh ASSETFS_BINARY [N_FILES] [FLOATS_PER_FILE]
set -euo pipefail
A=$(realpath "$1"); N=${2:-20000}; FLOATS=${3:-25600}   # 20,000 x 100 KiB = ~2 GiB
here=$(dirname "$(realpath "$0")")
W=$(mktemp -d /tmp/assetfs-gpu.XXXX)
export HOME=$W/home XDG_CACHE_HOME=$W/xdg-cache XDG_DATA_HOME=$W/xdg-data
mkdir -p "$HOME" "$W/mnt"
S="file://$W/store"
cleanup() { "$A" unmount "$W/mnt" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(cannot drop page cache)"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c 'import torch, numpy; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "numpy", numpy.__version__)' || true
echo "== generate $N arrays"
python3 - "$W/data" "$N" "$FLOATS" <<'PY'
import os, sys, numpy as np
root, n, floats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for i in range(n):
    d = os.path.join(root, f"shard{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, f"x{i:06d}.npy"), rng.standard_normal(floats, dtype=np.float32))
PY
du -sh "$W/data"
echo "== push"
"$A" --store "$S" init >/dev/null
/usr/bin/time -f "push: %e s, max RSS %M KiB" "$A" --store "$S" --json push features/gpuset "$W/data" -m gpu-bench | tr -d '\n'; echo
echo "== local disk, page cache dropped"
drop; python3 "$here/dataloader_bench.py" "$W/data" local-cold
echo "== local disk, page cache warm"
python3 "$here/dataloader_bench.py" "$W/data" local-warm
echo "== mount, empty cache (cold)"
"$A" --store "$S" --cache-dir "$W/cache" mount "$W/mnt" --cache-size 8G
drop; python3 "$here/dataloader_bench.py" "$W/mnt/features/gpuset@1" mount-cold
pid=$(pgrep -f "assetfs.*mount $W/mnt" | head -1 || true)
[ -n "$pid" ] && grep VmHWM /proc/$pid/status | sed 's/^/daemon /'
"$A" unmount "$W/mnt"
echo "== remount, disk cache warm, page cache dropped"
"$A" --store "$S" --cache-dir "$W/cache" mount "$W/mnt" --cache-size 8G
drop; python3 "$here/dataloader_bench.py" "$W/mnt/features/gpuset@1" mount-warm
echo "== same mount again (page cache warm)"
python3 "$here/dataloader_bench.py" "$W/mnt/features/gpuset@1" mount-hot
pid=$(pgrep -f "assetfs.*mount $W/mnt" | head -1 || true)
[ -n "$pid" ] && grep VmHWM /proc/$pid/status | sed 's/^/daemon /'
"$A" --cache-dir "$W/cache" cache stats
