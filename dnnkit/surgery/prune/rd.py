"""One rd allocation: curves on the current model, the DP under the survivor budget, and the
additivity check; plus the `--refine` correction (spec section 4)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.surgery.prune.allocate import allocate
from dnnkit.surgery.prune.curves import Curves, DistortionMeter, grid_options, layer_variants, measure_curves
from dnnkit.surgery.prune.dp import LayerOptions, choose_unit, predicted_sum, solve
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.lm_head import HeadShortcut
from dnnkit.surgery.prune.masks import keep_mask


@dataclass
class RDOutcome:
    """Zero counts per layer with what the DP and the checks saw."""

    zeros: list[int]
    curves: Curves
    dp_seconds: float
    unit: int
    topped_up: int
    predicted: float
    measured: float
    rounds: list[dict[str, Any]] = field(default_factory=list)
    start: str = "dp"

    @property
    def rho(self) -> float | None:
        return self.predicted / self.measured if self.measured > 0 else None


def apply_zeros(params: dict[str, nn.Parameter], weights: dict[str, torch.Tensor], names: list[str],
                zeros: list[int], keep_masks: bool = True) -> dict[str, torch.Tensor]:
    """Set each layer to its source weight with the first z entries of the magnitude order removed
    (`weights[name]` may be the parameter itself); returns the keep-masks (none without `keep_masks`)."""
    masks = {}
    with torch.no_grad():
        for name, z in zip(names, zeros, strict=True):
            mask = keep_mask(weights[name], z)
            params[name].copy_(weights[name] * mask.to(weights[name].dtype))
            if keep_masks:
                masks[name] = mask
    return masks


def layer_options(layers: list[PrunableLayer], levels: int, cap: float, iterative: bool) -> dict[str, list[int]]:
    """Allowed zero counts per layer: the grid up to the cap; existing zeros are the floor (they are
    never revived), and in iterative mode the current sparsity itself is an option (D = 0)."""
    out = {}
    for layer in layers:
        grid = grid_options(layer.n, levels, cap, layer.zeros if iterative else 0)
        opts = sorted({max(z, layer.zeros) for z in grid} | ({layer.zeros} if iterative or not grid else set()))
        out[layer.name] = opts
    return out


def floor_existing_zeros(curves: Curves, layers: list[PrunableLayer]) -> Curves:
    """Curves whose options never count fewer zeros than a layer already has (zeros are never revived,
    and a weight that is already 0 costs nothing to prune): options below are raised to the existing
    count with D = 0. Matters for curves from elsewhere (the `curves=` argument, a cache) on weights
    with exact zeros, e.g. dequantised GGUF tensors."""
    have = {layer.name: layer.zeros for layer in layers}
    zeros, dist = [], []
    for name, zs, ds in zip(curves.names, curves.zeros, curves.distortion, strict=True):
        floor = have.get(name, 0)
        merged = {floor: 0.0}
        for z, d in zip(zs, ds, strict=True):
            if z > floor:
                merged[z] = d
        order = sorted(merged)
        zeros.append(order)
        dist.append([merged[z] for z in order])
    if zeros == curves.zeros:
        return curves
    return dataclasses.replace(curves, zeros=zeros, distortion=dist)


def solve_allocation(curves: Curves, survivors: int, dp_units: int | None) -> tuple[list[int], float, int, int, float]:
    """DP over the curves; returns (zeros, seconds, unit, topped_up, predicted sum)."""
    opts = [LayerOptions(name, n, [n - z for z in zs], ds)
            for name, n, zs, ds in zip(curves.names, curves.sizes, curves.zeros, curves.distortion, strict=True)]
    t0 = time.perf_counter()
    unit = choose_unit(opts, survivors, dp_units)
    result = solve(opts, survivors, unit)
    seconds = time.perf_counter() - t0
    zeros = [n - s for n, s in zip(curves.sizes, result.survivors, strict=True)]
    return zeros, seconds, unit, result.topped_up, predicted_sum(opts, result.survivors)


def rd_allocate(model: nn.Module, task: str, calib: Any, reference: torch.Tensor, layers: list[PrunableLayer],
                ratio: float, *, levels: int, cap: float, objective: str, dp_units: int | None, batch_size: int,
                iterative: bool = False, refine: int = 0, curves: Curves | None = None,
                progress: Any = None, head: HeadShortcut | None = None,
                variants: Callable[[str, torch.Tensor, list[int]], list[torch.Tensor]] | None = None,
                proxy: Callable[[str, torch.Tensor, torch.Tensor], float] | None = None) -> RDOutcome:
    """Curves (or reuse `curves`), DP, masks applied to `model`, additivity check, optional refine.
    `reference` is Y on `calib` from `reference_outputs` with the same `head` (the LM-head shortcut).
    With `variants` (rd over a calibrated criterion) the curves and the check use the criterion's
    weights, and the model is left dense: the caller prunes it to the returned counts. With `proxy`
    (`--rd-curves proxy`) each layer's curve is one measured level, nearest `ratio`, scaled by the
    levels' reconstruction errors."""
    names = [layer.name for layer in layers]
    params = dict(model.named_parameters())
    weights = {n: params[n].detach().clone() for n in names}
    total = sum(layer.n for layer in layers)
    survivors = total - round(ratio * total)
    reachable = sum(math.floor(cap * layer.n) for layer in layers)
    if round(ratio * total) > max(reachable, sum(layer.zeros for layer in layers)):
        raise InputError(f"--ratio {ratio:.4f} is unreachable under the per-layer cap {cap}: the largest reachable "
                         f"is {reachable / total:.4f}", hint="lower --ratio or raise --max-layer-sparsity")
    meter = DistortionMeter(model, task, calib, reference, names, objective, batch_size, head=head)
    if curves is None:
        options = layer_options(layers, levels, cap, iterative)
        curves = measure_curves(meter, weights, options, {layer.name: layer.zeros for layer in layers}, progress,
                                variants, proxy, anchor=ratio)
        curves.levels = levels
    curves = floor_existing_zeros(curves, layers)
    zeros, dp_s, unit, topped, predicted = solve_allocation(curves, survivors, dp_units)
    if variants is not None:
        with torch.no_grad():
            for name, z in zip(names, zeros, strict=True):
                params[name].copy_(variants(name, weights[name], [z])[0])
        measured = meter.measure_model()
        with torch.no_grad():
            for name in names:
                params[name].copy_(weights[name])
        return RDOutcome(zeros, curves, dp_s, unit, topped, predicted, measured)
    apply_zeros(params, weights, names, zeros)
    measured = meter.measure_model()
    outcome = RDOutcome(zeros, curves, dp_s, unit, topped, predicted, measured)
    if refine > 0:
        refine_allocation(model, task, calib, reference, layers, weights, outcome, rounds=refine, levels=levels,
                          cap=cap, objective=objective, batch_size=batch_size, progress=progress, head=head)
    return outcome


