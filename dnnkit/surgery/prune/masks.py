"""Magnitude order and keep-masks: every method prunes a layer's zeros first, then ascending |w|,
ties broken by flat index (a stable sort), so methods differ only in how many each layer loses.

`keep_mask` never sorts: the z-th smallest |w| is the threshold, everything below it goes, and of
the entries equal to it only the first ones by flat index go, which is exactly the stable sort's
order. The threshold is kthvalue's on small tensors and an exact radix selection over the float32
bit patterns on large ones (the same value, several times faster from 32K entries on).
`lamp_sorted_scores` sorts once (unstable: equal values are interchangeable in a sorted array) in
the narrowest float dtype that holds |w| exactly.
"""

from __future__ import annotations

import torch

_NARROW = (torch.float32, torch.float16, torch.bfloat16)
RADIX_MIN = 1 << 15  # from this many entries on, radix selection beats kthvalue (4x at 1M entries)


def magnitude_ranks(weight: torch.Tensor) -> torch.Tensor:
    """rank[i] = position of element i in the pruning order (0 = pruned first), as int64, flat."""
    flat = weight.detach().reshape(-1).abs().float()
    order = torch.sort(flat, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    return ranks


def _threshold(flat: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """(t, c): the k-th smallest entry t (1-based, as kthvalue gives it: NaN sorts last) of a flat,
    contiguous, non-negative float32 tensor, and c, how many entries are <= t (NaN never is).

    Large tensors: radix selection. Non-negative floats sort like their bit patterns (NaN's lie above
    Inf's), so one histogram of the top 16 bits finds t's bucket and one of the low 16 bits inside
    that bucket finds t itself; both counts come from the histograms.
    """
    n = flat.numel()
    if n < RADIX_MIN:
        t = flat.kthvalue(k).values
        return t, int((flat <= t).sum())
    bits = flat.contiguous().view(torch.int32)
    top = bits >> 16
    cum = torch.cumsum(torch.bincount(top, minlength=1 << 15), 0)
    hi = int(torch.searchsorted(cum, torch.tensor(k, device=cum.device)))  # first bucket with cum >= k
    below = int(cum[hi - 1]) if hi > 0 else 0
    low = bits[top == hi] & 0xFFFF
    del top
    low_cum = torch.cumsum(torch.bincount(low, minlength=1 << 16), 0)
    lo = int(torch.searchsorted(low_cum, torch.tensor(k - below, device=cum.device)))
    t = torch.tensor((hi << 16) | lo, dtype=torch.int32, device=flat.device).view(torch.float32)
    return t, below + int(low_cum[lo])


def keep_mask(weight: torch.Tensor, zeros: int) -> torch.Tensor:
    """Boolean keep-mask (same shape) that removes exactly `zeros` entries in magnitude order."""
    flat = weight.detach().reshape(-1).abs().float()
    n = flat.numel()
    if zeros <= 0:
        return torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    if zeros >= n:
        return torch.zeros(weight.shape, dtype=torch.bool, device=weight.device)
    t, at_most = _threshold(flat, zeros)
    if bool(torch.isnan(t)):  # the cut reaches into NaNs, whose mutual order the threshold cannot tell
        return (magnitude_ranks(weight) >= zeros).reshape(weight.shape)
    drop = flat <= t  # NaN compares false: kept, as the sort puts it last
    extra = at_most - zeros  # entries equal to t beyond the quota: the last ones by index stay
    if extra > 0:
        ties = (flat == t).nonzero().reshape(-1)
        drop[ties[ties.numel() - extra:]] = False
    return drop.logical_not_().reshape(weight.shape)


def level_zeros(n: int, levels: int) -> list[int]:
    """Zero count of each grid level d = 0..K-1: floor(d*n/(K-1)), computed in integers."""
    return [d * n // (levels - 1) for d in range(levels)]


def _abs_for_sort(weight: torch.Tensor) -> torch.Tensor:
    """|w| flat, in float32 when that holds every value exactly (float32/16/bf16), else float64."""
    flat = weight.detach().reshape(-1)
    return flat.abs().float() if flat.dtype in _NARROW else flat.double().abs()


def _scores_of_sorted(sorted_abs: torch.Tensor) -> torch.Tensor:
    """LAMP scores (float32) of an ascending |w| array; float64 sums, as the definition fixes."""
    sq = sorted_abs.double()
    sq = sq * sq
    suffix = torch.flip(torch.cumsum(torch.flip(sq, [0]), 0), [0])
    return torch.where(suffix > 0, sq / suffix.clamp_min(1e-300), torch.zeros_like(suffix)).float()


def lamp_sorted_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP scores in ascending-|w| order (flat, float32): the multiset `lamp_scores` holds, one sort.

    Enough for allocation, which counts how many scores fall below a threshold; scores rise along
    the magnitude order, so a layer's count is also its zero count in magnitude order.
    """
    return _scores_of_sorted(torch.sort(_abs_for_sort(weight)).values)


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score of every entry (flat, float32): w_(u)^2 / sum_{v>=u} w_(v)^2 in ascending-|w| order.

    Scores rise along the magnitude order (ties by index), and the largest weight scores 1.
    """
    sorted_abs, order = torch.sort(_abs_for_sort(weight), stable=True)
    sorted_scores = _scores_of_sorted(sorted_abs)
    scores = torch.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores
