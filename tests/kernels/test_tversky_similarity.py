"""tversky_similarity: reference vs a direct float64 loop over (i, j, k); Triton kernel (interpreter) vs reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dnnkit.kernels import tversky_similarity as ts
from dnnkit.kernels.tversky_similarity import (
    DIFFERENCES,
    INTERSECTIONS,
    SIMILARITIES,
    tversky_similarity,
    tversky_similarity_naive,
    tversky_similarity_torch,
    tversky_similarity_triton,
)

ALPHA, BETA, THETA = 0.3, 0.7, 1.2


def psi(a: float, b: float, kind: str) -> float:
    return {"product": a * b, "min": min(a, b), "max": max(a, b), "mean": (a + b) / 2, "gmean": math.sqrt(a * b),
            "softmin": -math.log(math.exp(-a) + math.exp(-b))}[kind]


def direct(ma: torch.Tensor, mb: torch.Tensor, inter: str, diff: str, sim: str) -> torch.Tensor:
    """The paper's definitions, one feature at a time, in float64."""
    out = torch.zeros(ma.shape[0], mb.shape[0], dtype=torch.float64)
    for i, j in itertools.product(range(ma.shape[0]), range(mb.shape[0])):
        i_ab = d_ab = d_ba = 0.0
        for a, b in zip(ma[i].double().tolist(), mb[j].double().tolist(), strict=True):
            if a > 0 and b > 0:
                i_ab += psi(a, b, inter)
                if diff == "substractmatch":
                    d_ab += max(a - b, 0.0)
                    d_ba += max(b - a, 0.0)
            elif a > 0:
                d_ab += a
            elif b > 0:
                d_ba += b
        d = ALPHA * d_ab + BETA * d_ba
        out[i, j] = THETA * i_ab - d if sim == "contrast" else i_ab / (i_ab + d + 1.0)
    return out


def measures(n: int = 6, p: int = 5, k: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ma, mb = torch.randn(n, k, generator=g), torch.randn(p, k, generator=g)
    ma[0, :3] = 0.0  # exact zeros are absent features
    mb[1, 2] = 0.0
    return ma, mb


@pytest.mark.parametrize("inter,diff,sim", list(itertools.product(INTERSECTIONS, DIFFERENCES, SIMILARITIES)))
def test_reference_matches_direct_loop(inter: str, diff: str, sim: str) -> None:
    ma, mb = measures()
    got = tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, inter, diff, sim)
    assert torch.allclose(got.double(), direct(ma, mb, inter, diff, sim), atol=1e-5, rtol=1e-5)


def grads(fn, ma: torch.Tensor, mb: torch.Tensor, inter: str, diff: str, sim: str) -> list[torch.Tensor]:
    a, b = ma.clone().requires_grad_(True), mb.clone().requires_grad_(True)
    params = [torch.tensor(v, requires_grad=True) for v in (ALPHA, BETA, THETA)]
    s = fn(a, b, *params, inter, diff, sim)
    weights = torch.linspace(-1, 1, s.numel()).reshape(s.shape)
    (s * weights).sum().backward()
    return [s.detach().float(), a.grad, b.grad, *(torch.zeros(()) if p.grad is None else p.grad for p in params)]


@pytest.mark.parametrize("inter,diff", list(itertools.product(INTERSECTIONS, DIFFERENCES)))
def test_reference_gradients_match_naive_autograd(inter: str, diff: str) -> None:
    ma, mb = measures(seed=1)
    for sim in SIMILARITIES:
        want = grads(tversky_similarity_naive, ma, mb, inter, diff, sim)
        got = grads(tversky_similarity_torch, ma, mb, inter, diff, sim)
        for w, g in zip(want, got, strict=True):
            assert torch.allclose(g, w, atol=1e-5, rtol=1e-4)


def test_chunked_reference_equals_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    ma, mb = measures(n=9, p=11, k=5, seed=2)
    want = grads(tversky_similarity_torch, ma, mb, "min", "substractmatch", "contrast")
    monkeypatch.setattr(ts, "CHUNK_ELEMENTS", 9 * 5 * 2)  # two prototypes per chunk
    got = grads(tversky_similarity_torch, ma, mb, "min", "substractmatch", "contrast")
    for w, g in zip(want, got, strict=True):
        assert torch.allclose(g, w, atol=1e-6)


def test_aggregate_agrees_with_per_feature_only_where_the_spec_says() -> None:
    ma, mb = measures(seed=3)
    for inter in ("product", "mean"):
        per = tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, inter, "ignorematch", "contrast")
        agg = tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, inter, "ignorematch", "contrast",
                                       reduction="aggregate")
        assert torch.allclose(per, agg, atol=1e-5)
    per = tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, "min", "substractmatch", "contrast")
    agg = tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, "min", "substractmatch", "contrast",
                                   reduction="aggregate")
    assert (per - agg).abs().max() > 1e-2


def test_dispatch_uses_reference_on_cpu(kernel_env: pytest.MonkeyPatch) -> None:
    ma, mb = measures()
    assert ts.kernel_backend(ma, mb) == "torch"
    got = tversky_similarity(ma, mb, ALPHA, BETA, THETA, intersection="gmean")
    assert torch.allclose(got, tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA, "gmean"))


@pytest.mark.parametrize("inter,diff", list(itertools.product(INTERSECTIONS, DIFFERENCES)))
def test_triton_matches_reference_fp32(inter: str, diff: str, triton_device: str) -> None:
    ma, mb = measures(n=17, p=18, k=20, seed=4)  # not multiples of the 16-wide tiles
    ma, mb = ma.to(triton_device), mb.to(triton_device)
    sims = SIMILARITIES if (inter, diff) == ("product", "substractmatch") else ("contrast",)
    for sim in sims:
        want = grads(tversky_similarity_torch, ma, mb, inter, diff, sim)
        got = grads(tversky_similarity_triton, ma, mb, inter, diff, sim)
        for w, g in zip(want, got, strict=True):
            assert torch.allclose(g.cpu(), w.cpu(), atol=1e-4, rtol=1e-4)
        assert torch.allclose(got[0].cpu().double(), direct(ma.cpu(), mb.cpu(), inter, diff, sim), atol=1e-4)


@pytest.mark.parametrize("inter", ["product", "softmin"])
def test_triton_fp16_inputs(inter: str, triton_device: str) -> None:
    ma, mb = measures(n=8, p=6, k=16, seed=5)
    ma16, mb16 = ma.half().to(triton_device), mb.half().to(triton_device)
    want = tversky_similarity_torch(ma16.float(), mb16.float(), ALPHA, BETA, THETA, inter)
    got = tversky_similarity_triton(ma16, mb16, ALPHA, BETA, THETA, inter)
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-3)
    a = ma16.clone().requires_grad_(True)
    tversky_similarity_triton(a, mb16, ALPHA, BETA, THETA, inter).sum().backward()
    assert a.grad.dtype == torch.float16 and torch.isfinite(a.grad.float()).all()


def test_dispatch_triton_mode_runs_kernel(kernel_env: pytest.MonkeyPatch, triton_device: str) -> None:
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    ma, mb = measures()
    ma, mb = ma.to(triton_device), mb.to(triton_device)
    assert ts.kernel_backend(ma, mb) == "triton"
    assert ts.kernel_backend(ma, mb, reduction="aggregate") == "torch"
    got = tversky_similarity(ma, mb, ALPHA, BETA, THETA)
    assert torch.allclose(got.cpu(), tversky_similarity_torch(ma, mb, ALPHA, BETA, THETA).cpu(), atol=1e-5)