def _measure_allocation(meter: DistortionMeter, params: dict[str, nn.Parameter], weights: dict[str, torch.Tensor],
                        names: list[str], zeros: list[int]) -> float:
    apply_zeros(params, weights, names, zeros)
    return meter.measure_model()


def refine_allocation(model: nn.Module, task: str, calib: Any, reference: torch.Tensor, layers: list[PrunableLayer],
                      weights: dict[str, torch.Tensor], outcome: RDOutcome, *, rounds: int, levels: int, cap: float,
                      objective: str, batch_size: int, window: int = 5, progress: Any = None,
                      head: HeadShortcut | None = None) -> None:
    """The additivity correction (new in dnnkit): start from the best measured of DP, LAMP and ERK
    at the same budget; each round re-measure every layer moved within +-W grid steps with the
    others held, solve the DP on those deltas (a trust region), accept only if D_meas falls."""
    names = [layer.name for layer in layers]
    params = dict(model.named_parameters())
    total = sum(layer.n for layer in layers)
    ratio_p = total - (total - sum(outcome.zeros))
    meter = DistortionMeter(model, task, calib, reference, names, objective, batch_size, head=head)
    starts = {"dp": (outcome.zeros, outcome.measured)}
    fresh = [PrunableLayer(layer.name, layer.shape, layer.zeros) for layer in layers]
    for method in ("lamp", "erk"):
        z = allocate(method, fresh, ratio_p / total, lambda n: weights[n], cap)
        starts[method] = (z, _measure_allocation(meter, params, weights, names, z))
    best = min(starts, key=lambda k: starts[k][1])
    current, current_d = list(starts[best][0]), starts[best][1]
    outcome.start = best
    outcome.rounds.append({"round": 0, "start": best, "measured": {k: v[1] for k, v in starts.items()}})
    survivors = total - sum(current)
    for r in range(1, rounds + 1):
        apply_zeros(params, weights, names, current)
        meter = DistortionMeter(model, task, calib, reference, names, objective, batch_size, head=head)
        opts: list[LayerOptions] = []
        for i, layer in enumerate(layers):
            step = layer.n / (levels - 1)
            d_now = round(current[i] / step)
            grid = [d * layer.n // (levels - 1) for d in range(max(0, d_now - window), min(levels, d_now + window + 1))]
            grid = sorted({max(z, layer.zeros) for z in grid if z <= int(cap * layer.n)} - {current[i]})
            vals = meter.measure(layer.name, layer_variants(weights[layer.name], grid)) if grid else []
            zs = [current[i], *grid]
            ds = [0.0, *[v - current_d for v in vals]]
            opts.append(LayerOptions(layer.name, layer.n, [layer.n - z for z in zs], ds))
        unit = choose_unit(opts, survivors, None)
        result = solve(opts, survivors, unit)
        cand = [layer.n - s for layer, s in zip(layers, result.survivors, strict=True)]
        cand_d = _measure_allocation(meter, params, weights, names, cand)
        accepted = cand_d < current_d
        outcome.rounds.append({"round": r, "window": window, "measured": cand_d, "accepted": accepted,
                               "predicted_delta": result.predicted})
        if accepted:
            current, current_d = cand, cand_d
        else:
            window = max(1, window // 2)
            if window == 1 and not accepted and r > 1 and not outcome.rounds[-2].get("accepted", True):
                break
    apply_zeros(params, weights, names, current)
    outcome.zeros = current
    outcome.measured = current_d
    outcome.predicted = predicted_sum(
        [LayerOptions(n, s, [s - z for z in zs], ds) for n, s, zs, ds in
         zip(outcome.curves.names, outcome.curves.sizes, outcome.curves.zeros, outcome.curves.distortion,
             strict=True)], [layer.n - z for layer, z in zip(layers, current, strict=True)])
