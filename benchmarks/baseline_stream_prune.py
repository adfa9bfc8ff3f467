"""Plain streaming pruning of a bare safetensors file: the baseline dnnkit's weight-only prune is
measured against. No dnnkit import: safe_open, an exact global threshold by two radix passes over
float32 bit patterns (ties in natural name order, then by index), per-tensor kthvalue masks, and a
hand-written safetensors output (header first, then tensor by tensor), the same tensors dnnkit writes.

Methods: global (|w|), lamp (LAMP scores, one sort per tensor and pass), uniform (equal fraction).
Run: `python benchmarks/baseline_stream_prune.py IN.safetensors OUT.safetensors global 0.5`.
"""

from __future__ import annotations

import json
import re
import sys

import torch
from safetensors import safe_open

DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def natural(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def lamp_sorted(w: torch.Tensor) -> torch.Tensor:
    sq = torch.sort(w.reshape(-1).abs()).values.double() ** 2
    suffix = torch.flip(torch.cumsum(torch.flip(sq, [0]), 0), [0])
    return torch.where(suffix > 0, sq / suffix.clamp_min(1e-300), torch.zeros_like(suffix)).float()


def counts_below(f, names: list[str], values, p: int) -> dict[str, int]:
    """Per tensor, how many of the p smallest values overall it holds (two radix passes)."""
    hist = torch.zeros(1 << 15, dtype=torch.long)
    for n in names:
        hist += torch.bincount(values(f.get_tensor(n)).view(torch.int32) >> 16, minlength=1 << 15)
    cum = torch.cumsum(hist, 0)
    hi = int(torch.searchsorted(cum, torch.tensor(p)))
    need = p - (int(cum[hi - 1]) if hi else 0)
    low_hist, below, buckets = torch.zeros(1 << 16, dtype=torch.long), {}, {}
    for n in names:
        bits = values(f.get_tensor(n)).view(torch.int32)
        below[n] = int(((bits >> 16) < hi).sum())
        buckets[n] = (bits[(bits >> 16) == hi] & 0xFFFF).long()
        low_hist += torch.bincount(buckets[n], minlength=1 << 16)
    low_cum = torch.cumsum(low_hist, 0)
    lo = int(torch.searchsorted(low_cum, torch.tensor(need)))
    ties = need - (int(low_cum[lo - 1]) if lo else 0)
    out = {}
    for n in names:
        b = buckets[n]
        take = min(int((b == lo).sum()), ties)
        ties -= take
        out[n] = below[n] + int((b < lo).sum()) + take
    return out


def keep(w: torch.Tensor, z: int) -> torch.Tensor:
    a = w.reshape(-1).abs().float()
    if z <= 0:
        return torch.ones_like(a, dtype=torch.bool)
    t = a.kthvalue(min(z, a.numel())).values
    drop = a <= t
    extra = int(drop.sum()) - z
    if extra > 0:
        idx = (a == t).nonzero().reshape(-1)
        drop[idx[idx.numel() - extra:]] = False
    return ~drop


def main(src: str, dst: str, method: str, ratio: float) -> None:
    with safe_open(src, framework="pt") as f:
        names = sorted(f.keys(), key=natural)
        shapes = {n: f.get_slice(n).get_shape() for n in names}
        dtypes = {n: f.get_slice(n).get_dtype() for n in names}
        prunable = [n for n in names if n.endswith(".weight") and len(shapes[n]) >= 2]
        sizes = {n: torch.Size(shapes[n]).numel() for n in prunable}
        p = round(ratio * sum(sizes.values()))
        if method == "uniform":
            zeros = {n: p * s // sum(sizes.values()) for n, s in sizes.items()}
        else:
            fn = (lambda w: w.reshape(-1).abs().float()) if method == "global" else lamp_sorted
            zeros = counts_below(f, prunable, fn, p)
        header, offset = {}, 0
        for n in names:
            nbytes = torch.Size(shapes[n]).numel() * {"F32": 4, "F64": 8}.get(dtypes[n], 2)
            header[n] = {"dtype": dtypes[n], "shape": shapes[n], "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        blob = json.dumps(header).encode()
        blob += b" " * (-len(blob) % 8)
        with open(dst, "wb") as out:
            out.write(len(blob).to_bytes(8, "little") + blob)
            for n in names:
                w = f.get_tensor(n)
                if n in zeros:
                    w = w * keep(w, zeros[n]).reshape(w.shape).to(w.dtype)
                out.write(w.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
