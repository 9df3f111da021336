#!/usr/bin/env bash
# From a feature snapshot to a trained tiny model that carries its context:
# lineage (which snapshot trained it), metrics, run context, its training log
# and a stored input/output test; then the checks a reviewer would run.
#
#   docs/examples/train-with-lineage.sh [WORK_DIR]
#
# Needs `assetfs` on PATH and `python3` with numpy (PYTHON overrides the
# interpreter used for training; the stored test runs `python3`). Uses the
# store in ASSETFS_STORE (or assetfs's default store).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${PYTHON:-python3}
work=${1:-$(mktemp -d)}
mkdir -p "$work"

assetfs init >/dev/null   # creates the store if missing; every other command needs it
echo "== 1. a feature snapshot, with how its data was chosen"
"$py" "$here/tiny-model/make_features.py" "$work/features"
assetfs push features/example-clicks "$work/features" -m "synthetic clicks" \
  --source "synthetic: 400 rows from make_features.py (seed 7); 300 train, 100 holdout" \
  --alias example

echo "== 2. train on exactly that snapshot"
assetfs get features/example-clicks@example "$work/train-input"
"$py" "$here/tiny-model/train.py" "$work/train-input" "$work/model" \
  "$work/metrics.json" "$work/tests.json"
numpy_version=$("$py" -c 'import numpy; print(numpy.__version__)')
assetfs push models/example-ranker "$work/model" -m "logistic regression on example clicks" \
  --input features/example-clicks@example \
  --framework "numpy $numpy_version" \
  --command "python3 train.py FEATURES_DIR MODEL_DIR metrics.json tests.json" \
  --log train.log \
  --metrics-file "$work/metrics.json" \
  --tests-file "$work/tests.json"

echo "== 3. what a reviewer checks"
assetfs log models/example-ranker
assetfs lineage models/example-ranker
assetfs lineage --used-by features/example-clicks@example
assetfs test models/example-ranker
assetfs alias models/example-ranker production --require-tests
assetfs show models/example-ranker@production
