"""Click probability from the model in the current directory (weights.npy).

    python3 predict.py INPUT.csv OUTPUT.npy

INPUT.csv has a header and the columns x1,x2,x3; OUTPUT.npy gets one
probability per row. This file ships inside the model version, so the
version's stored test runs it from the version directory."""

import sys

import numpy as np


def predict(x, params):
    w, b = params[:-1], params[-1]
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def main(inp, out):
    params = np.load("weights.npy")
    x = np.loadtxt(inp, delimiter=",", skiprows=1, ndmin=2)
    np.save(out, predict(x, params))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
