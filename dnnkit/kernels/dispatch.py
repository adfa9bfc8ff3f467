"""Op registry and backend choice: every op has a PyTorch reference and (optionally) a Triton kernel.

Backend rule (`backend_for`), set by the environment variable ``DNNKIT_KERNELS``:

- ``auto`` (default): Triton when every tensor argument is on a CUDA device and ``triton``
  imports, else the PyTorch reference.
- ``torch``: always the reference.
- ``triton``: always the kernel; an error unless ``triton`` imports and the tensors are on CUDA
  or ``TRITON_INTERPRET=1`` is set (the Triton interpreter runs kernels on CPU tensors; slow,
  meant for tests).

An op may say that its kernel does not cover some inputs (``triton_supports``, for example
integer dtypes); those calls run on the reference whatever the mode.

How to add an op (one module per op, named after it, e.g. ``dnnkit/kernels/hamming_distance.py``):

1. Write ``hamming_distance_torch(...)``: the reference, plain PyTorch, any device and dtype.
2. Write ``hamming_distance_triton(...)``: a launcher that calls a Triton kernel. Define the
   ``@triton.jit`` kernel lazily inside a function cached with ``functools.lru_cache`` and keyed
   on ``triton_interpret_enabled()`` (see ``tensor_stats._kernels``): Triton reads
   ``TRITON_INTERPRET`` when the decorator runs, so kernels defined at import time would break
   CPU tests whenever something imports the module before the tests set the variable. Import
   ``triton`` only inside that function so the module imports without Triton installed.
3. Register both and expose the public entry point::

       _OP = register_op("hamming_distance", hamming_distance_torch, hamming_distance_triton,
                         triton_supports=_kernel_covers)

       def hamming_distance(a, b):
           return _OP(a, b)          # same as dispatch("hamming_distance", a, b)

4. Test it in ``tests/kernels/test_hamming_distance.py``: the reference against straightforward
   torch code, and the kernel (``pytest.importorskip("triton")``; ``tests/kernels/conftest.py``
   sets ``TRITON_INTERPRET=1``) against the reference on small shapes.

``available_ops()`` and ``dispatch(name, ...)`` import op modules on demand: every public module of
this package other than ``dispatch`` is treated as an op module, and ``dispatch("x", ...)`` first
tries ``dnnkit.kernels.x``. This module itself never imports torch or triton at import time.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dnnkit.errors import InputError

ENV_VAR = "DNNKIT_KERNELS"
MODES = ("auto", "torch", "triton")
BACKENDS = ("torch", "triton")

_TRUTHY = {"1", "true", "yes", "on"}
_NOT_OP_MODULES = {"dispatch"}


def kernel_mode() -> str:
    """The requested mode from ``DNNKIT_KERNELS`` (``auto`` when unset or empty)."""
    raw = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if raw not in MODES:
        raise InputError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not a kernel mode; "
            f"accepted values: {', '.join(MODES)}",
            hint=f"unset {ENV_VAR} or set it to auto, torch or triton",
        )
    return raw


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when ``import triton`` succeeds (checked once per process)."""
    try:
        import triton  # noqa: F401
    except Exception:  # ImportError, or a broken install raising something else
        return False
    return True


