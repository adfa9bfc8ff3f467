"""One plain torch pass per tensor (zeros, L2 norm, min, max, NaN, Inf): the baseline `inspect
--stats` is measured against. Run: `python benchmarks/baseline_stats.py FILE.safetensors`."""

from __future__ import annotations

import sys

import torch
from safetensors import safe_open


def main(path: str) -> dict[str, tuple]:
    out = {}
    with safe_open(path, framework="pt") as f:
        for n in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            w = f.get_tensor(n)
            out[n] = (int((w == 0).sum()), float(torch.linalg.vector_norm(w)), float(w.min()), float(w.max()),
                      int(torch.isnan(w).sum()), int(torch.isinf(w).sum()))
    return out


if __name__ == "__main__":
    print(len(main(sys.argv[1])))
