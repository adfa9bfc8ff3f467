"""lowrank_linear: the reference against plain torch, the Triton kernel (interpreter) against the reference."""

from __future__ import annotations

import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.kernels.lowrank_matmul import (
    lowrank_linear,
    lowrank_linear_torch,
    lowrank_linear_triton,
)


def factors(m: int, n: int, r: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(r, n, generator=g).to(dtype), torch.randn(m, r, generator=g).to(dtype),
            torch.randn(m, generator=g).to(dtype))


def test_reference_is_the_product() -> None:
    down, up, bias = factors(9, 7, 3, torch.float64)
    x = torch.randn(4, 5, 7, dtype=torch.float64)
    want = x @ (up @ down).t() + bias
    assert torch.allclose(lowrank_linear_torch(x, down, up, bias), want, atol=1e-12)
    assert torch.allclose(lowrank_linear_torch(x, down, up), x @ (up @ down).t(), atol=1e-12)


def test_reference_is_differentiable() -> None:
    down, up, bias = factors(6, 5, 2)
    down.requires_grad_(True)
    lowrank_linear_torch(torch.randn(3, 5), down, up, bias).sum().backward()
    assert down.grad is not None and down.grad.shape == down.shape


def test_bad_shapes() -> None:
    down, up, bias = factors(6, 5, 2)
    with pytest.raises(InputError, match="features"):
        lowrank_linear_torch(torch.randn(3, 4), down, up, bias)
    with pytest.raises(InputError, match="does not follow"):
        lowrank_linear_torch(torch.randn(3, 5), down, up.t(), bias)
    with pytest.raises(InputError, match="bias"):
        lowrank_linear_torch(torch.randn(3, 5), down, up, torch.ones(2))


@pytest.mark.parametrize("shape,m,n,r", [((37,), 70, 50, 5), ((2, 19), 33, 64, 16), ((1,), 130, 3, 1),
                                         ((65,), 8, 40, 40)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float16, 2e-2)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_kernel_matches_reference(triton_device: str, shape: tuple, m: int, n: int, r: int, dtype: torch.dtype,
                                  tol: float, with_bias: bool) -> None:
    down, up, bias = factors(m, n, r, dtype)
    x = torch.randn(*shape, n).to(dtype)
    args = [t.to(triton_device) for t in (x, down, up)]
    b = bias.to(triton_device) if with_bias else None
    got = lowrank_linear_triton(*args, b).float().cpu()
    want = lowrank_linear_torch(x.float(), down.float(), up.float(), bias.float() if with_bias else None)
    assert got.shape == (*shape, m)
    scale = want.abs().max().clamp_min(1.0)
    assert float((got - want).abs().max() / scale) < tol


def test_kernel_empty_input(triton_device: str) -> None:
    down, up, bias = factors(6, 5, 2)
    y = lowrank_linear_triton(torch.empty(0, 5, device=triton_device), down.to(triton_device),
                              up.to(triton_device), bias.to(triton_device))
    assert y.shape == (0, 6)


def test_dispatch_uses_triton_when_forced(triton_device: str, kernel_env: pytest.MonkeyPatch) -> None:
    from dnnkit.kernels.dispatch import get_op

    op = get_op("lowrank_linear")
    down, up, bias = factors(6, 5, 2)
    x = torch.randn(3, 5)
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    if triton_device == "cpu":
        assert op.backend(x, down, up, bias) == "triton"
        assert torch.allclose(lowrank_linear(x, down, up, bias), lowrank_linear_torch(x, down, up, bias),
                              atol=1e-4)
        # gradients needed: the reference runs (the kernel has no backward)
        down.requires_grad_(True)
        assert op.backend(x, down, up, bias) == "torch"


def test_factored_layer_calls_the_op_on_either_backend(triton_device: str, kernel_env: pytest.MonkeyPatch) -> None:
    from dnnkit.nn.lowrank import LowRankLinear

    layer = LowRankLinear(12, 9, 4).to(triton_device)
    x = torch.randn(5, 12, device=triton_device)
    with torch.no_grad():
        kernel_env.setenv("DNNKIT_KERNELS", "torch")
        ref = layer(x)
        kernel_env.setenv("DNNKIT_KERNELS", "triton")
        got = layer(x)
    assert torch.allclose(got, ref, atol=1e-4)
