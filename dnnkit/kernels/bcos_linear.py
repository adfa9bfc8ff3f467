"""B-cos linear op: out = (w^T x) * (|w^T x| / ||x||)^(B-1), no bias (B-cos networks, CVPR 2022 / TPAMI 2024).

`bcos_linear(x, weight, b, detach=False)` dispatches (see `dnnkit.kernels.dispatch`) between
`bcos_linear_torch`, the plain PyTorch reference (any device and dtype, autograd through it), and
`bcos_linear_triton`, one Triton launch that computes the product w^T x, the row norms ||x|| from
the same input tiles and the |cos|^(B-1) scale, writing `out` and the row norms. Its backward is
analytic (torch matmuls), from x, w and the saved norms. With `detach=True` the scale is a
constant for autograd (explanation mode: the output is then W(x) x with W(x) = scale * w).

Numerics follow the authors' code: ||x|| = ||x||_2 + 1e-12; B = 2 uses |w^T x| / ||x|| as is,
other B use (|w^T x| / ||x|| + 1e-6)^(B-1); B = 1 is a plain bias-free linear map.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch.nn import functional as F  # noqa: N812

from dnnkit.kernels.dispatch import register_op, triton_interpret_enabled

NORM_EPS = 1e-12
POW_EPS = 1e-6
BLOCK_M = 32
BLOCK_N = 32
BLOCK_K = 32
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _scale(ratio: torch.Tensor, b: float) -> torch.Tensor:
    if b == 2:
        return ratio
    return (ratio + POW_EPS) ** (b - 1)


def bcos_linear_torch(x: torch.Tensor, weight: torch.Tensor, b: float, detach: bool = False) -> torch.Tensor:
    """PyTorch reference over the last dimension of `x` (weight is out_features x in_features)."""
    lin = F.linear(x, weight)
    if b == 1:
        return lin
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) + NORM_EPS
    scale = _scale(lin.abs() / norm, b)
    if detach:
        scale = scale.detach()
    return lin * scale


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> Any:
    """Define the Triton kernel on first use (keyed on TRITON_INTERPRET, read by Triton at definition)."""
    del interpret
    import triton
    import triton.language as tl

    @triton.jit
    def bcos_linear_kernel(x_ptr, w_ptr, out_ptr, norm_ptr, M, N, K, b_minus_1,
                           stride_xm, stride_xk, stride_wn, stride_wk, stride_om, stride_on,
                           MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
        # One (BLOCK_M x BLOCK_N) output tile: accumulate x @ w^T and sum x^2 over the same x tiles,
        # then scale by (|lin| / ||x||)^(B-1). MODE 0: B = 1; 1: B = 2; 2: general B.
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        sq = tl.zeros([BLOCK_M], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + rk
            xm = (rm[:, None] < M) & (kk[None, :] < K)
            wm = (rn[:, None] < N) & (kk[None, :] < K)
            xt = tl.load(x_ptr + rm[:, None] * stride_xm + kk[None, :] * stride_xk, mask=xm, other=0.0)
            wt = tl.load(w_ptr + rn[:, None] * stride_wn + kk[None, :] * stride_wk, mask=wm, other=0.0)
            acc += tl.dot(xt, tl.trans(wt), out_dtype=tl.float32, input_precision=PRECISION)
            xf = xt.to(tl.float32)
            sq += tl.sum(xf * xf, axis=1)
        norm = tl.sqrt(sq) + 1e-12
        if MODE == 0:
            out = acc
        elif MODE == 1:
            out = acc * (tl.abs(acc) / norm[:, None])
        else:
            ratio = tl.abs(acc) / norm[:, None] + 1e-6
            out = acc * tl.exp2(b_minus_1 * tl.log2(ratio))
        om = (rm[:, None] < M) & (rn[None, :] < N)
        tl.store(out_ptr + rm[:, None] * stride_om + rn[None, :] * stride_on,
                 out.to(out_ptr.dtype.element_ty), mask=om)
        if pid_n == 0:
            tl.store(norm_ptr + rm, norm, mask=rm < M)

    return bcos_linear_kernel


def _launch(x2: torch.Tensor, weight: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel on a 2-D contiguous x: (out, norms) with norms = ||x||_2 + 1e-12 in float32."""
    import triton

    m, k = x2.shape
    n = weight.shape[0]
    out = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
    norms = torch.empty((m,), dtype=torch.float32, device=x2.device)
    mode = 0 if b == 1 else (1 if b == 2 else 2)
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N))
    kernel = _kernels(triton_interpret_enabled())
    with torch.cuda.device(x2.device) if x2.device.type == "cuda" else contextlib.nullcontext():
        kernel[grid](x2, weight, out, norms, m, n, k, float(b - 1),
                     x2.stride(0), x2.stride(1), weight.stride(0), weight.stride(1), out.stride(0), out.stride(1),
                     MODE=mode, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
                     # fp32 stays fp32 ("ieee"): TF32 gave 1e-3 relative error on an H100, which would
                     # break the completeness of B-cos explanations; fp16 uses the tensor cores as usual.
                     PRECISION="ieee" if x2.dtype == torch.float32 else "tf32")
    return out, norms


