"""Kernel tests run Triton kernels on CPU tensors through the Triton interpreter.

TRITON_INTERPRET must be set before any ``@triton.jit`` decorator runs; the op modules define their
kernels lazily, and this runs at collection, before any test. ``setdefault`` lets a GPU run opt out
with ``TRITON_INTERPRET=0``: the Triton tests then use CUDA tensors (see `triton_device`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture
def triton_device() -> str:
    """Device for Triton-kernel tests: CPU under the interpreter, else CUDA, else skip."""
    pytest.importorskip("triton")
    from dnnkit.kernels.dispatch import triton_interpret_enabled

    if triton_interpret_enabled():
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        pytest.skip("Triton kernels need TRITON_INTERPRET=1 or a CUDA device")
    return "cuda"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean DNNKIT_KERNELS (unset) that tests may set through the returned monkeypatch."""
    monkeypatch.delenv("DNNKIT_KERNELS", raising=False)
    return monkeypatch
