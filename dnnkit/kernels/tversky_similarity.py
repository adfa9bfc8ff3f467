"""Differentiable Tversky similarity between n objects and p prototypes over K learned features.

Inputs are the feature measures M_a = X Omega^T (n x K) and M_b = Pi Omega^T (p x K); feature k is
present in an object iff its measure is > 0. The op returns S (n x p):

- contrast: S = theta * f(A & B) - alpha * f(A - B) - beta * f(B - A)
- ratio:    S = I / (I + alpha * f(A - B) + beta * f(B - A) + 1)

with, per feature (``reduction="per-feature"``, the paper's definition),
f(A & B) = sum_k Psi(a_k, b_k) [a_k > 0, b_k > 0] and f(A - B) = sum_k a_k [a_k > 0, b_k <= 0]
(``ignorematch``) plus sum_k ReLU(a_k - b_k) [both present] (``substractmatch``).

The three sums (I, D_ab, D_ba) come from a custom autograd function that never materialises the
n x p x K tensor: the PyTorch reference walks prototype chunks (live temporaries of at most 16 MiB), the
Triton kernel tiles (n, p) and loops over K in registers. Backward recomputes the masks from M_a,
M_b and the incoming gradients of the three sums (n x p each). Indicators are hard (no gradient).
``reduction="aggregate"`` sums the shared measures first (I_a, I_b), then applies Psi: matmuls only.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from dnnkit.errors import InputError
from dnnkit.kernels.dispatch import register_op, triton_interpret_enabled

INTERSECTIONS = ("product", "min", "max", "mean", "gmean", "softmin")
DIFFERENCES = ("substractmatch", "ignorematch")
SIMILARITIES = ("contrast", "ratio")
REDUCTIONS = ("per-feature", "aggregate")
RATIO_EPS = 1.0
CHUNK_ELEMENTS = 1 << 22  # reference: n * chunk * K float32 elements per live temporary (16 MiB)
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BLOCK_N, BLOCK_P, BLOCK_K = 16, 16, 16


def check_options(intersection: str, difference: str, similarity: str, reduction: str) -> None:
    """One clear error for an unknown variant name."""
    for value, allowed, what in ((intersection, INTERSECTIONS, "intersection"), (difference, DIFFERENCES, "difference"),
                                 (similarity, SIMILARITIES, "similarity"), (reduction, REDUCTIONS, "reduction")):
        if value not in allowed:
            raise InputError(f"unknown {what} {value!r}", hint=f"use one of {', '.join(allowed)}")


# ----------------------------------------------------------------------------------------------------------
# Element-wise pieces (reference). u: measure in object a, v: measure in object b; broadcast shapes.


def _psi(u: torch.Tensor, v: torch.Tensor, kind: str) -> torch.Tensor:
    """Psi(u, v); only used where both are > 0 (callers mask)."""
    if kind == "product":
        return u * v
    if kind == "min":
        return torch.minimum(u, v)
    if kind == "max":
        return torch.maximum(u, v)
    if kind == "mean":
        return (u + v) * 0.5
    if kind == "gmean":
        return (u * v).clamp_min(0).sqrt()
    return -torch.logaddexp(-u, -v)  # softmin


def _psi_grad_u(u: torch.Tensor, v: torch.Tensor, kind: str) -> torch.Tensor:
    """dPsi/du where both are > 0 (Psi is symmetric, so dPsi/dv(u, v) = dPsi/du(v, u)); ties split evenly."""
    if kind == "product":
        return v.expand_as(u * v)
    if kind == "min":
        return (u < v).to(u.dtype) + 0.5 * (u == v).to(u.dtype)
    if kind == "max":
        return (u > v).to(u.dtype) + 0.5 * (u == v).to(u.dtype)
    if kind == "mean":
        return torch.full_like(u * v, 0.5)
    if kind == "gmean":
        return 0.5 * (v.clamp_min(1e-30) / u.clamp_min(1e-30)).sqrt()
    return torch.sigmoid(v - u)  # softmin


def _diff(u: torch.Tensor, v: torch.Tensor, substract: bool) -> torch.Tensor:
    """Per-feature f(A - B) terms: u where only a has the feature, plus (substractmatch) a's excess on shared ones."""
    pu, pv = u > 0, v > 0
    out = torch.where(pu & ~pv, u, 0.0)
    if substract:
        out = out + torch.where(pu & pv, (u - v).clamp_min(0), 0.0)
    return out


