"""Op dispatch and kernels: a PyTorch reference and a Triton kernel per op (see `dispatch`).

Importing this package is cheap: it never imports torch or triton. Each op lives in its own module,
named after the op, which imports torch; call it from there or by name::

    from dnnkit.kernels.tensor_stats import tensor_stats
    stats = tensor_stats(weight)

    from dnnkit.kernels.dispatch import dispatch
    stats = dispatch("tensor_stats", weight)

Functions named like a submodule (each op, and ``dispatch``) are not re-exported here: the package
attribute ``dnnkit.kernels.<name>`` must stay the submodule, whatever was imported first.
"""

from __future__ import annotations

from dnnkit.kernels.dispatch import (
    Op,
    available_ops,
    backend_for,
    get_op,
    kernel_mode,
    register_op,
    triton_available,
    triton_interpret_enabled,
)

__all__ = [
    "Op",
    "available_ops",
    "backend_for",
    "get_op",
    "kernel_mode",
    "register_op",
    "triton_available",
    "triton_interpret_enabled",
]
