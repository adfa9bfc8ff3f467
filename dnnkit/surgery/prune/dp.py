"""The rate-distortion DP of Xu et al. (ICCV 2023) with dnnkit's bucketing and exact top-up.

Each layer offers options k (a survivor count c_l(k) and a distortion D_l(k)). The DP picks one
option per layer minimising sum D_l under the survivor budget T, in units of q weights
(q = 1 is exact; large models use q = ceil(T/U)). Option costs are rounded up, so the chosen
survivors never exceed T; the top-up then hands the remaining survivors back, one by one, to the
layer whose distortion falls most per weight towards its next denser option, so exactly T survive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 10**9
DEFAULT_UNITS = 20_000


@dataclass
class LayerOptions:
    """Allowed options of one layer: survivor counts (ascending order not required) and distortions."""

    name: str
    n: int
    survivors: list[int]
    distortion: list[float]


@dataclass
class DPResult:
    """Chosen option per layer, final survivors per layer (after top-up), and bookkeeping."""

    choice: list[int]
    survivors: list[int]
    unit: int
    budget_units: int
    topped_up: int
    predicted: float


def choose_unit(layers: list[LayerOptions], survivors: int, units: int | None) -> int:
    """q: 1 when L*K*T <= 1e9 (exact), else ceil(T/U) with U = `units` (default 20 000)."""
    k = max(len(o.survivors) for o in layers)
    if units is None:
        if len(layers) * k * max(survivors, 1) <= EXACT_LIMIT:
            return 1
        units = DEFAULT_UNITS
    return max(1, math.ceil(survivors / units))


def solve(layers: list[LayerOptions], survivors: int, unit: int = 1) -> DPResult:
    """Least summed distortion with at most `survivors` weights kept (exactly, after top-up)."""
    budget = survivors // unit
    order = sorted(range(len(layers)), key=lambda i: (layers[i].n, layers[i].name))
    inf = np.inf
    f_prev = np.full(budget + 1, inf)
    f_prev[0] = 0.0
    reach = 0
    choices = np.zeros((len(layers), budget + 1), dtype=np.int16)
    costs: list[np.ndarray] = []
    for row, li in enumerate(order):
        opt = layers[li]
        cost = np.array([math.ceil(c / unit) for c in opt.survivors], dtype=np.int64)
        costs.append(cost)
        dist = np.asarray(opt.distortion, dtype=np.float64)
        new_reach = min(budget, reach + int(cost.max()))
        f_new = np.full(budget + 1, inf)
        g = choices[row]
        for k in range(len(cost)):
            u = int(cost[k])
            if u > new_reach or not np.isfinite(dist[k]):
                continue
            hi = min(new_reach, reach + u)
            cand = f_prev[: hi - u + 1] + dist[k]
            seg = f_new[u: hi + 1]
            better = cand < seg
            seg[better] = cand[better]
            g[u: hi + 1][better] = k
        f_prev, reach = f_new, new_reach
    finite = np.isfinite(f_prev)
    if not finite.any():
        raise ValueError("no allocation fits the survivor budget")
    best = float(f_prev[finite].min())
    b = int(np.flatnonzero(finite & (f_prev == best)).max())  # ties to the larger budget
    choice = [0] * len(layers)
    for row in range(len(order) - 1, -1, -1):
        k = int(choices[row, b])
        choice[order[row]] = k
        b -= int(costs[row][k])
    kept = [layers[i].survivors[choice[i]] for i in range(len(layers))]
    result = DPResult(choice, kept, unit, budget, 0, best)
    return top_up(layers, result, survivors)


def top_up(layers: list[LayerOptions], result: DPResult, survivors: int) -> DPResult:
    """Give back T - sum(c_l) survivors, one by one, where distortion falls most per weight."""
    kept = list(result.survivors)
    left = survivors - sum(kept)
    result.topped_up = max(left, 0)
    while left > 0:
        best, best_slope, best_room = -1, -np.inf, 0
        for i, opt in enumerate(layers):
            cur_c = kept[i]
            base_k = result.choice[i]
            denser = [(c, d) for c, d in zip(opt.survivors, opt.distortion, strict=True)
                      if c > cur_c and np.isfinite(d)]
            if not denser:
                continue
            next_c, next_d = min(denser)
            cur_d = _interp(opt, cur_c, base_k)
            slope = (cur_d - next_d) / (next_c - cur_c)
            if slope > best_slope:
                best, best_slope, best_room = i, slope, next_c - cur_c
        if best < 0:
            break
        give = min(left, best_room)  # the slope is constant up to the next option: same as one by one
        kept[best] += give
        left -= give
    result.survivors = kept
    return result


def _interp(opt: LayerOptions, c: int, base_k: int) -> float:
    """Distortion at survivor count c by linear interpolation between the surrounding options."""
    pts = sorted((cc, d) for cc, d in zip(opt.survivors, opt.distortion, strict=True) if np.isfinite(d))
    for (c0, d0), (c1, d1) in zip(pts, pts[1:], strict=False):
        if c0 <= c <= c1:
            return d0 if c1 == c0 else d0 + (d1 - d0) * (c - c0) / (c1 - c0)
    return float(opt.distortion[base_k])


def predicted_sum(layers: list[LayerOptions], kept: list[int]) -> float:
    """Sum over layers of the (interpolated) single-layer distortion at the kept counts."""
    return float(sum(_interp(o, c, 0) for o, c in zip(layers, kept, strict=True)))