def _diff_grads(u: torch.Tensor, v: torch.Tensor, substract: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d/du, d/dv) of `_diff(u, v)` (indicators are constants)."""
    pu, pv = u > 0, v > 0
    du = (pu & ~pv).to(u.dtype)
    dv = torch.zeros_like(du)
    if substract:
        excess = (pu & pv & (u > v)).to(u.dtype)
        du = du + excess
        dv = dv - excess
    return du, dv


def _chunk(n: int, k: int) -> int:
    if not isinstance(n, int):  # a symbolic batch (torch.export): chunks sized for a batch of 64, fixed in the graph
        n = 64
    return max(1, CHUNK_ELEMENTS // max(1, n * k))


def sums_torch_forward(ma: torch.Tensor, mb: torch.Tensor, intersection: str, difference: str
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, D_ab, D_ba), each n x p, walking prototype chunks (no full n x p x K tensor)."""
    n, k = ma.shape
    p = mb.shape[0]
    sub = difference == "substractmatch"
    out = [ma.new_zeros(n, p) for _ in range(3)]
    u = ma[:, None, :]
    step = _chunk(n, k)
    for j0 in range(0, p, step):
        v = mb[None, j0:j0 + step, :]
        both = (u > 0) & (v > 0)
        out[0][:, j0:j0 + step] = torch.where(both, _psi(u, v, intersection), 0.0).sum(-1)
        out[1][:, j0:j0 + step] = _diff(u, v, sub).sum(-1)
        out[2][:, j0:j0 + step] = _diff(v, u, sub).sum(-1)
    return out[0], out[1], out[2]


