"""bcos_linear: the reference against the formula, the Triton kernel (interpreter) against the reference."""

from __future__ import annotations

import pytest
import torch

from dnnkit.kernels.bcos_linear import bcos_linear, bcos_linear_torch, bcos_linear_triton

BS = [1.0, 1.5, 2.0, 2.5]


@pytest.mark.parametrize("b", BS)
def test_reference_formula(b: float) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(6, 9, dtype=torch.float64), torch.randn(4, 9, dtype=torch.float64)
    lin = x @ w.t()
    ratio = lin.abs() / (x.norm(dim=1, keepdim=True) + 1e-12)
    want = lin if b == 1 else lin * (ratio if b == 2 else (ratio + 1e-6) ** (b - 1))
    torch.testing.assert_close(bcos_linear_torch(x, w, b), want)


def test_detach_makes_the_output_linear_for_autograd() -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 7, dtype=torch.float64)
    out = bcos_linear_torch(x, w, 2.0, detach=True)
    (g,) = torch.autograd.grad(out[:, 2].sum(), x)
    torch.testing.assert_close((g * x).sum(1), out[:, 2].detach())


@pytest.mark.parametrize("b", BS)
@pytest.mark.parametrize("detach", [False, True])
def test_triton_forward_and_backward_match_reference(triton_device: str, b: float, detach: bool) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 19, 40, device=triton_device, requires_grad=True)
    w = torch.randn(37, 40, device=triton_device, requires_grad=True)
    got = bcos_linear_triton(x, w, b, detach)
    want = bcos_linear_torch(x, w, b, detach)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(want)
    gx1, gw1 = torch.autograd.grad(got, (x, w), g)
    gx2, gw2 = torch.autograd.grad(want, (x, w), g)
    torch.testing.assert_close(gx1, gx2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gw1, gw2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("b", [1.0, 2.0, 2.5])
def test_triton_fp16(triton_device: str, b: float) -> None:
    torch.manual_seed(3)
    x = torch.randn(33, 48, device=triton_device, dtype=torch.float16)
    w = (torch.randn(20, 48, device=triton_device) / 7).to(torch.float16)
    got = bcos_linear_triton(x, w, b).float()
    want = bcos_linear_torch(x.float(), w.float(), b)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_dispatch_picks_triton_when_forced(triton_device: str, kernel_env: pytest.MonkeyPatch) -> None:
    from dnnkit.kernels.dispatch import get_op

    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    x, w = torch.randn(4, 8, device=triton_device), torch.randn(3, 8, device=triton_device)
    assert get_op("bcos_linear").backend(x, w, 2.0, False) == "triton"
    torch.testing.assert_close(bcos_linear(x, w, 2.0), bcos_linear_torch(x, w, 2.0), rtol=1e-4, atol=1e-4)
    kernel_env.setenv("DNNKIT_KERNELS", "torch")
    assert get_op("bcos_linear").backend(x, w, 2.0, False) == "torch"
