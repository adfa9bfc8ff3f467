"""The linear algebra of lowrank: balanced split, rank rules, ASVD scale, SVD-LLM whitening."""

from __future__ import annotations

import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.surgery.lowrank.decompose import (
    asvd_scale,
    break_even,
    decompose,
    global_allocation,
    rank_by_energy,
    rank_by_params,
    rank_by_ratio,
    whitening_factor,
)


def test_full_rank_split_reconstructs_and_is_balanced() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 5, generator=g, dtype=torch.float64)
    dec = decompose(w)
    up, down = dec.factors(5)
    assert torch.allclose(up @ down, w, atol=1e-12)
    # balanced: both factors carry sigma^(1/2)
    assert torch.allclose(up.norm(dim=0), dec.s.sqrt(), atol=1e-12)
    assert torch.allclose(down.norm(dim=1), dec.s.sqrt(), atol=1e-12)
    # sign convention: each left vector's largest-magnitude entry is positive
    idx = dec.u.abs().argmax(0)
    assert (dec.u[idx, torch.arange(5)] > 0).all()


def test_truncation_error_is_the_dropped_spectrum() -> None:
    w = torch.randn(20, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dec = decompose(w)
    up, down = dec.factors(4)
    err = float(((w - up @ down) ** 2).sum())
    assert err == pytest.approx(float((dec.s[4:] ** 2).sum()), rel=1e-9)


def test_rank_rules() -> None:
    assert rank_by_ratio(384, 1536, 0.5) == 192
    assert rank_by_ratio(10, 3, 0.1) == 1
    assert rank_by_params(384, 1536, 0.8) == int(0.8 * 384 * 1536 / (384 + 1536))
    assert break_even(384, 1536) == pytest.approx(307.2)
    assert break_even(576, 576) == 288
    s = torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    dec = decompose(torch.diag(s))
    assert rank_by_energy(dec, 9 / 14) == 1
    assert rank_by_energy(dec, 0.65) == 2
    assert rank_by_energy(dec, 1.0) == 3


def test_global_allocation_respects_budget_and_prefers_energy() -> None:
    spectra = {"a": (10, 10, torch.tensor([10.0, 9.0, 8.0, 7.0, 6.0])),
               "b": (10, 10, torch.tensor([10.0, 0.1, 0.1, 0.1, 0.1]))}
    ranks = global_allocation(spectra, 0.5)  # budget 100 params; each component costs 20
    assert sum(r * 20 for r in ranks.values()) <= 100
    assert ranks["a"] > ranks["b"] >= 1


def test_asvd_scale_clamps_dead_channels() -> None:
    s, clamped = asvd_scale(torch.tensor([4.0, 0.0, 1.0]), 0.5)
    assert clamped == 1
    assert torch.allclose(s, torch.tensor([2.0, 1e-6, 1.0], dtype=torch.float64))
    w = torch.randn(6, 3, dtype=torch.float64)
    up, down = decompose(w, "diag", s).factors(3)
    assert torch.allclose(up @ down, w, atol=1e-6)


def test_whitening_matches_the_svd_llm_identity() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 6, generator=g, dtype=torch.float64)
    x = torch.randn(6, 200, generator=g, dtype=torch.float64) * torch.tensor([5, 1, 1, 0.2, 3, 1.0])[:, None]
    chol, rel, escalated = whitening_factor(x @ x.t(), "layer")
    assert not escalated and rel == pytest.approx(1e-6)
    dec = decompose(w, "cholesky", chol)
    for r in (1, 3, 5):
        up, down = dec.factors(r)
        err = float((((w - up @ down) @ x) ** 2).sum())
        assert err == pytest.approx(float((dec.s[r:] ** 2).sum()), rel=1e-3)  # up to the 1e-6 jitter
    # whitening beats plain SVD on the calibration activations
    up, down = decompose(w).factors(2)
    upw, downw = dec.factors(2)
    assert float((((w - upw @ downw) @ x) ** 2).sum()) < float((((w - up @ down) @ x) ** 2).sum())


def test_whitening_regularises_a_singular_covariance() -> None:
    x = torch.randn(4, 50, dtype=torch.float64)
    x[2] = 0.0  # a dead channel: G is singular
    x[3] = x[0]  # and a duplicated one
    chol, rel, escalated = whitening_factor(x @ x.t(), "layer")
    assert torch.isfinite(chol).all()
    assert rel >= 1e-6


def test_whitening_rejects_nan_and_zero_covariances() -> None:
    g = torch.eye(3, dtype=torch.float64)
    g[0, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        whitening_factor(g, "blk.fc")
    with pytest.raises(InputError, match="all zero"):
        whitening_factor(torch.zeros(3, 3, dtype=torch.float64), "blk.fc")


def test_nan_weight_is_input_error() -> None:
    w = torch.ones(3, 3)
    w[1, 1] = float("inf")
    with pytest.raises(InputError, match="NaN or Inf"):
        decompose(w)
