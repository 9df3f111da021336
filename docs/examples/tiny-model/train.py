"""Trains a logistic regression on a feature snapshot with plain numpy.

    python3 train.py FEATURES_DIR MODEL_DIR METRICS_JSON TESTS_JSON

Reads FEATURES_DIR/train.csv and holdout.csv (x1,x2,x3,clicked). Writes into
MODEL_DIR: weights.npy, predict.py, train.log, and a stored test case
(tests/input.csv and tests/expected.npy, the model's own predictions for five
holdout rows). Writes the holdout metrics to METRICS_JSON and the test
definition to TESTS_JSON (both outside the model: they go into the sidecar)."""

import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from predict import predict  # noqa: E402


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return data[:, :-1], data[:, -1]


def main(features, model, metrics_path, tests_path):
    x, y = load(os.path.join(features, "train.csv"))
    hx, hy = load(os.path.join(features, "holdout.csv"))
    os.makedirs(os.path.join(model, "tests"), exist_ok=True)
    params = np.zeros(x.shape[1] + 1)
    lr, epochs = 0.5, 200
    with open(os.path.join(model, "train.log"), "w") as log:
        for epoch in range(epochs):
            p = predict(x, params)
            grad_w = x.T @ (p - y) / len(y)
            grad_b = np.mean(p - y)
            params -= lr * np.append(grad_w, grad_b)
            if epoch % 20 == 0 or epoch == epochs - 1:
                loss = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
                log.write(f"epoch {epoch:3d} loss {loss:.6f}\n")
    np.save(os.path.join(model, "weights.npy"), params)
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "predict.py"), model)

    hp = predict(hx, params)
    metrics = {
        "accuracy": round(float(np.mean((hp > 0.5) == hy)), 4),
        "log_loss": round(float(-np.mean(hy * np.log(hp) + (1 - hy) * np.log(1 - hp))), 4),
        "epochs": epochs,
    }
    with open(metrics_path, "w") as f:
        json.dump(metrics, f)

    with open(os.path.join(model, "tests", "input.csv"), "w") as f:
        f.write("x1,x2,x3\n")
        for row in hx[:5]:
            f.write(",".join(f"{v:.6f}" for v in row) + "\n")
    sample = np.loadtxt(os.path.join(model, "tests", "input.csv"), delimiter=",", skiprows=1, ndmin=2)
    np.save(os.path.join(model, "tests", "expected.npy"), predict(sample, params))
    tests = [{
        "name": "holdout-sample",
        "command": "python3 predict.py {input} {output}",
        "input": "tests/input.csv",
        "expected": "tests/expected.npy",
        "compare": {"mode": "numeric", "tolerance": 1e-9},
    }]
    with open(tests_path, "w") as f:
        json.dump(tests, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:5])
