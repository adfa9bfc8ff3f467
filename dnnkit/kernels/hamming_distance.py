"""Pairwise Hamming distance between bit-packed codes: XOR + popcount on packed words.

Codes are rows of uint8 bytes (``numpy.packbits`` layout, N x ceil(B/8)); the distance between a
row of ``a`` and a row of ``b`` is the number of differing bits. The reference works on any
device (int64 words, SWAR popcount); the Triton kernel views the bytes as int32 words (rows
padded to a multiple of 4 bytes) and counts bits with the SWAR popcount, one tile of pairs per
program. Both return int32 (M x N).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from dnnkit.errors import InputError
from dnnkit.kernels.dispatch import register_op, triton_interpret_enabled

BLOCK_M = 32
BLOCK_N = 32
BLOCK_K = 8  # int32 words per step


def _check(a: Any, b: Any) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"hamming_distance: {name} must be a torch.Tensor")
        if t.dtype != torch.uint8 or t.dim() != 2:
            raise InputError(f"hamming_distance: {name} must be a 2-D uint8 tensor of packed bits, got "
                             f"{t.dtype} with {t.dim()} dims")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"hamming_distance: codes differ in length ({a.shape[1]} vs {b.shape[1]} bytes)")


def hamming_distance_torch(a: torch.Tensor, b: torch.Tensor, *, chunk: int = 1 << 22) -> torch.Tensor:
    """Reference: XOR of 64-bit words and a SWAR popcount, chunked over rows of `a` to bound memory."""
    _check(a, b)
    m, n = a.shape[0], b.shape[0]
    out = torch.empty((m, n), dtype=torch.int32, device=a.device)
    aw, bw = _words64(a), _words64(b)
    rows = max(1, chunk // max(1, n * aw.shape[1]))
    for s in range(0, m, rows):
        x = aw[s:s + rows, None, :] ^ bw[None, :, :]
        out[s:s + rows] = _popcount64(x).sum(-1, dtype=torch.int32)
    return out


def _words64(t: torch.Tensor) -> torch.Tensor:
    """uint8 rows padded to a multiple of 8 bytes, viewed as int64 words."""
    pad = (-t.shape[1]) % 8
    if pad:
        t = torch.nn.functional.pad(t, (0, pad))
    return t.contiguous().view(torch.int64)


def _popcount64(x: torch.Tensor) -> torch.Tensor:
    """Bits set per int64 (SWAR; arithmetic shifts are harmless under the masks, the count fits in a byte)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return (x * 0x0101010101010101) >> 56


def _words(t: torch.Tensor) -> torch.Tensor:
    """uint8 rows padded to a multiple of 4 bytes, viewed as int32 words (contiguous)."""
    pad = (-t.shape[1]) % 4
    if pad:
        t = torch.nn.functional.pad(t, (0, pad))
    return t.contiguous().view(torch.int32)


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> Any:
    """Define the Triton kernel on first use (keyed on TRITON_INTERPRET, which Triton reads at definition)."""
    del interpret
    import triton
    import triton.language as tl

    @triton.jit
    def hamming_kernel(a_ptr, b_ptr, out_ptr, m, n, w, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        acc = tl.zeros([BM, BN], dtype=tl.int32)
        for k0 in range(0, w, BK):
            kk = k0 + rk
            a = tl.load(a_ptr + rm[:, None].to(tl.int64) * w + kk[None, :], mask=(rm[:, None] < m) & (kk[None, :] < w),
                        other=0)
            b = tl.load(b_ptr + rn[:, None].to(tl.int64) * w + kk[None, :], mask=(rn[:, None] < n) & (kk[None, :] < w),
                        other=0)
            x = (a[:, None, :] ^ b[None, :, :]).to(tl.uint32, bitcast=True)
            x = x - ((x >> 1) & 0x55555555)
            x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
            x = (x + (x >> 4)) & 0x0F0F0F0F
            x = (x * 0x01010101) >> 24
            acc += tl.sum(x.to(tl.int32), axis=2)
        tl.store(out_ptr + rm[:, None].to(tl.int64) * n + rn[None, :], acc, mask=(rm[:, None] < m) & (rn[None, :] < n))

    return hamming_kernel


def hamming_distance_triton(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Triton kernel: tiles of BLOCK_M x BLOCK_N pairs, BLOCK_K int32 words per step, SWAR popcount."""
    _check(a, b)
    if a.device != b.device:
        raise InputError("hamming_distance: a and b are on different devices")
    aw, bw = _words(a), _words(b)
    m, n, w = aw.shape[0], bw.shape[0], aw.shape[1]
    out = torch.empty((m, n), dtype=torch.int32, device=a.device)
    if m == 0 or n == 0:
        return out
    if w == 0:
        return out.zero_()
    kernel = _kernels(triton_interpret_enabled())
    grid = (-(-m // BLOCK_M), -(-n // BLOCK_N))
    with torch.cuda.device(a.device) if a.device.type == "cuda" else contextlib.nullcontext():
        kernel[grid](aw, bw, out, m, n, w, BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K)
    return out


def _kernel_covers(a: Any, b: Any, *args: Any, **kwargs: Any) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == torch.uint8
            and b.dtype == torch.uint8 and a.dim() == 2 and b.dim() == 2 and a.device == b.device)


_OP = register_op("hamming_distance", hamming_distance_torch, hamming_distance_triton, triton_supports=_kernel_covers)


def hamming_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Hamming distances (int32, M x N) between packed codes, on the backend dispatch picks."""
    return _OP(a, b)


def knn_indices(query: torch.Tensor, train: torch.Tensor, k: int, *, block: int = 1024) -> torch.Tensor:
    """Indices (M x k) of the k nearest training codes by Hamming distance; ties go to the lower training index."""
    n = train.shape[0]
    k = min(k, n)
    out = []
    for s in range(0, query.shape[0], block):
        d = hamming_distance(query[s:s + block], train).long()
        key = d * n + torch.arange(n, device=d.device)  # distance first, then index: a total order
        out.append(torch.topk(key, k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(out) if out else torch.empty((0, k), dtype=torch.long)