def sums_torch_backward(ma: torch.Tensor, mb: torch.Tensor, g_i: torch.Tensor, g_ab: torch.Tensor,
                        g_ba: torch.Tensor, intersection: str, difference: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of sum(g_i * I + g_ab * D_ab + g_ba * D_ba) w.r.t. M_a and M_b, chunked like the forward."""
    n, k = ma.shape
    p = mb.shape[0]
    sub = difference == "substractmatch"
    d_a = torch.zeros_like(ma)
    d_b = torch.zeros_like(mb)
    u = ma[:, None, :]
    step = _chunk(n, k)
    for j0 in range(0, p, step):
        v = mb[None, j0:j0 + step, :]
        gi, gab, gba = (g[:, j0:j0 + step, None] for g in (g_i, g_ab, g_ba))
        both = ((u > 0) & (v > 0)).to(ma.dtype)
        ab_du, ab_dv = _diff_grads(u, v, sub)
        ba_dv, ba_du = _diff_grads(v, u, sub)
        d_a += (gi * both * _psi_grad_u(u, v, intersection) + gab * ab_du + gba * ba_du).sum(1)
        d_b[j0:j0 + step] = (gi * both * _psi_grad_u(v, u, intersection) + gab * ab_dv + gba * ba_dv).sum(0)
    return d_a, d_b


# ----------------------------------------------------------------------------------------------------------
# Triton kernels: forward tiles (n, p) and loops over K; backward tiles (rows, K) and loops over the other side.

_PSI_CODE = {name: i for i, name in enumerate(INTERSECTIONS)}


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> Any:
    """Define the Triton kernels on first use (keyed on TRITON_INTERPRET, read when the decorator runs)."""
    del interpret
    import triton
    import triton.language as tl

    @triton.jit
    def tversky_sums_fwd(a_ptr, b_ptr, i_ptr, dab_ptr, dba_ptr, n, p, k,
                         PSI: tl.constexpr, SUB: tl.constexpr,
                         BN: tl.constexpr, BP: tl.constexpr, BK: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_p = tl.program_id(1)
        rn = pid_n * BN + tl.arange(0, BN)
        rp = pid_p * BP + tl.arange(0, BP)
        acc_i = tl.zeros([BN, BP], dtype=tl.float32)
        acc_ab = tl.zeros([BN, BP], dtype=tl.float32)
        acc_ba = tl.zeros([BN, BP], dtype=tl.float32)
        for k0 in range(0, k, BK):
            rk = k0 + tl.arange(0, BK)
            a = tl.load(a_ptr + rn[:, None] * k + rk[None, :], mask=(rn[:, None] < n) & (rk[None, :] < k),
                        other=0.0).to(tl.float32)
            b = tl.load(b_ptr + rp[:, None] * k + rk[None, :], mask=(rp[:, None] < p) & (rk[None, :] < k),
                        other=0.0).to(tl.float32)
            u = a[:, None, :]
            v = b[None, :, :]
            pu = u > 0
            pv = v > 0
            both = pu & pv
            if PSI == 0:
                psi = u * v
            elif PSI == 1:
                psi = tl.minimum(u, v)
            elif PSI == 2:
                psi = tl.maximum(u, v)
            elif PSI == 3:
                psi = (u + v) * 0.5
            elif PSI == 4:
                psi = tl.sqrt(tl.maximum(u * v, 0.0))
            else:
                lo = tl.minimum(u, v)
                psi = lo - tl.log(1.0 + tl.exp(-tl.abs(u - v)))
            acc_i += tl.sum(tl.where(both, psi, 0.0), axis=2)
            d_ab = tl.where(pu & (v <= 0), u, 0.0)
            d_ba = tl.where(pv & (u <= 0), v, 0.0)
            if SUB:
                d_ab += tl.where(both, tl.maximum(u - v, 0.0), 0.0)
                d_ba += tl.where(both, tl.maximum(v - u, 0.0), 0.0)
            acc_ab += tl.sum(d_ab, axis=2)
            acc_ba += tl.sum(d_ba, axis=2)
        offs = rn[:, None] * p + rp[None, :]
        mask = (rn[:, None] < n) & (rp[None, :] < p)
        tl.store(i_ptr + offs, acc_i, mask=mask)
        tl.store(dab_ptr + offs, acc_ab, mask=mask)
        tl.store(dba_ptr + offs, acc_ba, mask=mask)

    @triton.jit
    def tversky_sums_bwd(x_ptr, y_ptr, gi_ptr, gxy_ptr, gyx_ptr, dx_ptr, nx, ny, k, sgx, sgy,
                         PSI: tl.constexpr, SUB: tl.constexpr,
                         BX: tl.constexpr, BY: tl.constexpr, BK: tl.constexpr):
        # Gradient w.r.t. the rows x of one side: sum over y of gi*dPsi/dx + gxy*dD_xy/dx + gyx*dD_yx/dx,
        # g[x, y] read through strides (sgx, sgy) so one kernel serves both sides.
        pid_x = tl.program_id(0)
        pid_k = tl.program_id(1)
        rx = pid_x * BX + tl.arange(0, BX)
        rk = pid_k * BK + tl.arange(0, BK)
        x = tl.load(x_ptr + rx[:, None] * k + rk[None, :], mask=(rx[:, None] < nx) & (rk[None, :] < k),
                    other=0.0).to(tl.float32)
        u = x[:, None, :]
        pu = u > 0
        acc = tl.zeros([BX, BK], dtype=tl.float32)
        for y0 in range(0, ny, BY):
            ry = y0 + tl.arange(0, BY)
            y = tl.load(y_ptr + ry[:, None] * k + rk[None, :], mask=(ry[:, None] < ny) & (rk[None, :] < k),
                        other=0.0).to(tl.float32)
            goffs = rx[:, None] * sgx + ry[None, :] * sgy
            gmask = (rx[:, None] < nx) & (ry[None, :] < ny)
            gi = tl.load(gi_ptr + goffs, mask=gmask, other=0.0)[:, :, None]
            gxy = tl.load(gxy_ptr + goffs, mask=gmask, other=0.0)[:, :, None]
            gyx = tl.load(gyx_ptr + goffs, mask=gmask, other=0.0)[:, :, None]
            v = y[None, :, :]
            pv = v > 0
            both = pu & pv
            if PSI == 0:
                dpsi = v + 0.0 * u
            elif PSI == 1:
                dpsi = tl.where(u < v, 1.0, tl.where(u == v, 0.5, 0.0))
            elif PSI == 2:
                dpsi = tl.where(u > v, 1.0, tl.where(u == v, 0.5, 0.0))
            elif PSI == 3:
                dpsi = 0.5 + 0.0 * (u + v)
            elif PSI == 4:
                dpsi = 0.5 * tl.sqrt(tl.maximum(v, 1e-30) / tl.maximum(u, 1e-30))
            else:
                dpsi = 1.0 / (1.0 + tl.exp(u - v))
            term = gi * tl.where(both, dpsi, 0.0) + gxy * tl.where(pu & (v <= 0), 1.0, 0.0)
            if SUB:
                term += gxy * tl.where(both & (u > v), 1.0, 0.0) - gyx * tl.where(both & (v > u), 1.0, 0.0)
            acc += tl.sum(term, axis=1)
        tl.store(dx_ptr + rx[:, None] * k + rk[None, :], acc, mask=(rx[:, None] < nx) & (rk[None, :] < k))

    return tversky_sums_fwd, tversky_sums_bwd


def _device_ctx(t: torch.Tensor) -> Any:
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def sums_triton_forward(ma: torch.Tensor, mb: torch.Tensor, intersection: str, difference: str
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, D_ab, D_ba) in float32 from one Triton launch (CUDA tensors, or TRITON_INTERPRET=1)."""
    ma, mb = ma.contiguous(), mb.contiguous()
    n, k = ma.shape
    p = mb.shape[0]
    outs = [torch.empty(n, p, dtype=torch.float32, device=ma.device) for _ in range(3)]
    fwd, _ = _kernels(triton_interpret_enabled())
    grid = (-(-n // BLOCK_N), -(-p // BLOCK_P))
    with _device_ctx(ma):
        fwd[grid](ma, mb, *outs, n, p, k, PSI=_PSI_CODE[intersection], SUB=difference == "substractmatch",
                  BN=BLOCK_N, BP=BLOCK_P, BK=BLOCK_K)
    return outs[0], outs[1], outs[2]


def sums_triton_backward(ma: torch.Tensor, mb: torch.Tensor, g_i: torch.Tensor, g_ab: torch.Tensor,
                         g_ba: torch.Tensor, intersection: str, difference: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. M_a and M_b (float32) from two launches of the backward kernel."""
    ma, mb = ma.contiguous(), mb.contiguous()
    g_i, g_ab, g_ba = (g.float().contiguous() for g in (g_i, g_ab, g_ba))
    n, k = ma.shape
    p = mb.shape[0]
    d_a = torch.empty(n, k, dtype=torch.float32, device=ma.device)
    d_b = torch.empty(p, k, dtype=torch.float32, device=ma.device)
    _, bwd = _kernels(triton_interpret_enabled())
    code, sub = _PSI_CODE[intersection], difference == "substractmatch"
    with _device_ctx(ma):
        bwd[(-(-n // BLOCK_N), -(-k // BLOCK_K))](ma, mb, g_i, g_ab, g_ba, d_a, n, p, k, p, 1, PSI=code, SUB=sub,
                                                   BX=BLOCK_N, BY=BLOCK_P, BK=BLOCK_K)
        bwd[(-(-p // BLOCK_P), -(-k // BLOCK_K))](mb, ma, g_i, g_ba, g_ab, d_b, p, n, k, 1, p, PSI=code, SUB=sub,
                                                   BX=BLOCK_P, BY=BLOCK_N, BK=BLOCK_K)
    return d_a, d_b


class _TverskySums(torch.autograd.Function):
    """(M_a, M_b) -> (I, D_ab, D_ba) with a backward that recomputes masks instead of storing n x p x K."""

    @staticmethod
    def forward(ctx: Any, ma: torch.Tensor, mb: torch.Tensor, intersection: str, difference: str,
                backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(ma, mb)
        ctx.options = (intersection, difference, backend)
        fn = sums_triton_forward if backend == "triton" else sums_torch_forward
        return fn(ma, mb, intersection, difference)

    @staticmethod
    def backward(ctx: Any, g_i: torch.Tensor | None, g_ab: torch.Tensor | None, g_ba: torch.Tensor | None) -> Any:
        ma, mb = ctx.saved_tensors
        intersection, difference, backend = ctx.options
        zero = ma.new_zeros(ma.shape[0], mb.shape[0])
        g_i, g_ab, g_ba = (zero if g is None else g.to(ma.dtype) for g in (g_i, g_ab, g_ba))
        fn = sums_triton_backward if backend == "triton" else sums_torch_backward
        d_a, d_b = fn(ma, mb, g_i, g_ab, g_ba, intersection, difference)
        return d_a.to(ma.dtype), d_b.to(mb.dtype), None, None, None


# ----------------------------------------------------------------------------------------------------------
# Sums by reduction, and the combination into S.


def _matmul_sums(ma: torch.Tensor, mb: torch.Tensor, intersection: str
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Product or mean intersection with ignorematch: three matmuls of n x K and p x K matrices."""
    ra, rb = ma.clamp_min(0), mb.clamp_min(0)
    ha, hb = (ma > 0).to(ma.dtype), (mb > 0).to(mb.dtype)
    if intersection == "product":
        inter = ra @ rb.T
    else:
        inter = (ra @ hb.T + ha @ rb.T) * 0.5
    return inter, ra @ (1 - hb).T, (1 - ha) @ rb.T


class _SharedExcess(torch.autograd.Function):
    """E_ab = sum_k [b_k > 0] ReLU(a_k - b_k) = sum over shared features of a's excess (n x p), chunked."""

    @staticmethod
    def forward(ctx: Any, ma: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ma, mb)
        n, k = ma.shape
        out = ma.new_zeros(n, mb.shape[0])
        step = _chunk(n, k)
        for j0 in range(0, mb.shape[0], step):
            v = mb[None, j0:j0 + step, :]
            out[:, j0:j0 + step] = ((ma[:, None, :] - v).clamp_min_(0) * (v > 0)).sum(-1)
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> Any:
        ma, mb = ctx.saved_tensors
        n, k = ma.shape
        d_a, d_b = torch.zeros_like(ma), torch.zeros_like(mb)
        step = _chunk(n, k)
        for j0 in range(0, mb.shape[0], step):
            v = mb[None, j0:j0 + step, :]
            weighted = ((ma[:, None, :] > v) & (v > 0)) * g[:, j0:j0 + step, None]
            d_a += weighted.sum(1)
            d_b[j0:j0 + step] = -weighted.sum(0)
        return d_a, d_b


def _matmul_excess_sums(ma: torch.Tensor, mb: torch.Tensor, intersection: str, difference: str
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Product/mean: matmuls, plus (substractmatch) one chunked pass for the shared excess.

    With E_ab = sum_shared ReLU(a - b): E_ba = E_ab - (I_a - I_b), since ReLU(t) - ReLU(-t) = t.
    """
    inter, d_ab, d_ba = _matmul_sums(ma, mb, intersection)
    if difference == "substractmatch":
        ra, rb = ma.clamp_min(0), mb.clamp_min(0)
        ha, hb = (ma > 0).to(ma.dtype), (mb > 0).to(mb.dtype)
        excess = _SharedExcess.apply(ma, mb)
        d_ab = d_ab + excess
        d_ba = d_ba + excess - (ra @ hb.T - ha @ rb.T)
    return inter, d_ab, d_ba


def _aggregate_sums(ma: torch.Tensor, mb: torch.Tensor, intersection: str, difference: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sum-first form: I_a, I_b = shared measures of a and b, then Psi(I_a, I_b) (product stays per feature)."""
    ra, rb = ma.clamp_min(0), mb.clamp_min(0)
    ha, hb = (ma > 0).to(ma.dtype), (mb > 0).to(mb.dtype)
    i_a, i_b = ra @ hb.T, ha @ rb.T
    shared = (ha @ hb.T) > 0
    if intersection == "product":
        inter = ra @ rb.T
    elif intersection == "mean":
        inter = (i_a + i_b) * 0.5
    elif intersection == "gmean":
        prod = i_a * i_b
        inter = torch.where(prod > 0, prod.clamp_min(1e-30).sqrt(), 0.0)
    else:
        inter = torch.where(shared, _psi(i_a, i_b, intersection), 0.0)
    d_ab, d_ba = ra @ (1 - hb).T, (1 - ha) @ rb.T
    if difference == "substractmatch":
        d_ab = d_ab + (i_a - i_b).clamp_min(0)
        d_ba = d_ba + (i_b - i_a).clamp_min(0)
    return inter, d_ab, d_ba


def tversky_sums(ma: torch.Tensor, mb: torch.Tensor, intersection: str = "product", difference: str = "substractmatch",
                 reduction: str = "per-feature", backend: str = "torch"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(f(A & B), f(A - B), f(B - A)) for every (object, prototype) pair, each n x p, float32."""
    ma, mb = ma.float(), mb.float()
    if reduction == "aggregate":
        return _aggregate_sums(ma, mb, intersection, difference)
    if backend == "torch" and intersection in ("product", "mean"):
        return _matmul_excess_sums(ma, mb, intersection, difference)
    return _TverskySums.apply(ma, mb, intersection, difference, backend)


def combine(inter: torch.Tensor, d_ab: torch.Tensor, d_ba: torch.Tensor, alpha: torch.Tensor | float,
            beta: torch.Tensor | float, theta: torch.Tensor | float, similarity: str) -> torch.Tensor:
    """S from the three sums: contrast model, or ratio model with constant 1 in the denominator."""
    if similarity == "contrast":
        return theta * inter - alpha * d_ab - beta * d_ba
    return inter / (inter + alpha * d_ab + beta * d_ba + RATIO_EPS)


def _similarity(ma: torch.Tensor, mb: torch.Tensor, alpha: Any, beta: Any, theta: Any, intersection: str,
                difference: str, similarity: str, reduction: str, backend: str) -> torch.Tensor:
    check_options(intersection, difference, similarity, reduction)
    if ma.dim() != 2 or mb.dim() != 2 or ma.shape[1] != mb.shape[1]:
        raise InputError(f"tversky_similarity needs M_a (n x K) and M_b (p x K), got {tuple(ma.shape)} and "
                         f"{tuple(mb.shape)}")
    sums = tversky_sums(ma, mb, intersection, difference, reduction, backend)
    return combine(*sums, alpha, beta, theta, similarity)


def tversky_similarity_torch(ma: torch.Tensor, mb: torch.Tensor, alpha: Any = 0.5, beta: Any = 0.5, theta: Any = 1.0,
                             intersection: str = "product", difference: str = "substractmatch",
                             similarity: str = "contrast", reduction: str = "per-feature") -> torch.Tensor:
    """Reference: chunked PyTorch (or matmuls where the variant allows); S is n x p in float32."""
    return _similarity(ma, mb, alpha, beta, theta, intersection, difference, similarity, reduction, "torch")


def tversky_similarity_triton(ma: torch.Tensor, mb: torch.Tensor, alpha: Any = 0.5, beta: Any = 0.5, theta: Any = 1.0,
                              intersection: str = "product", difference: str = "substractmatch",
                              similarity: str = "contrast", reduction: str = "per-feature") -> torch.Tensor:
    """Triton forward and backward kernels for the per-feature sums; the combination is plain torch."""
    return _similarity(ma, mb, alpha, beta, theta, intersection, difference, similarity, reduction, "triton")


def tversky_similarity_naive(ma: torch.Tensor, mb: torch.Tensor, alpha: Any = 0.5, beta: Any = 0.5, theta: Any = 1.0,
                             intersection: str = "product", difference: str = "substractmatch",
                             similarity: str = "contrast") -> torch.Tensor:
    """The straightforward broadcast over (n, p, K) with autograd: the memory baseline of benchmarks."""
    u, v = ma.float()[:, None, :], mb.float()[None, :, :]
    sub = difference == "substractmatch"
    both = (u > 0) & (v > 0)
    if intersection == "gmean":
        psi = torch.where(both, (u * v).clamp_min(1e-30), 1.0).sqrt()
    elif intersection == "softmin":
        psi = torch.where(both, -torch.logaddexp(-u, -v), 0.0)
    else:
        psi = _psi(u, v, intersection)
    inter = torch.where(both, psi, 0.0).sum(-1)
    return combine(inter, _diff(u, v, sub).sum(-1), _diff(v, u, sub).sum(-1), alpha, beta, theta, similarity)


def _kernel_covers(ma: Any, mb: Any, *args: Any, reduction: str = "per-feature", **kwargs: Any) -> bool:
    if len(args) >= 7:
        reduction = args[6]
    return (isinstance(ma, torch.Tensor) and isinstance(mb, torch.Tensor) and ma.dtype in KERNEL_DTYPES
            and mb.dtype in KERNEL_DTYPES and reduction == "per-feature")


_OP = register_op("tversky_similarity", tversky_similarity_torch, tversky_similarity_triton,
                  triton_supports=_kernel_covers)


def tversky_similarity(ma: torch.Tensor, mb: torch.Tensor, alpha: Any = 0.5, beta: Any = 0.5, theta: Any = 1.0,
                       intersection: str = "product", difference: str = "substractmatch",
                       similarity: str = "contrast", reduction: str = "per-feature") -> torch.Tensor:
    """Tversky similarity S (n x p, float32) of measures M_a (n x K) and M_b (p x K), on the dispatched backend."""
    return _OP(ma, mb, alpha, beta, theta, intersection=intersection, difference=difference, similarity=similarity,
               reduction=reduction)


def kernel_backend(ma: torch.Tensor, mb: torch.Tensor, reduction: str = "per-feature") -> str:
    """Which backend `tversky_similarity` would use for these measures."""
    return _OP.backend(ma, mb, reduction=reduction)
