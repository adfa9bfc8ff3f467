"""Checks of the replay: linearity (and which module breaks it), Jacobian agreement, local fidelity."""

from __future__ import annotations

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.gating.inputs import logits_of
from dnnkit.probes.linear_interpret.replay import Interpreter


def linearity_tolerance(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-4


def _lin_residual(y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """y: (B, 4, ...) outputs of copies [0, u, v, a u + b v]; relative residual of linearity."""
    y = y.reshape(y.shape[0], 4, -1)
    c = y[:, 0]
    lhs = y[:, 3] - c
    rhs = a[:, None] * (y[:, 1] - c) + b[:, None] * (y[:, 2] - c)
    scale = torch.maximum(lhs.abs().max(), rhs.abs().max()).clamp_min(torch.finfo(y.dtype).tiny)
    return float((lhs - rhs).abs().max() / scale)


def linearity_check(it: Interpreter, x0: torch.Tensor, seed: int = 0) -> float:
    """Relative residual of F(a u + b v) - c against a (F(u) - c) + b (F(v) - c); raises naming the culprit."""
    gen = torch.Generator().manual_seed(seed)
    b = x0.shape[0]
    scale = x0.flatten(1).abs().amax(1).clamp_min(1e-3).reshape(b, *([1] * (x0.dim() - 1)))
    u = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device) * scale
    v = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device) * scale
    ca = (torch.rand(b, generator=gen, dtype=x0.dtype) * 2 - 1).to(x0.device)
    cb = (torch.rand(b, generator=gen, dtype=x0.dtype) * 2 - 1).to(x0.device)
    shape = (b, *([1] * (x0.dim() - 1)))
    xs = torch.stack([torch.zeros_like(x0), u, v, ca.reshape(shape) * u + cb.reshape(shape) * v], dim=1)
    _, y = it.apply(x0, xs)
    err = _lin_residual(y, ca, cb)
    if err > linearity_tolerance(x0.dtype):
        culprit = _first_nonlinear_module(it, x0, xs, ca, cb)
        raise InputError(f"the frozen network is not linear (relative residual {err:.2e}); first broken at "
                         f"{culprit}: a non-linearity applied functionally (F.relu, torch.max, softmax) "
                         "cannot be frozen", hint="use module activations (nn.ReLU, nn.MaxPool2d) in forward")
    return err


def _first_nonlinear_module(it: Interpreter, x0: torch.Tensor, xs: torch.Tensor, ca: torch.Tensor,
                            cb: torch.Tensor) -> str:
    """Where linearity breaks: the first module whose output is not linear in the copies, and, when its input
    already was not, the module whose forward applies the non-linearity functionally (linear in, not out)."""
    b = x0.shape[0]
    tol = linearity_tolerance(x0.dtype)
    first_output: list[str] = []
    culprit: list[str] = []

    def broken(t: object) -> bool:
        return isinstance(t, torch.Tensor) and t.shape[0] == 5 * b and t.is_floating_point() and \
            _lin_residual(t[b:].detach().reshape(b, 4, -1), ca, cb) > tol

    handles = []
    for name, m in it.model.named_modules():
        def hook(module: nn.Module, args: tuple, output: object, name: str = name) -> None:
            if culprit or not broken(logits_of(output)):
                return
            label = f"{name or 'the model'} ({type(module).__name__})"
            if not first_output:
                first_output.append(label)
            if not any(broken(a) for a in args):
                culprit.append(label)
        handles.append(m.register_forward_hook(hook))
    try:
        it.apply(x0, xs)
    finally:
        for h in handles:
            h.remove()
    if not first_output:
        return type(it.model).__name__
    if not culprit or culprit[0] == first_output[0]:
        return first_output[0]
    return (f"{first_output[0]}, whose input is already non-linear: the non-linearity is applied functionally "
            f"inside the forward of {culprit[0]}")


def jacobian_rows(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torch.func.jacrev of the flattened output at one input x: (n_out, *x.shape)."""
    def f(z: torch.Tensor) -> torch.Tensor:
        return logits_of(model(z[None])).reshape(-1)
    with torch.no_grad():
        return torch.func.jacrev(f)(x)


def local_error(it: Interpreter, x0: torch.Tensor, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """Per item: ||F_x0(x) - f(x)|| / ||f(x)|| at x = x0 + noise * max|x0| * N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    scale = x0.flatten(1).abs().amax(1).clamp_min(1e-3).reshape(x0.shape[0], *([1] * (x0.dim() - 1)))
    x = x0 + noise * scale * torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
    _, y = it.apply(x0, x[:, None])
    fx = it.output(x)
    return (y[:, 0] - fx).norm(dim=1) / fx.norm(dim=1).clamp_min(torch.finfo(x0.dtype).tiny)
