"""TverskyProjection: the forward against a direct per-feature evaluation, options, XOR."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from dnnkit.kernels.tversky_similarity import DIFFERENCES, INTERSECTIONS, SIMILARITIES
from dnnkit.nn.tversky import StandardizedLinear, TverskyProjection, direct_similarity
from dnnkit.surgery.tversky.xor import XOR_X, solved_share, train_xor


@pytest.mark.parametrize("inter,diff,sim", list(itertools.product(INTERSECTIONS, DIFFERENCES, SIMILARITIES)))
def test_forward_matches_direct_per_feature_evaluation(inter: str, diff: str, sim: str) -> None:
    g = torch.Generator().manual_seed(0)
    layer = TverskyProjection(5, 4, 6, intersection=inter, difference=diff, similarity=sim, init="normal",
                              alpha=0.3, beta=0.8, theta=1.5, generator=g)
    layer.in_mean.copy_(torch.randn(5, generator=g))
    layer.in_std.copy_(torch.rand(5, generator=g) + 0.5)
    x = torch.randn(2, 3, 5, generator=g)  # leading dims are flattened and restored
    out = layer(x)
    assert out.shape == (2, 3, 4)
    assert torch.allclose(out.reshape(6, 4).double(), direct_similarity(x, layer), atol=1e-5, rtol=1e-5)


def test_asymmetry_and_learned_scalars() -> None:
    layer = TverskyProjection(3, 2, 4, alpha=0.9, beta=0.1, init="normal", generator=torch.Generator().manual_seed(1))
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"features", "prototypes", "alpha", "beta", "theta"}
    x = torch.randn(8, 3)
    layer(x).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    assert layer.own_parameter_count() == 4 * 3 + 2 * 3 + 3


def test_inits() -> None:
    u = TverskyProjection(4, 3, 5, init="uniform")
    assert u.features.min() >= 0 and u.features.max() <= 1
    o = TverskyProjection(4, 3, 5, init="orthogonal")
    q = o.features.detach()
    assert torch.allclose(q.T @ q, torch.eye(4), atol=1e-5)  # 5 x 4: orthonormal columns
    with pytest.raises(ValueError):
        TverskyProjection(4, 3, 5, init="xavier")


def test_shared_bank_and_tied_prototypes() -> None:
    bank = nn.Parameter(torch.rand(6, 4))
    emb = nn.Embedding(3, 4)
    layer = TverskyProjection(4, 3, 6, bank=bank, tied=emb)
    assert dict(layer.named_parameters()).keys() == {"alpha", "beta", "theta"}
    layer(torch.randn(5, 4)).sum().backward()
    assert bank.grad is not None and emb.weight.grad is not None
    with pytest.raises(ValueError):
        TverskyProjection(4, 2, 6, tied=emb)


def test_standardized_linear_uses_buffers() -> None:
    lin = StandardizedLinear(3, 2)
    lin.in_mean.fill_(1.0)
    lin.in_std.fill_(2.0)
    x = torch.randn(4, 3)
    assert torch.allclose(lin(x), nn.functional.linear((x - 1) / 2, lin.weight, lin.bias))


def test_xor_solved_by_one_tversky_layer_not_by_one_linear_layer() -> None:
    # 300 full-batch Adam steps at 0.01, K = 16, U(0, 1): seeds 0 and 1 solve it (the benchmark: 20/20 at 1000).
    for seed in (0, 1):
        layer = TverskyProjection(2, 2, 16, generator=torch.Generator().manual_seed(seed))
        assert train_xor(layer, steps=300) == 1.0
        assert layer(XOR_X).argmax(-1).tolist() == [0, 1, 1, 0]

    def linear(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(2, 2)

    assert solved_share(linear, range(2), steps=300) == 0.0  # no linear layer separates XOR
