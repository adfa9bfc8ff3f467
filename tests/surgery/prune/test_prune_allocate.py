"""Allocation methods: exact counts, mask order, caps, existing zeros, streaming selection."""

from __future__ import annotations

import math

import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.surgery.prune.allocate import DATA_FREE, allocate, erk_density, integerize
from dnnkit.surgery.prune.layers import PrunableLayer, select_layers
from dnnkit.surgery.prune.masks import keep_mask, lamp_scores, level_zeros
from dnnkit.surgery.prune.select import select_counts


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(16, 8, generator=g), "b.weight": torch.randn(32, 16, 3, 3, generator=g) * 0.1,
            "c.weight": torch.randn(10, 32, generator=g) * 3, "d.weight": torch.randn(4, 10, generator=g)}


def _layers(t: dict[str, torch.Tensor]) -> list[PrunableLayer]:
    return [PrunableLayer(n, tuple(w.shape), int((w == 0).sum())) for n, w in t.items()]


@pytest.mark.parametrize("method", DATA_FREE)
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.77, 0.95])
def test_exact_count(method: str, ratio: float) -> None:
    t = _tensors()
    layers = _layers(t)
    z = allocate(method, layers, ratio, t.__getitem__, None)
    total = sum(w.numel() for w in t.values())
    assert sum(z) == round(ratio * total)
    assert all(0 <= zi <= layer.n for zi, layer in zip(z, layers, strict=True))


def test_global_matches_sort() -> None:
    t = _tensors(1)
    layers = _layers(t)
    z = allocate("global", layers, 0.6, t.__getitem__, None)
    flat = torch.cat([w.abs().reshape(-1) for w in t.values()])
    thr = torch.sort(flat).values[round(0.6 * flat.numel()) - 1]
    for zi, w in zip(z, t.values(), strict=True):
        assert zi == int((w.abs() <= thr).sum())


def test_select_ties_go_by_layer_then_index() -> None:
    t = {"x": torch.ones(5), "y": torch.ones(5), "z": torch.full((5,), 2.0)}
    assert select_counts(list(t), lambda n: t[n], 7) == {"x": 5, "y": 2, "z": 0}
    t["x"][0] = 0.0
    assert select_counts(list(t), lambda n: t[n], 1) == {"x": 1, "y": 0, "z": 0}


def test_mask_order_zeros_first_then_magnitude_ties_by_index() -> None:
    w = torch.tensor([0.5, -0.1, 0.0, 0.1, 0.1, -2.0])
    assert keep_mask(w, 1).tolist() == [True, True, False, True, True, True]
    assert keep_mask(w, 2).tolist() == [True, False, False, True, True, True]
    assert keep_mask(w, 3).tolist() == [True, False, False, False, True, True]
    assert keep_mask(w, 5).tolist() == [False, False, False, False, False, True]


def test_lamp_scores_rise_with_magnitude_and_top_is_one() -> None:
    w = torch.randn(50, generator=torch.Generator().manual_seed(3))
    s = lamp_scores(w)
    order = torch.sort(w.abs(), stable=True).indices
    assert torch.all(s[order][1:] >= s[order][:-1])
    assert math.isclose(float(s.max()), 1.0, rel_tol=1e-6)


def test_lamp_never_empties_a_layer() -> None:
    t = _tensors()
    z = allocate("lamp", _layers(t), 0.97, t.__getitem__, None)
    assert all(zi < w.numel() for zi, w in zip(z, t.values(), strict=True))


def test_uniform_and_uniform_plus_shapes() -> None:
    t = _tensors()
    layers = _layers(t)
    z = allocate("uniform", layers, 0.5, t.__getitem__, None)
    assert [round(zi / layer.n, 2) for zi, layer in zip(z, layers, strict=True)] == [0.5] * 4
    z = allocate("uniform-plus", layers, 0.5, t.__getitem__, None)
    assert z[0] == 0 and z[-1] <= math.ceil(0.8 * layers[-1].n)
    with pytest.raises(InputError, match="largest reachable"):
        allocate("uniform-plus", layers, 0.99, t.__getitem__, 0.9)


def test_erk_density_solves_budget_and_fixes_dense_layers() -> None:
    layers = [PrunableLayer("a", (4, 3)), PrunableLayer("b", (256, 256)), PrunableLayer("c", (10, 256))]
    total = sum(layer.n for layer in layers)
    d = erk_density(layers, total // 2)
    assert d[0] == 1.0
    assert math.isclose(sum(di * layer.n for di, layer in zip(d, layers, strict=True)), total // 2, rel_tol=1e-9)


def test_caps_bind_when_given_and_excess_moves() -> None:
    t = _tensors()
    layers = _layers(t)
    z = allocate("global", layers, 0.9, t.__getitem__, 0.92)
    assert sum(z) == round(0.9 * sum(layer.n for layer in layers))
    assert all(zi <= math.floor(0.92 * layer.n) for zi, layer in zip(z, layers, strict=True))
    with pytest.raises(InputError, match="unreachable"):
        allocate("global", layers, 0.95, t.__getitem__, 0.5)


def test_existing_zeros_count_and_input_too_sparse() -> None:
    t = _tensors()
    t["b.weight"][:20] = 0
    layers = _layers(t)
    z = allocate("uniform", layers, 0.7, t.__getitem__, None)
    assert z[1] >= layers[1].zeros and sum(z) == round(0.7 * sum(layer.n for layer in layers))
    with pytest.raises(InputError, match="pass --ratio >="):
        allocate("lamp", layers, 0.1, t.__getitem__, None)


def test_integerize_largest_remainder_ties_by_layer() -> None:
    assert integerize([1.5, 1.5, 1.0], [0, 0, 0], [9, 9, 9], 5) == [2, 2, 1]
    assert integerize([1.5, 1.5, 1.0], [0, 0, 0], [9, 9, 9], 4) == [2, 1, 1]
    assert integerize([5.0, 0.0], [0, 0], [3, 9], 5) == [3, 2]


def test_level_zeros_integer_rule() -> None:
    assert level_zeros(10, 3) == [0, 5, 10]
    assert level_zeros(7, 4) == [0, 2, 4, 7]


def test_select_layers_patterns() -> None:
    names = ["l.0.weight", "l.0.bias", "l.1.weight", "norm.weight"]
    floats = set(names)
    assert select_layers(["l.0.weight", "l.1.weight"], names, floats, ["l.*.bias"], ["l.1.*"]) == \
        ["l.0.weight", "l.0.bias"]
    with pytest.raises(InputError, match="matches no"):
        select_layers(["l.0.weight"], names, floats, ["nothing*"], [])
    with pytest.raises(InputError, match="no prunable tensor"):
        select_layers(["l.0.weight"], names, floats, [], ["l.*"])
