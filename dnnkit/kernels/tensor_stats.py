"""Tensor statistics in one pass: element count, zeros, NaN, Inf, L1/L2 norm and range of the finite values.

`tensor_stats(t)` dispatches (see `dnnkit.kernels.dispatch`) between `tensor_stats_torch`, a chunked
PyTorch reference for any device and real dtype, and `tensor_stats_triton`, one Triton launch over
float16 / bfloat16 / float32 tensors. Other dtypes (integers, bool, float64, float8) always run on
the reference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from dnnkit.errors import InputError
from dnnkit.kernels.dispatch import register_op, triton_interpret_enabled

CHUNK = 1 << 22  # reference: elements upcast to float64 at a time (32 MiB per temporary)
BLOCK = 2048  # kernel: elements per program and loop step
NUM_WARPS = 8
MAX_PROGRAMS = 1024  # kernel: programs in the one launch; each loops over its share of blocks
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class TensorStats:
    """Counts over all elements; norms and range over the finite ones (min/max None if there are none)."""

    numel: int
    zeros: int
    nan: int
    inf: int
    l1: float
    l2: float
    min: float | None
    max: float | None

    @property
    def finite(self) -> int:
        """Number of finite elements."""
        return self.numel - self.nan - self.inf

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-ready)."""
        return dataclasses.asdict(self)


_EMPTY = TensorStats(numel=0, zeros=0, nan=0, inf=0, l1=0.0, l2=0.0, min=None, max=None)


def _check(t: Any) -> None:
    if not isinstance(t, torch.Tensor):
        raise InputError(f"tensor_stats expects a torch.Tensor, got {type(t).__name__}")
    if t.is_complex():
        raise InputError(
            f"tensor_stats does not support complex tensors (got {t.dtype})",
            hint="pass t.real / t.imag, or t.abs()",
        )
    if t.layout != torch.strided:
        raise InputError(f"tensor_stats needs a dense tensor, got layout {t.layout}", hint="call .to_dense()")
    if t.device.type == "meta":
        raise InputError("tensor_stats needs tensor data; got a tensor on the meta device")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _finish(numel: int, counts: list[int], l1: float, l2: float, lo: float, hi: float) -> TensorStats:
    zeros, nan, inf = (int(c) for c in counts)
    has_finite = numel - nan - inf > 0
    return TensorStats(
        numel=numel,
        zeros=zeros,
        nan=nan,
        inf=inf,
        l1=float(l1),
        l2=float(l2),
        min=float(lo) if has_finite else None,
        max=float(hi) if has_finite else None,
    )


