"""The DP is optimal on the grid (brute force over K^L), bucketing keeps the budget, top-up is exact."""

from __future__ import annotations

import itertools
import random

import numpy as np

from dnnkit.surgery.prune.dp import LayerOptions, choose_unit, solve


def _random_layers(rng: random.Random, n_layers: int, levels: int) -> list[LayerOptions]:
    layers = []
    for i in range(n_layers):
        n = rng.randint(3, 30)
        survivors = [n - d * n // (levels - 1) for d in range(levels)]
        dist = [0.0] + sorted(rng.random() * 3 for _ in range(levels - 1))
        if rng.random() < 0.3:  # non-monotone, tied curves
            dist = [rng.choice([0.0, 0.5, 1.0]) for _ in range(levels)]
        layers.append(LayerOptions(f"l{i}", n, survivors, dist))
    return layers


def test_dp_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(150):
        layers = _random_layers(rng, rng.randint(1, 4), rng.randint(2, 5))
        lo = sum(min(o.survivors) for o in layers)
        budget = rng.randint(lo, sum(o.n for o in layers))
        result = solve(layers, budget, 1)
        best = min(sum(o.distortion[k] for o, k in zip(layers, ks, strict=True))
                   for ks in itertools.product(*[range(len(o.survivors)) for o in layers])
                   if sum(o.survivors[k] for o, k in zip(layers, ks, strict=True)) <= budget)
        assert abs(result.predicted - best) < 1e-12
        assert sum(layers[i].survivors[k] for i, k in enumerate(result.choice)) <= budget


def test_top_up_reaches_exact_count() -> None:
    rng = random.Random(1)
    for _ in range(50):
        layers = _random_layers(rng, 4, 6)
        budget = rng.randint(sum(min(o.survivors) for o in layers), sum(o.n for o in layers))
        result = solve(layers, budget, 1)
        assert sum(result.survivors) == budget
        assert all(s <= o.n for s, o in zip(result.survivors, layers, strict=True))


def test_bucketed_dp_keeps_budget_and_tops_up() -> None:
    rng = np.random.default_rng(0)
    layers = []
    for i in range(12):
        n = int(rng.integers(1000, 50000))
        layers.append(LayerOptions(f"l{i}", n, [n - d * n // 20 for d in range(21)],
                                   list(np.cumsum(rng.random(21)) - rng.random())))
    total = sum(o.n for o in layers)
    survivors = total // 3
    unit = choose_unit(layers, survivors, 500)
    assert unit > 1
    result = solve(layers, survivors, unit)
    assert sum(result.survivors) == survivors
    assert result.topped_up < (len(layers) + 1) * unit


def test_exact_unit_when_small() -> None:
    layers = [LayerOptions("a", 10, [10, 5, 0], [0, 1, 2])]
    assert choose_unit(layers, 5, None) == 1
