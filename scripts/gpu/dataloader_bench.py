"""Feed a PyTorch DataLoader (8 workers) from a directory of .npy arrays into
the GPU and report samples/s. Used by scripts/gpu/run.sh on the GPU node."""
import json
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class NpyDir(Dataset):
    def __init__(self, root):
        self.files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".npy")
        )

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return torch.from_numpy(np.load(self.files[i]))


def run(root, label):
    ds = NpyDir(root)
    dl = DataLoader(ds, batch_size=64, num_workers=8, shuffle=False, pin_memory=True)
    dev = torch.device("cuda")
    total = torch.zeros((), device=dev)
    n = 0
    t0 = time.perf_counter()
    for batch in dl:
        b = batch.to(dev, non_blocking=True)
        total += b.float().sum()
        n += b.shape[0]
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"label": label, "samples": n, "seconds": round(dt, 3), "samples_per_s": round(n / dt, 1),
           "checksum": float(total.item())}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
