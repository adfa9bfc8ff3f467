"""Backend choice (DNNKIT_KERNELS, CUDA, TRITON_INTERPRET) and the op registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.kernels import dispatch as d


@pytest.fixture
def fake_triton(kernel_env: pytest.MonkeyPatch):
    """Control whether triton 'imports' and whether tensors 'are on CUDA'."""

    class Fake:
        def __init__(self) -> None:
            self.importable = True
            self.cuda = False

    fake = Fake()
    kernel_env.setattr(d, "triton_available", lambda: fake.importable)
    kernel_env.setattr(d, "_all_on_cuda", lambda tensors: fake.cuda and bool(tensors))
    kernel_env.delenv("TRITON_INTERPRET", raising=False)
    return fake


@pytest.fixture
def scratch_ops():
    """Register test ops and remove them afterwards (real ops loaded meanwhile stay registered)."""
    before = dict(d._REGISTRY)
    yield
    for name in [n for n in d._REGISTRY if n.startswith("scratch")]:
        del d._REGISTRY[name]
    d._REGISTRY.update({n: op for n, op in before.items() if n.startswith("scratch")})


def test_import_is_light() -> None:
    code = "import sys, dnnkit.kernels; assert 'torch' not in sys.modules and 'triton' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_auto_on_cpu_is_torch(kernel_env: pytest.MonkeyPatch) -> None:
    assert d.kernel_mode() == "auto"
    assert d.backend_for(torch.zeros(2)) == "torch"
    kernel_env.setenv("DNNKIT_KERNELS", "")
    assert d.kernel_mode() == "auto"
    kernel_env.setenv("DNNKIT_KERNELS", " Torch ")
    assert d.kernel_mode() == "torch"


def test_auto_picks_triton_only_when_all_on_cuda_and_importable(fake_triton) -> None:
    x = torch.zeros(2)
    assert d.backend_for(x) == "torch"
    fake_triton.cuda = True
    assert d.backend_for(x, None, 3) == "triton"
    assert d.backend_for() == "torch"  # no tensors at all
    fake_triton.importable = False
    assert d.backend_for(x) == "torch"


def test_mixed_devices_are_not_cuda() -> None:
    assert not d._all_on_cuda([torch.zeros(1), torch.zeros(1, device="meta")])
    assert not d._all_on_cuda([])


def test_torch_mode_wins(fake_triton, kernel_env: pytest.MonkeyPatch) -> None:
    fake_triton.cuda = True
    kernel_env.setenv("DNNKIT_KERNELS", "torch")
    assert d.backend_for(torch.zeros(2)) == "torch"


def test_forced_triton(fake_triton, kernel_env: pytest.MonkeyPatch) -> None:
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    x = torch.zeros(2)
    with pytest.raises(InputError, match="CUDA") as err:
        d.backend_for(x)
    assert "TRITON_INTERPRET" in (err.value.hint or "")
    kernel_env.setenv("TRITON_INTERPRET", "1")
    assert d.backend_for(x) == "triton"
    kernel_env.delenv("TRITON_INTERPRET")
    fake_triton.cuda = True
    assert d.backend_for(x) == "triton"
    fake_triton.importable = False
    with pytest.raises(InputError, match="cannot be imported"):
        d.backend_for(x)


@pytest.mark.parametrize("value", ["1", "true", "ON", "yes"])
def test_interpret_truthy(kernel_env: pytest.MonkeyPatch, value: str) -> None:
    kernel_env.setenv("TRITON_INTERPRET", value)
    assert d.triton_interpret_enabled()


@pytest.mark.parametrize("value", ["0", "", "off", "no"])
def test_interpret_falsy(kernel_env: pytest.MonkeyPatch, value: str) -> None:
    kernel_env.setenv("TRITON_INTERPRET", value)
    assert not d.triton_interpret_enabled()


def test_unknown_mode_names_accepted_values(kernel_env: pytest.MonkeyPatch) -> None:
    kernel_env.setenv("DNNKIT_KERNELS", "cuda")
    with pytest.raises(InputError, match="auto, torch, triton"):
        d.backend_for(torch.zeros(1))


def test_triton_available_matches_import() -> None:
    try:
        import triton  # noqa: F401
    except ImportError:
        assert not d.triton_available()
    else:
        assert d.triton_available()


def test_registry_dispatch(fake_triton, kernel_env: pytest.MonkeyPatch, scratch_ops) -> None:
    op = d.register_op(
        "scratch_scale",
        lambda x, k=2: ("torch", x * k),
        lambda x, k=2: ("triton", x * k),
        triton_supports=lambda x, k=2: x.dtype.is_floating_point,
    )
    assert "scratch_scale" in d.available_ops()
    assert d.get_op("scratch_scale") is op
    x = torch.ones(2)
    assert d.dispatch("scratch_scale", x)[0] == "torch"
    fake_triton.cuda = True
    name, out = d.dispatch("scratch_scale", x, k=3)
    assert name == "triton" and out.tolist() == [3.0, 3.0]
    assert op(torch.ones(2, dtype=torch.int64))[0] == "torch"  # kernel does not cover ints
    kernel_env.setenv("DNNKIT_KERNELS", "torch")
    assert op.backend(x) == "torch"
    assert op.impl("triton")(x)[0] == "triton"
    with pytest.raises(ValueError, match="backend"):
        op.impl("cuda")


def test_forced_triton_uncovered_input_runs_reference(fake_triton, kernel_env, scratch_ops) -> None:
    op = d.register_op("scratch_ref_only", lambda x: "torch")
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    assert op(torch.zeros(1)) == "torch"  # no kernel: no error even on CPU


def test_registry_rejects_shadowing(scratch_ops) -> None:
    def torch_impl(x):
        return x

    d.register_op("scratch_dup", torch_impl)
    d.register_op("scratch_dup", torch_impl)  # same module again (a reload): fine
    other = type(torch_impl)(torch_impl.__code__, {})
    other.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="already registered"):
        d.register_op("scratch_dup", other)


def test_unknown_op_lists_available() -> None:
    with pytest.raises(InputError, match="tensor_stats"):
        d.dispatch("no_such_op", torch.zeros(1))


def test_ops_load_on_demand() -> None:
    assert "tensor_stats" in d.available_ops()
    assert d.get_op("tensor_stats").name == "tensor_stats"
    assert d.dispatch("tensor_stats", torch.tensor([1.0, -2.0])).l1 == 3.0


def test_op_kept_off_auto_runs_reference_unless_forced(fake_triton, kernel_env, scratch_ops) -> None:
    op = d.register_op("scratch_slow_kernel", lambda x: "torch", lambda x: "triton", use_in_auto=False)
    fake_triton.cuda = True
    assert op(torch.zeros(1)) == "torch"
    kernel_env.setenv("DNNKIT_KERNELS", "triton")
    assert op(torch.zeros(1)) == "triton"