def bcos_linear_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, norms: torch.Tensor, b: float,
                         detach: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic gradients (x, weight) of the B-cos linear map, in float32, from x, w and the saved norms.

    With u = |lin|/n (+1e-6 unless B = 2) and scale = u^(B-1): d out/d lin = scale + (B-1) u^(B-2) |lin|/n and
    d out/d n = -(B-1) u^(B-2) lin |lin| / n^2 (dropped when detached); d n / d x = x / ||x||.
    """
    g, xf, wf = grad.float(), x.float(), weight.float()
    if b == 1:
        return (g @ wf).to(x.dtype), (g.t() @ xf).to(weight.dtype)
    lin = xf @ wf.t()
    n = norms.float()[:, None]
    s = lin.abs() / n
    u = s if b == 2 else s + POW_EPS
    scale = u if b == 2 else u ** (b - 1)
    if detach:
        g_lin = g * scale
        gx = g_lin @ wf
    else:
        du = (b - 1) * (torch.ones_like(u) if b == 2 else u ** (b - 2))
        g_lin = g * (scale + du * s)
        g_n = -(g * du * lin * s / n).sum(dim=1, keepdim=True)
        unit = xf / (n - NORM_EPS).clamp_min(1e-30)
        gx = g_lin @ wf + g_n * unit
    return gx.to(x.dtype), (g_lin.t() @ xf).to(weight.dtype)


class _BcosLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, weight: torch.Tensor, b: float, detach: bool) -> torch.Tensor:
        out, norms = _launch(x2, weight, b)
        ctx.save_for_backward(x2, weight, norms)
        ctx.b, ctx.detach = b, detach
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x2, weight, norms = ctx.saved_tensors
        gx, gw = bcos_linear_backward(grad, x2, weight, norms, ctx.b, ctx.detach)
        return (gx if ctx.needs_input_grad[0] else None, gw if ctx.needs_input_grad[1] else None, None, None)


def bcos_linear_triton(x: torch.Tensor, weight: torch.Tensor, b: float, detach: bool = False) -> torch.Tensor:
    """Triton kernel (one launch; CUDA tensors, or CPU under TRITON_INTERPRET=1), autograd-aware."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    w = weight.contiguous()
    out = _BcosLinearFn.apply(x2, w, float(b), bool(detach))
    return out.reshape(*lead, weight.shape[0])


def _kernel_covers(x: Any, weight: Any, *args: Any, **kwargs: Any) -> bool:
    return (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor) and x.dtype in KERNEL_DTYPES
            and x.dtype == weight.dtype and x.dim() >= 1 and x.shape[-1] > 0 and x.numel() > 0)


_OP = register_op("bcos_linear", bcos_linear_torch, bcos_linear_triton, triton_supports=_kernel_covers,
                  use_in_auto=False)


def bcos_linear(x: torch.Tensor, weight: torch.Tensor, b: float, detach: bool = False) -> torch.Tensor:
    """B-cos linear map on the backend `dnnkit.kernels.dispatch` picks."""
    return _OP(x, weight, b, detach)
