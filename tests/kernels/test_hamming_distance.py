"""hamming_distance: the reference against unpacked bits, the Triton kernel (interpreter) against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.kernels.hamming_distance import (
    hamming_distance,
    hamming_distance_torch,
    hamming_distance_triton,
    knn_indices,
)


def codes(n: int, bits: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(seed)
    raw = rng.random((n, bits)) < 0.3
    return raw, torch.from_numpy(np.packbits(raw, axis=1))


def expected(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None, :] != b[None, :, :]).sum(-1)


@pytest.mark.parametrize("bits", [1, 7, 8, 13, 64, 100])
def test_reference_matches_unpacked(bits: int) -> None:
    ra, a = codes(9, bits, 0)
    rb, b = codes(5, bits, 1)
    got = hamming_distance_torch(a, b)
    assert got.dtype == torch.int32
    assert np.array_equal(got.numpy(), expected(ra, rb))
    assert np.array_equal(hamming_distance_torch(a, b, chunk=3).numpy(), expected(ra, rb))


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="uint8"):
        hamming_distance_torch(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(InputError, match="differ in length"):
        hamming_distance_torch(torch.zeros(2, 3, dtype=torch.uint8), torch.zeros(2, 4, dtype=torch.uint8))


def test_knn_ties_go_to_lower_index() -> None:
    train = torch.tensor([[0b1111], [0b0000], [0b0001], [0b0001]], dtype=torch.uint8)
    q = torch.tensor([[0b0000]], dtype=torch.uint8)
    assert knn_indices(q, train, 3).tolist() == [[1, 2, 3]]
    assert knn_indices(q, train, 10).shape == (1, 4)


@pytest.mark.parametrize("m,n,bits", [(1, 1, 8), (5, 3, 20), (33, 40, 100), (17, 70, 300)])
def test_kernel_matches_reference(triton_device: str, m: int, n: int, bits: int) -> None:
    ra, a = codes(m, bits, m)
    rb, b = codes(n, bits, n + 1)
    got = hamming_distance_triton(a.to(triton_device), b.to(triton_device)).cpu()
    assert np.array_equal(got.numpy(), expected(ra, rb))


def test_kernel_all_ones_and_forced_dispatch(triton_device: str, kernel_env: pytest.MonkeyPatch) -> None:
    a = torch.full((3, 5), 255, dtype=torch.uint8, device=triton_device)
    b = torch.zeros((2, 5), dtype=torch.uint8, device=triton_device)
    assert (hamming_distance_triton(a, b).cpu() == 40).all()
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    assert (hamming_distance(a, b).cpu() == 40).all()
