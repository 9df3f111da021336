"""Writes a tiny synthetic click data set: train.csv and holdout.csv with
three numeric features and a 0/1 label. Deterministic (seed 7)."""

import os
import sys

import numpy as np


def main(out_dir):
    rng = np.random.default_rng(7)
    true_w = np.array([1.5, -2.0, 0.5])
    x = rng.normal(size=(400, 3))
    clicked = (x @ true_w + 0.3 + rng.normal(scale=0.5, size=400) > 0).astype(int)
    os.makedirs(out_dir, exist_ok=True)
    for name, rows in [("train.csv", slice(0, 300)), ("holdout.csv", slice(300, 400))]:
        with open(os.path.join(out_dir, name), "w") as f:
            f.write("x1,x2,x3,clicked\n")
            for xi, yi in zip(x[rows], clicked[rows]):
                f.write(f"{xi[0]:.6f},{xi[1]:.6f},{xi[2]:.6f},{yi}\n")


if __name__ == "__main__":
    main(sys.argv[1])
