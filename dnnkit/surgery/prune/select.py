"""Exact streaming selection of the P smallest values over many tensors (global magnitude, LAMP).

Non-negative float32 values sort like their bit patterns, so the P-th smallest is found by radix
selection: one histogram pass over the top 16 bits, one inside the chosen bucket over the low 16.
Each pass sees one tensor at a time, so a bare file is never held in memory as a whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ValuesFn = Callable[[str], torch.Tensor]


def _bits(values: torch.Tensor) -> torch.Tensor:
    """The bit patterns of |values| as float32, as int32 (non-negative floats sort like them)."""
    v = values.detach().reshape(-1).float().abs()
    return v.contiguous().view(torch.int32)


def select_counts(names: list[str], values_fn: ValuesFn, p: int) -> dict[str, int]:
    """How many of each tensor's entries fall among the `p` smallest values overall.

    Ties at the threshold go to tensors in the order of `names`, then by index, which matches
    the stable within-tensor magnitude order of the masks.
    """
    if p <= 0:
        return dict.fromkeys(names, 0)
    hist = torch.zeros(1 << 15, dtype=torch.long)
    sizes: dict[str, int] = {}
    for name in names:
        bits = _bits(values_fn(name))
        sizes[name] = bits.numel()
        hist += torch.bincount(bits >> 16, minlength=1 << 15)
        del bits
    total = int(hist.sum())
    if p >= total:
        return sizes
    cum = torch.cumsum(hist, 0)
    hi = int(torch.searchsorted(cum, torch.tensor(p), right=False))  # first bucket with cum >= p
    below_hi = int(cum[hi - 1]) if hi > 0 else 0
    low_hist = torch.zeros(1 << 16, dtype=torch.long)
    # What pass 2 keeps per tensor (the distinct low halves in the bucket and their counts) goes into
    # buffers allocated before it: small tensors allocated inside the loop and kept past it sat above
    # the freed per-tensor temporaries on the malloc heap, so the heap could not shrink and grew by
    # megabytes per tensor (0.4 GB on a 512 MB file). The bucket holds hist[hi] entries in all.
    room = min(int(hist[hi]), (1 << 16) * len(names))
    uniq_all = torch.empty(room, dtype=torch.int32)
    cnt_all = torch.empty(room, dtype=torch.long)
    per_lt = dict.fromkeys(names, 0)
    span = dict.fromkeys(names, (0, 0))
    used = 0
    for name in names:
        top = _bits(values_fn(name))
        low = top & 0xFFFF
        top >>= 16
        in_bucket = low[top == hi]
        per_lt[name] = int((top < hi).sum())
        del top, low
        uniq, cnt = torch.unique(in_bucket, return_counts=True)
        del in_bucket
        k = uniq.numel()
        uniq_all[used:used + k] = uniq
        cnt_all[used:used + k] = cnt
        span[name] = (used, used + k)
        used += k
        low_hist.index_add_(0, uniq.long(), cnt)
        del uniq, cnt
    low_cum = torch.cumsum(low_hist, 0)
    lo = int(torch.searchsorted(low_cum, torch.tensor(p - below_hi), right=False))
    need_ties = p - below_hi - (int(low_cum[lo - 1]) if lo > 0 else 0)
    counts: dict[str, int] = {}
    for name in names:
        a, b = span[name]
        uniq, cnt = uniq_all[a:b], cnt_all[a:b]
        less = per_lt[name] + int(cnt[uniq < lo].sum())
        ties = min(int(cnt[uniq == lo].sum()), need_ties)
        need_ties -= ties
        counts[name] = less + ties
    return counts
