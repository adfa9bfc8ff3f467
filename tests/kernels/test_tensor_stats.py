"""tensor_stats: the torch reference against plain torch, the Triton kernel against the reference."""

from __future__ import annotations

import math

import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.kernels.tensor_stats import (
    BLOCK,
    TensorStats,
    tensor_stats,
    tensor_stats_torch,
    tensor_stats_triton,
)

INF, NAN = float("inf"), float("nan")


def expected(t: torch.Tensor) -> TensorStats:
    """The straightforward (memory-hungry) computation; norms in Python (fsum, overflow-safe hypot)."""
    f = t.detach().reshape(-1).to(torch.float64)
    fin = f[torch.isfinite(f)]
    values = fin.tolist()
    return TensorStats(
        numel=t.numel(),
        zeros=int((t == 0).sum()),
        nan=int(torch.isnan(f).sum()),
        inf=int(torch.isinf(f).sum()),
        l1=math.fsum(abs(v) for v in values),
        l2=math.hypot(*values),
        min=float(fin.min()) if fin.numel() else None,
        max=float(fin.max()) if fin.numel() else None,
    )


def assert_close(got: TensorStats, want: TensorStats, rel: float = 1e-9) -> None:
    assert (got.numel, got.zeros, got.nan, got.inf) == (want.numel, want.zeros, want.nan, want.inf)
    assert got.l1 == pytest.approx(want.l1, rel=rel, abs=0.0)
    assert got.l2 == pytest.approx(want.l2, rel=rel, abs=0.0)
    assert got.min == want.min
    assert got.max == want.max


def messy(n: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """Random values with zeros, NaN and +-Inf sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 3
    if n >= 8:
        x[torch.randperm(n, generator=g)[: max(1, n // 10)]] = 0.0
        x[1], x[n // 2], x[-2], x[-1] = NAN, INF, -INF, NAN
    return x.to(dtype)


CASES = {
    "messy": lambda: messy(1000),
    "matrix": lambda: messy(600).reshape(20, 30),
    "all_nan": lambda: torch.full((17,), NAN),
    "all_inf": lambda: torch.tensor([INF, -INF, INF]),
    "all_zero": lambda: torch.zeros(5, 5),
    "neg_zero": lambda: torch.tensor([-0.0, 0.0, 1.0]),
    "scalar": lambda: torch.tensor(-2.5),
    "fp16": lambda: messy(999, torch.float16),
    "bf16": lambda: messy(999, torch.bfloat16),
    "fp64": lambda: messy(500, torch.float64),
    "fp64_huge": lambda: torch.tensor([1e200, -3e250, 2.0], dtype=torch.float64),
    "fp32_huge": lambda: torch.tensor([3e38, -1e30, 1e-44]),
    "int32": lambda: torch.tensor([[0, -5, 7], [0, 2, -2147483648]], dtype=torch.int32),
    "int64": lambda: torch.arange(-50, 50, dtype=torch.int64),
    "uint8": lambda: torch.tensor([0, 255, 3], dtype=torch.uint8),
    "bool": lambda: torch.tensor([True, False, True, True]),
    "noncontig": lambda: messy(1200).reshape(30, 40).t()[::2, 1:],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_matches_plain_torch(name: str) -> None:
    t = CASES[name]()
    assert_close(tensor_stats_torch(t), expected(t))


@pytest.mark.parametrize("name", ["messy", "fp16", "int64", "noncontig", "fp64_huge"])
def test_reference_chunks_agree(name: str) -> None:
    t = CASES[name]()
    assert_close(tensor_stats_torch(t, chunk_size=7), expected(t))
    assert_close(tensor_stats_torch(t, chunk_size=1), expected(t))


def test_reference_values_by_hand() -> None:
    s = tensor_stats_torch(torch.tensor([3.0, -4.0, 0.0, NAN, INF]))
    assert s == TensorStats(numel=5, zeros=1, nan=1, inf=1, l1=7.0, l2=5.0, min=-4.0, max=3.0)
    assert s.finite == 3
    assert s.as_dict()["l2"] == 5.0


def test_empty_and_no_finite() -> None:
    for t in (torch.empty(0), torch.empty(3, 0, 2, dtype=torch.float16), torch.empty(0, dtype=torch.int8)):
        s = tensor_stats_torch(t)
        assert s == TensorStats(0, 0, 0, 0, 0.0, 0.0, None, None)
    s = tensor_stats_torch(torch.full((4,), NAN))
    assert (s.nan, s.min, s.max, s.l1, s.l2) == (4, None, None, 0.0, 0.0)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="torch.Tensor"):
        tensor_stats_torch([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="complex"):
        tensor_stats_torch(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(InputError, match="meta"):
        tensor_stats_torch(torch.empty(3, device="meta"))
    with pytest.raises(InputError, match="dense"):
        tensor_stats_torch(torch.eye(3).to_sparse())


def test_public_entry_uses_reference_on_cpu(kernel_env: pytest.MonkeyPatch) -> None:
    t = messy(300)
    assert_close(tensor_stats(t), expected(t))
    kernel_env.setenv("DNNKIT_KERNELS", "torch")
    assert_close(tensor_stats(t), expected(t))


# --- Triton kernel (interpreter on CPU under TRITON_INTERPRET=1, or a CUDA device) ---------------

KERNEL_SIZES = [1, 5, 1000, BLOCK, BLOCK + 1, 3 * BLOCK + 17]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("n", KERNEL_SIZES)
def test_kernel_matches_reference(triton_device: str, dtype: torch.dtype, n: int) -> None:
    t = messy(n, dtype, seed=n).to(triton_device)
    assert_close(tensor_stats_triton(t), tensor_stats_torch(t))


def test_kernel_bf16(triton_device: str) -> None:
    t = messy(BLOCK + 3, torch.bfloat16).to(triton_device)
    assert_close(tensor_stats_triton(t), tensor_stats_torch(t))


def test_kernel_program_loop(triton_device: str) -> None:
    """Fewer programs than blocks: each program loops over several blocks."""
    t = messy(5 * BLOCK + 9, seed=3).to(triton_device)
    want = tensor_stats_torch(t)
    for max_programs in (1, 2, 4):
        assert_close(tensor_stats_triton(t, max_programs=max_programs), want)


@pytest.mark.parametrize(
    "name", ["matrix", "noncontig", "all_nan", "all_inf", "all_zero", "neg_zero", "scalar", "fp32_huge"]
)
def test_kernel_special_inputs(triton_device: str, name: str) -> None:
    t = CASES[name]().to(triton_device)
    assert_close(tensor_stats_triton(t), expected(t.cpu()))


def test_kernel_empty_and_dtype_guard(triton_device: str) -> None:
    assert tensor_stats_triton(torch.empty(0, 4, device=triton_device)).numel == 0
    with pytest.raises(InputError, match="covers"):
        tensor_stats_triton(torch.zeros(3, dtype=torch.int32, device=triton_device))


def test_forced_triton_public_entry(triton_device: str, kernel_env: pytest.MonkeyPatch) -> None:
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    t = messy(700).to(triton_device)
    assert_close(tensor_stats(t), expected(t.cpu()))
    ints = torch.arange(10, device=triton_device)  # not covered by the kernel: runs on the reference
    assert tensor_stats(ints).max == 9.0


def test_l2_does_not_overflow() -> None:
    s = tensor_stats_torch(torch.tensor([1e300, 1e300], dtype=torch.float64))
    assert math.isclose(s.l2, math.sqrt(2) * 1e300, rel_tol=1e-12)
