"""`--truncate`: re-cut the factored layers of a dnnkit lowrank checkpoint to smaller ranks.

Component b of a factored layer has importance ||u_b|| ||v_b|| (= sigma_b for a balanced SVD
split, so re-cutting an SVD checkpoint equals cutting the SVD there). Prefixes are kept, as written;
when importances increase along the components a warning gives the share of out-of-order pairs.
Rank rules: `--rank-ratio` of min(m, n), `--energy` of the squared importances, `--params` of the
dense m n; a layer is only ever cut, never grown.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.nn.lowrank import LOWRANK_TYPES, dense_shape, make_lowrank, set_factors, set_module


def component_importance(mod: nn.Module) -> torch.Tensor:
    """||u_b|| ||v_b|| for every component b (float64)."""
    u, v = mod.factor_matrices()
    return (u.detach().double().norm(dim=0) * v.detach().double().norm(dim=0))


def out_of_order_share(imp: torch.Tensor) -> float:
    """Share of pairs i < j whose importance increases (0 for a sorted spectrum)."""
    r = imp.numel()
    if r < 2:
        return 0.0
    upper = torch.triu(imp[None, :] > imp[:, None], diagonal=1)
    return float(upper.sum()) / (r * (r - 1) / 2)


def factored_layers(model: nn.Module, include: list[str], exclude: list[str]) -> dict[str, nn.Module]:
    """The factored modules of `model` matching the patterns; InputError when there are none."""
    import fnmatch

    from dnnkit.surgery.lowrank.select import check_patterns

    mods = {n: m for n, m in model.named_modules() if isinstance(m, LOWRANK_TYPES)}
    if not mods:
        raise InputError("--truncate needs a checkpoint with factored layers (written by dnnkit lowrank)")
    check_patterns(list(mods), include, exclude)
    return {n: m for n, m in mods.items()
            if (not include or any(fnmatch.fnmatchcase(n, p) for p in include))
            and not any(fnmatch.fnmatchcase(n, p) for p in exclude)}


def truncate_ranks(mods: dict[str, nn.Module], rule: str, value: float) -> dict[str, int]:
    """New rank of every factored layer (never above its current rank)."""
    ranks = {}
    for name, mod in mods.items():
        m, *rest = dense_shape(mod)
        n = math.prod(rest)
        if rule == "ratio":
            r = max(1, math.floor(value * min(m, n) + 1e-9))
        elif rule == "params":
            r = max(1, math.floor(value * m * n / (m + n) + 1e-9))
        else:
            sq = component_importance(mod) ** 2
            cum = torch.cumsum(sq, 0) / sq.sum().clamp_min(1e-300)
            hits = (cum >= value - 1e-12).nonzero()
            r = int(hits[0]) + 1 if len(hits) else mod.rank
        ranks[name] = min(r, mod.rank)
    return ranks


def truncate_model(model: nn.Module, cfg: Any, warnings: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with its factored layers cut to the rule's ranks; returns (model, per-layer info)."""
    mods = factored_layers(model, cfg.include, cfg.exclude)
    out = copy.deepcopy(model)
    ranks = truncate_ranks(mods, cfg.rule, cfg.value)
    info = {}
    for name, mod in mods.items():
        imp = component_importance(mod)
        share = out_of_order_share(imp)
        if share > 0:
            warnings.append(f"{name}: {share:.1%} of component pairs are out of order (importance increases); "
                            "prefixes are kept as written")
        r = ranks[name]
        new = make_lowrank(mod, r)
        u, v = mod.factor_matrices()
        set_factors(new, u[:, :r].detach(), v[:, :r].t().detach(), None if mod.up.bias is None else mod.up.bias)
        set_module(out, name, new)
        sq = imp ** 2
        info[name] = {"rank_before": mod.rank, "rank": r, "shape": dense_shape(mod),
                      "kind": "linear" if isinstance(mod.down, nn.Linear) else "conv2d",
                      "energy_kept": float(sq[:r].sum() / sq.sum().clamp_min(1e-300)), "out_of_order": share}
    return out, info
