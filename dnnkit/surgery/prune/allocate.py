"""Allocation: how many weights each layer loses (the only thing pruning methods differ in).

Every method returns integer zero counts z_l with sum z_l = P = round(R*N) exactly, z_l at least
the layer's existing zeros (never revived) and, when a cap binds, z_l <= floor(cap*n_l).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dnnkit.errors import InputError
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.masks import lamp_sorted_scores
from dnnkit.surgery.prune.select import select_counts

DATA_FREE = ("uniform", "uniform-plus", "global", "erk", "lamp")
METHODS = (*DATA_FREE, "owl", "rd")
GetFn = Callable[[str], torch.Tensor]


def exact_budget(layers: list[PrunableLayer], ratio: float) -> tuple[int, int]:
    """(P, N): the number of weights to zero and the prunable total."""
    total = sum(layer.n for layer in layers)
    return round(ratio * total), total


def cap_counts(layers: list[PrunableLayer], cap: float | None) -> list[int]:
    """floor(cap*n_l) per layer (n_l when no cap)."""
    return [layer.n if cap is None else math.floor(cap * layer.n) for layer in layers]


def _largest_remainder(amount: int, shares: list[float], room: list[int]) -> list[int]:
    """Split a non-negative integer `amount` by real `shares`, never above `room`; ties by index."""
    out = [0] * len(shares)
    while amount > 0:
        open_idx = [i for i in range(len(shares)) if room[i] - out[i] > 0]
        if not open_idx:
            break
        weight = sum(max(shares[i], 0.0) for i in open_idx)
        if weight <= 0:
            weight = float(len(open_idx))
            share = {i: 1.0 for i in open_idx}
        else:
            share = {i: max(shares[i], 0.0) for i in open_idx}
        real = {i: min(amount * share[i] / weight, room[i] - out[i]) for i in open_idx}
        floors = {i: int(math.floor(real[i])) for i in open_idx}
        given = sum(floors.values())
        for i in open_idx:
            out[i] += floors[i]
        left = amount - given
        order = sorted(open_idx, key=lambda i: (-(real[i] - floors[i]), i))
        for i in order:
            if left <= 0:
                break
            if room[i] - out[i] > 0 and real[i] - floors[i] > 0:
                out[i] += 1
                left -= 1
        if left == amount:  # nothing moved through remainders: hand out one by one in order
            for i in order:
                if left <= 0:
                    break
                if room[i] - out[i] > 0:
                    out[i] += 1
                    left -= 1
        amount = left
    return out


def integerize(targets: list[float], lo: list[int], hi: list[int], p: int) -> list[int]:
    """Real zero targets -> integers with sum p, lo <= z <= hi: floor, then largest remainder
    (ties by layer), then any excess or shortfall from clipping spread over layers with room."""
    clipped = [min(max(t, a), b) for t, a, b in zip(targets, lo, hi, strict=True)]
    z = [max(a, min(b, math.floor(t))) for t, a, b in zip(clipped, lo, hi, strict=True)]
    rem = p - sum(z)
    if rem > 0:
        fracs = [t - math.floor(t) for t in clipped]
        order = sorted(range(len(z)), key=lambda i: (-fracs[i], i))
        for i in order:
            if rem == 0:
                break
            if fracs[i] > 0 and z[i] < hi[i]:
                z[i] += 1
                rem -= 1
        if rem > 0:
            extra = _largest_remainder(rem, [float(b - v) for v, b in zip(z, hi, strict=True)],
                                       [b - v for v, b in zip(z, hi, strict=True)])
            z = [v + e for v, e in zip(z, extra, strict=True)]
    elif rem < 0:
        take = _largest_remainder(-rem, [float(v - a) for v, a in zip(z, lo, strict=True)],
                                  [v - a for v, a in zip(z, lo, strict=True)])
        z = [v - t for v, t in zip(z, take, strict=True)]
    if sum(z) != p:
        raise InputError(f"cannot place {p} zeros within the per-layer limits (placed {sum(z)})",
                         hint="lower --ratio or raise --max-layer-sparsity")
    return z


def uniform(layers: list[PrunableLayer], p: int, hi: list[int]) -> list[float]:
    total = sum(layer.n for layer in layers)
    return [p / total * layer.n for layer in layers]


def uniform_plus(layers: list[PrunableLayer], p: int, cap: float | None) -> list[float]:
    """Gale et al. 2019: first layer dense, last at min(r, 0.8), the rest at r (solved from P)."""
    total = sum(layer.n for layer in layers)
    if len(layers) < 3:
        raise InputError("uniform-plus needs at least three prunable layers (first dense, last capped)")
    first, last = layers[0].n, layers[-1].n
    mid = total - first - last
    r = p / (mid + last)
    if r > 0.8:
        r = (p - 0.8 * last) / mid
    limit = 1.0 if cap is None else cap
    if r > limit + 1e-12:
        reach = (mid * limit + min(limit, 0.8) * last) / total
        raise InputError(f"uniform-plus cannot reach --ratio {p / total:.4f}: the largest reachable is {reach:.4f}",
                         hint="lower --ratio or use another --method")
    return [0.0] + [r * layer.n for layer in layers[1:-1]] + [min(r, 0.8) * last]


def erk_density(layers: list[PrunableLayer], survivors: int) -> list[float]:
    """ERK (Evci et al. 2020): d_l = min(1, eps*(sum of dims)/n_l) with sum d_l n_l = T."""
    raw = [sum(layer.shape) / layer.n for layer in layers]
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(layers)) if i not in dense]
        budget = survivors - sum(layers[i].n for i in dense)
        denom = sum(raw[i] * layers[i].n for i in free)
        eps = budget / denom if denom > 0 else 0.0
        newly = {i for i in free if eps * raw[i] >= 1.0}
        if not newly:
            break
        dense |= newly
    return [1.0 if i in dense else min(1.0, eps * raw[i]) for i in range(len(layers))]


def _select_with_caps(layers: list[PrunableLayer], p: int, hi: list[int], values_fn: GetFn) -> list[int]:
    """Global selection of the p smallest values; capped layers are fixed at their cap and the
    excess re-selected among the others (repeat until no cap is exceeded)."""
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(len(layers)) if i not in fixed]
        counts = select_counts([layers[i].name for i in free], values_fn, p - sum(fixed.values()))
        over = [i for i in free if counts[layers[i].name] > hi[i]]
        if not over:
            return [fixed[i] if i in fixed else counts[layers[i].name] for i in range(len(layers))]
        for i in over:
            fixed[i] = hi[i]


def allocate(method: str, layers: list[PrunableLayer], ratio: float, get: GetFn, cap: float | None) -> list[int]:
    """Zero counts per layer for a data-free method (`get(name)` returns the current tensor)."""
    p, total = exact_budget(layers, ratio)
    lo = [layer.zeros for layer in layers]
    hi = cap_counts(layers, cap)
    have = sum(lo)
    if have > p:
        raise InputError(f"input has {100 * have / total:.1f} % zeros among prunable weights; "
                         f"pass --ratio >= {have / total:.3f}")
    if sum(hi) < p:
        raise InputError(f"--ratio {ratio} is unreachable under --max-layer-sparsity {cap}: "
                         f"the largest reachable is {sum(hi) / total:.4f}")
    hi = [max(h, a) for h, a in zip(hi, lo, strict=True)]
    if method == "uniform":
        return integerize(uniform(layers, p, hi), lo, hi, p)
    if method == "uniform-plus":
        return integerize(uniform_plus(layers, p, cap), lo, hi, p)
    if method == "erk":
        dens = erk_density(layers, total - p)
        return integerize([layer.n * (1 - d) for layer, d in zip(layers, dens, strict=True)], lo, hi, p)
    if method == "global":
        return _select_with_caps(layers, p, hi, get)  # select_counts takes |w| as float32 itself
    if method == "lamp":  # only how many scores fall below the cut matters: sorted scores, one sort
        return _select_with_caps(layers, p, hi, lambda name: lamp_sorted_scores(get(name)))
    raise InputError(f"unknown --method {method!r}", hint=f"use one of {', '.join(METHODS)}")
