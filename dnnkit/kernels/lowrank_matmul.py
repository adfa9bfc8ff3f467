"""Fused low-rank linear map: y = (x V^T) U^T + b, the forward of a factored Linear layer.

`lowrank_linear(x, down, up, bias)` takes x (..., n), the "down" factor V^T as stored by
`nn.Linear` (r x n), the "up" factor U (m x r) and an optional bias (m). The PyTorch reference is
two `F.linear` calls (autograd works through it); the Triton kernel does both products in one
launch: each program loads a block of rows of x, keeps its rank-r projection in registers, and
writes every output column block from it, so the (rows x r) intermediate never goes to memory.
The kernel covers float16 / bfloat16 / float32 inputs with r <= 256 when no gradient is needed;
other calls (training) run on the reference.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch.nn import functional as F

from dnnkit.errors import InputError
from dnnkit.kernels.dispatch import register_op, triton_interpret_enabled

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_RANK = 256
BLOCK_M = 32
BLOCK_N = 64
BLOCK_K = 32


def _check(x: Any, down: Any, up: Any, bias: Any) -> None:
    for name, t in (("x", x), ("down", down), ("up", up)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"lowrank_linear: {name} must be a torch.Tensor, got {type(t).__name__}")
    if down.dim() != 2 or up.dim() != 2:
        raise InputError(f"lowrank_linear: factors must be matrices, got {tuple(down.shape)} and {tuple(up.shape)}")
    r, n = down.shape
    if up.shape[1] != r:
        raise InputError(f"lowrank_linear: up {tuple(up.shape)} does not follow down {tuple(down.shape)}")
    if x.shape[-1] != n:
        raise InputError(f"lowrank_linear: x has {x.shape[-1]} features, down expects {n}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (up.shape[0],)):
        raise InputError(f"lowrank_linear: bias must have shape ({up.shape[0]},)")


def lowrank_linear_torch(x: torch.Tensor, down: torch.Tensor, up: torch.Tensor,
                         bias: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: `F.linear(F.linear(x, down), up, bias)` (any device and dtype, differentiable)."""
    _check(x, down, up, bias)
    return F.linear(F.linear(x, down), up, bias)


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> Any:
    """Define the Triton kernel on first use (keyed on TRITON_INTERPRET, read when the decorator runs)."""
    del interpret
    import triton
    import triton.language as tl

    @triton.jit
    def lowrank_linear_kernel(x_ptr, v_ptr, u_ptr, b_ptr, y_ptr, M, N_IN, N_OUT, R,
                              stride_xm, stride_vr, stride_um, stride_ym,
                              HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr):
        # One program: rows [pid*BLOCK_M, +BLOCK_M). t = x_rows @ V^T (BLOCK_M x BLOCK_R, fp32 in
        # registers), then y_rows[:, cols] = t @ U[cols, :]^T + b[cols] for every column block.
        pid = tl.program_id(0)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        ranks = tl.arange(0, BLOCK_R)
        rank_ok = ranks < R
        t = tl.zeros([BLOCK_M, BLOCK_R], dtype=tl.float32)
        for k0 in range(0, N_IN, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_ok = ks < N_IN
            xb = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + ks[None, :],
                         mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            vb = tl.load(v_ptr + ranks[None, :] * stride_vr + ks[:, None],
                         mask=rank_ok[None, :] & k_ok[:, None], other=0.0)  # (BLOCK_K, BLOCK_R) = V^T block
            t += tl.dot(xb.to(tl.float32), vb.to(tl.float32), input_precision="ieee")
        for n0 in range(0, N_OUT, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            col_ok = cols < N_OUT
            ub = tl.load(u_ptr + cols[None, :] * stride_um + ranks[:, None],
                         mask=col_ok[None, :] & rank_ok[:, None], other=0.0)  # (BLOCK_R, BLOCK_N) = U^T block
            acc = tl.dot(t, ub.to(tl.float32), input_precision="ieee")
            if HAS_BIAS:
                acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
            tl.store(y_ptr + rows[:, None].to(tl.int64) * stride_ym + cols[None, :],
                     acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])

    return lowrank_linear_kernel


def _next_pow2(v: int) -> int:
    p = 1
    while p < v:
        p *= 2
    return p


def lowrank_linear_triton(x: torch.Tensor, down: torch.Tensor, up: torch.Tensor,
                          bias: torch.Tensor | None = None) -> torch.Tensor:
    """Triton kernel: both products in one launch, fp32 accumulation, output in x's dtype.

    Needs CUDA tensors (or TRITON_INTERPRET=1), a kernel dtype and rank <= 256; no autograd.
    """
    _check(x, down, up, bias)
    if x.dtype not in KERNEL_DTYPES or down.shape[0] > MAX_RANK:
        raise InputError(f"the lowrank_linear kernel covers float16/bfloat16/float32 and rank <= {MAX_RANK}",
                         hint="call lowrank_linear(), which runs other inputs on the reference")
    r, n = down.shape
    m = up.shape[0]
    lead = x.shape[:-1]
    x2 = x.reshape(-1, n).contiguous()
    v = down.to(x.dtype).contiguous()
    u = up.to(x.dtype).contiguous()
    rows = x2.shape[0]
    y = torch.empty((rows, m), dtype=x.dtype, device=x.device)
    if rows == 0:
        return y.reshape(*lead, m)
    b = bias.to(x.dtype).contiguous() if bias is not None else y  # dummy pointer when there is no bias
    kernel = _kernels(triton_interpret_enabled())
    grid = (-(-rows // BLOCK_M),)
    with torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext():
        kernel[grid](x2, v, u, b, y, rows, n, m, r, x2.stride(0), v.stride(0), u.stride(0), y.stride(0),
                     HAS_BIAS=bias is not None, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
                     BLOCK_R=max(16, _next_pow2(r)))
    return y.reshape(*lead, m)


def _kernel_covers(x: Any, down: Any, up: Any, bias: Any = None) -> bool:
    tensors = [t for t in (x, down, up, bias) if isinstance(t, torch.Tensor)]
    if len(tensors) < 3 or x.dtype not in KERNEL_DTYPES or down.dim() != 2 or down.shape[0] > MAX_RANK:
        return False
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return not needs_grad


_OP = register_op("lowrank_linear", lowrank_linear_torch, lowrank_linear_triton, triton_supports=_kernel_covers,
                  use_in_auto=False)


def lowrank_linear(x: torch.Tensor, down: torch.Tensor, up: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """(x down^T) up^T + bias on the backend `dnnkit.kernels.dispatch` picks."""
    return _OP(x, down, up, bias)
