#!/usr/bin/env bash
# The main job on the default local store (~/.local/share/assetfs/store):
# push a feature snapshot and a model trained on it, inspect them, mount the
# catalog, read the model through plain file I/O, and unmount.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
A="$PWD/target/release/assetfs"
work=$(mktemp -d)
mnt="$work/mnt"
cleanup() {
  "$A" unmount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== sample data in $work"
mkdir -p "$work/clicks" "$work/model/weights" "$mnt"
python3 - "$work" <<'PY'
import json, os, random, sys
w = sys.argv[1]
random.seed(7)
with open(f"{w}/clicks/part-0.csv", "w") as f:
    f.write("user,item,clicked\n")
    for _ in range(2000):
        f.write(f"{random.randrange(500)},{random.randrange(100)},{random.randrange(2)}\n")
with open(f"{w}/model/weights/layer0.bin", "wb") as f:
    f.write(os.urandom(3 << 20))
json.dump({"layers": 1, "hidden": 64}, open(f"{w}/model/config.json", "w"))
open(f"{w}/model/train.log", "w").write("epoch 1 loss 0.41\nepoch 2 loss 0.33\n")
json.dump({"metrics": {"auc": 0.81}, "context": {"framework": "numpy", "command": "python train.py"}},
          open(f"{w}/meta.json", "w"))
PY

echo "== assetfs init"
"$A" init
echo "== push a feature snapshot, then a model built from it"
"$A" push features/clicks "$work/clicks" -m "clicks snapshot"
"$A" push models/ranker "$work/model" -m "first ranker" --input features/clicks \
  --meta-file "$work/meta.json" --meta owner=demo --alias production
echo "== ls / log / show"
"$A" ls
"$A" log models/ranker
"$A" show models/ranker@production
echo "== mount"
"$A" mount "$mnt"
ls -l "$mnt/models"
echo "-- sidecar lineage:"
prod=$(readlink "$mnt/models/ranker@production")   # e.g. ranker@1
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lineage"])' "$mnt/models/$prod.json"
echo "-- config through the mount:"
cat "$mnt/models/ranker@latest/config.json"; echo
cmp "$mnt/models/ranker@latest/weights/layer0.bin" "$work/model/weights/layer0.bin" && echo "weights identical"
"$A" cache stats
"$A" unmount "$mnt"
echo "== verify"
"$A" verify models/ranker