def tensor_stats_torch(t: torch.Tensor, *, chunk_size: int = CHUNK) -> TensorStats:
    """PyTorch reference: walks the flattened tensor in chunks upcast to float64, on t's device.

    A float16/bfloat16/float32 chunk without NaN/Inf (its aminmax is finite) takes three reductions (range,
    L1, a float64 dot for L2); other chunks mask the non-finite values. L2 keeps a running scale (largest
    |x| so far) on that path, so float64 inputs beyond 1e154 do not overflow.
    """
    _check(t)
    flat = t.detach().reshape(-1)
    n = flat.numel()
    if n == 0:
        return _EMPTY
    if flat.dtype == torch.bool:
        flat = flat.view(torch.uint8)
    is_float = flat.dtype.is_floating_point
    dev = flat.device
    counts = torch.zeros(3, dtype=torch.int64, device=dev)  # zeros, nan, inf
    l1 = torch.zeros((), dtype=torch.float64, device=dev)
    scale = torch.zeros((), dtype=torch.float64, device=dev)
    ssq = torch.zeros((), dtype=torch.float64, device=dev)  # sum of (|x| / scale)^2
    lo = torch.full((), math.inf, dtype=torch.float64, device=dev)
    hi = torch.full((), -math.inf, dtype=torch.float64, device=dev)
    plain_ssq = torch.zeros((), dtype=torch.float64, device=dev)  # sum of x^2 of the chunks on the fast path
    bounded = flat.dtype in KERNEL_DTYPES  # |x| <= 3.4e38: squares cannot overflow float64
    for start in range(0, n, chunk_size):
        native = flat[start : start + chunk_size]
        c = native.to(torch.float64)
        counts[0] += native.numel() - torch.count_nonzero(native)
        if bounded:
            c_lo, c_hi = torch.aminmax(c)
            if bool(torch.isfinite(c_lo) & torch.isfinite(c_hi)):  # no NaN (it propagates) and no Inf
                lo, hi = torch.minimum(lo, c_lo), torch.maximum(hi, c_hi)
                l1 += torch.linalg.vector_norm(c, 1)
                plain_ssq += torch.dot(c, c)
                continue
        if is_float:
            fin = torch.isfinite(c)
            counts[1] += torch.isnan(c).sum()
            counts[2] += torch.isinf(c).sum()
            a = torch.where(fin, c.abs(), 0.0)
            lo = torch.minimum(lo, torch.where(fin, c, math.inf).min())
            hi = torch.maximum(hi, torch.where(fin, c, -math.inf).max())
        else:
            a = c.abs()
            lo = torch.minimum(lo, c.min())
            hi = torch.maximum(hi, c.max())
        l1 += a.sum()
        new_scale = torch.maximum(scale, a.max())
        safe = torch.where(new_scale > 0, new_scale, 1.0)
        ssq = ssq * (scale / safe) ** 2 + ((a / safe) ** 2).sum()
        scale = new_scale
    l2 = scale * ssq.sqrt()
    if bool(plain_ssq > 0):
        l2 = (l2 * l2 + plain_ssq).sqrt()
    floats = torch.stack([l1, l2, lo, hi]).tolist()
    return _finish(n, counts.tolist(), *floats)


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> Any:
    """Define the Triton kernel on first use (keyed on TRITON_INTERPRET, which Triton reads at definition)."""
    del interpret  # only the cache key: a new flag value defines the kernel afresh
    import triton
    import triton.language as tl

    @triton.jit
    def tensor_stats_kernel(x_ptr, counts_ptr, sums_ptr, extrema_ptr, n, iters, BLOCK: tl.constexpr):
        # Program pid reduces blocks pid, pid + nprog, ... into per-lane accumulators, then into
        # one row of partials: counts (zeros, nan, inf), float64 sums (|x|, x^2), float32 (min, max).
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        lanes = tl.arange(0, BLOCK)
        n_zero = tl.zeros([BLOCK], dtype=tl.int32)
        n_nan = tl.zeros([BLOCK], dtype=tl.int32)
        n_inf = tl.zeros([BLOCK], dtype=tl.int32)
        s_abs = tl.zeros([BLOCK], dtype=tl.float64)
        s_sq = tl.zeros([BLOCK], dtype=tl.float64)
        lo = tl.full([BLOCK], float("inf"), dtype=tl.float32)
        hi = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
        for i in range(0, iters):
            offs = (pid + i * nprog).to(tl.int64) * BLOCK + lanes
            mask = offs < n
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            ax = tl.abs(x)
            fin = mask & (ax < float("inf"))  # false for NaN and +-Inf
            n_zero += (mask & (x == 0.0)).to(tl.int32)
            n_nan += (mask & (x != x)).to(tl.int32)
            n_inf += (mask & (ax == float("inf"))).to(tl.int32)
            a = tl.where(fin, ax, 0.0).to(tl.float64)
            s_abs += a
            s_sq += a * a
            lo = tl.minimum(lo, tl.where(fin, x, float("inf")))
            hi = tl.maximum(hi, tl.where(fin, x, float("-inf")))
        tl.store(counts_ptr + pid * 3 + 0, tl.sum(n_zero.to(tl.int64), axis=0))
        tl.store(counts_ptr + pid * 3 + 1, tl.sum(n_nan.to(tl.int64), axis=0))
        tl.store(counts_ptr + pid * 3 + 2, tl.sum(n_inf.to(tl.int64), axis=0))
        tl.store(sums_ptr + pid * 2 + 0, tl.sum(s_abs, axis=0))
        tl.store(sums_ptr + pid * 2 + 1, tl.sum(s_sq, axis=0))
        tl.store(extrema_ptr + pid * 2 + 0, tl.min(lo, axis=0))
        tl.store(extrema_ptr + pid * 2 + 1, tl.max(hi, axis=0))

    return tensor_stats_kernel


def tensor_stats_triton(t: torch.Tensor, *, max_programs: int = MAX_PROGRAMS) -> TensorStats:
    """Triton kernel: one launch writes per-program partials, a small torch reduce finishes in float64.

    Elements are upcast to float32; |x| and x^2 accumulate in float64 per lane (float32 squares
    overflow beyond |x| = 1.8e19 and lose subnormals). Needs a CUDA tensor, or TRITON_INTERPRET=1.
    """
    _check(t)
    if t.dtype not in KERNEL_DTYPES:
        raise InputError(
            f"the tensor_stats Triton kernel covers float16/bfloat16/float32, got {t.dtype}",
            hint="call tensor_stats(), which runs other dtypes on the reference",
        )
    flat = t.detach().reshape(-1).contiguous()
    n = flat.numel()
    if n == 0:
        return _EMPTY
    num_blocks = _cdiv(n, BLOCK)
    nprog = max(1, min(num_blocks, max_programs))
    iters = _cdiv(num_blocks, nprog)
    dev = flat.device
    counts = torch.empty((nprog, 3), dtype=torch.int64, device=dev)
    sums = torch.empty((nprog, 2), dtype=torch.float64, device=dev)
    extrema = torch.empty((nprog, 2), dtype=torch.float32, device=dev)
    kernel = _kernels(triton_interpret_enabled())
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        kernel[(nprog,)](flat, counts, sums, extrema, n, iters, BLOCK=BLOCK, num_warps=NUM_WARPS)
    l1, l2sq, lo, hi = torch.cat(
        [sums.sum(0), extrema[:, 0].min().view(1).double(), extrema[:, 1].max().view(1).double()]
    ).tolist()
    return _finish(n, counts.sum(0).tolist(), l1, math.sqrt(l2sq), lo, hi)


def _kernel_covers(t: Any, *args: Any, **kwargs: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in KERNEL_DTYPES and t.layout == torch.strided


_OP = register_op("tensor_stats", tensor_stats_torch, tensor_stats_triton, triton_supports=_kernel_covers)


def tensor_stats(t: torch.Tensor) -> TensorStats:
    """Statistics of ``t`` in one pass, on the backend `dnnkit.kernels.dispatch` picks."""
    return _OP(t)