def triton_interpret_enabled() -> bool:
    """True when ``TRITON_INTERPRET`` is set to a true value (as Triton itself reads it)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUTHY


def _tensors(objs: Iterable[Any]) -> list[Any]:
    """The torch tensors among ``objs`` (also one level inside lists and tuples)."""
    torch = sys.modules.get("torch")
    if torch is None:  # no tensor can exist before torch is imported
        return []
    found = []
    for obj in objs:
        items = obj if isinstance(obj, (list, tuple)) else (obj,)
        found.extend(x for x in items if isinstance(x, torch.Tensor))
    return found


def _all_on_cuda(tensors: list[Any]) -> bool:
    return bool(tensors) and all(t.device.type == "cuda" for t in tensors)


def backend_for(*tensors: Any) -> str:
    """``"triton"`` or ``"torch"`` for an op on ``tensors`` (non-tensor arguments are ignored)."""
    mode = kernel_mode()
    if mode == "torch":
        return "torch"
    found = _tensors(tensors)
    on_cuda = _all_on_cuda(found)
    if mode == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if not triton_available():
        raise InputError(
            f"{ENV_VAR}=triton but triton cannot be imported",
            hint=f"install triton (Linux with a CUDA GPU), or set {ENV_VAR}=auto",
        )
    if on_cuda or triton_interpret_enabled():
        return "triton"
    devices = sorted({str(t.device) for t in found}) or ["no tensors"]
    raise InputError(
        f"{ENV_VAR}=triton needs tensors on a CUDA device, got {', '.join(devices)}",
        hint=f"move the tensors to CUDA, set TRITON_INTERPRET=1 to run kernels on CPU (slow), "
        f"or set {ENV_VAR}=auto",
    )


@dataclass(frozen=True)
class Op:
    """One op: a PyTorch reference, an optional Triton launcher, and which inputs the kernel covers."""

    name: str
    torch_impl: Callable[..., Any]
    triton_impl: Callable[..., Any] | None = None
    triton_supports: Callable[..., bool] | None = None
    use_in_auto: bool = True

    def backend(self, *args: Any, **kwargs: Any) -> str:
        """The backend a call with these arguments would use."""
        mode = kernel_mode()
        if mode == "torch" or self.triton_impl is None or (mode == "auto" and not self.use_in_auto):
            return "torch"
        if self.triton_supports is not None and not self.triton_supports(*args, **kwargs):
            return "torch"
        return backend_for(*args, *kwargs.values())

    def impl(self, backend: str) -> Callable[..., Any]:
        """The implementation for ``backend`` (``"torch"`` or ``"triton"``)."""
        if backend == "triton" and self.triton_impl is not None:
            return self.triton_impl
        if backend in BACKENDS:
            return self.torch_impl
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.impl(self.backend(*args, **kwargs))(*args, **kwargs)


_REGISTRY: dict[str, Op] = {}


def register_op(
    name: str,
    torch_impl: Callable[..., Any],
    triton_impl: Callable[..., Any] | None = None,
    *,
    triton_supports: Callable[..., bool] | None = None,
    use_in_auto: bool = True,
) -> Op:
    """Register ``name -> (torch_impl, triton_impl)`` and return the `Op` (callable, dispatching).

    Registering a name again from the same module (a reload) replaces it; from another module it
    is an error, so two op modules cannot silently shadow each other. ``use_in_auto=False`` keeps an
    op on the reference under ``DNNKIT_KERNELS=auto`` (its kernel did not beat PyTorch where measured,
    docs/benchmarks/kernels.md); ``DNNKIT_KERNELS=triton`` still runs the kernel.
    """
    old = _REGISTRY.get(name)
    if old is not None and old.torch_impl.__module__ != torch_impl.__module__:
        raise ValueError(f"kernel op {name!r} is already registered by {old.torch_impl.__module__}")
    op = Op(name, torch_impl, triton_impl, triton_supports, use_in_auto)
    _REGISTRY[name] = op
    return op


def _op_module_names() -> list[str]:
    package = importlib.import_module(__package__ or "dnnkit.kernels")
    return sorted(
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_OP_MODULES and not m.ispkg
    )


def _load_all() -> None:
    for mod in _op_module_names():
        importlib.import_module(f"{__package__}.{mod}")


def available_ops() -> list[str]:
    """Names of all ops (imports every op module of the package, hence torch)."""
    _load_all()
    return sorted(_REGISTRY)


def get_op(name: str) -> Op:
    """The registered `Op` called ``name``, importing its module on first use."""
    if name not in _REGISTRY and name in _op_module_names():
        importlib.import_module(f"{__package__}.{name}")
    if name not in _REGISTRY:
        _load_all()
    if name not in _REGISTRY:
        raise InputError(f"unknown kernel op {name!r}; available: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return _REGISTRY[name]


def dispatch(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run op ``name`` on the backend `Op.backend` picks for these arguments."""
    return get_op(name)(*args, **kwargs)
