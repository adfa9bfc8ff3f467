"""The linear interpreter F_x0(x) = A(x0) x + c(x0): forward (A x + c), backward (A^T v), rows, columns.

Forward maps run as one batch [x0; copies] through the model inside a `LinearScope`: c(x0) is
F_x0(0), a column is F_x0(e_p) - c. Rows are A^T e_k (the transpose of a linear map is its backward
pass): one forward of the items with every unit applying its own frozen action, then all K
backward passes batched with vmap.
"""

from __future__ import annotations

import torch
from torch import nn

from dnnkit.probes.gating.inputs import logits_of
from dnnkit.probes.gating.scope import LinearScope


class Interpreter:
    """Context manager around a model in eval mode; inside it the primitives below are valid."""

    def __init__(self, model: nn.Module, smooth: str = "secant") -> None:
        self.model = model
        self.scope = LinearScope(model, smooth)
        self._grad_flags: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> Interpreter:
        self._grad_flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self._grad_flags:
            p.requires_grad_(False)  # gradients flow to the input copies only
        self.scope.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.scope.__exit__(*exc)
        for p, flag in self._grad_flags:
            p.requires_grad_(flag)

    def _pass(self, x0: torch.Tensor, x1: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = x0.shape[0]
        self.scope.items, self.scope.copies = b, k
        y = logits_of(self.model(torch.cat([x0, x1]) if k else x0))
        y = y.reshape(y.shape[0], -1)
        return y[:b], y[b:].reshape(b, k, y.shape[1])

    @torch.no_grad()
    def output(self, x0: torch.Tensor) -> torch.Tensor:
        """f(x0), flattened to (B, n_out)."""
        return self._pass(x0, x0[:0], 0)[0]

    @torch.no_grad()
    def apply(self, x0: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x0), F_x0(xs)) for copies xs of shape (B, K, *input): F_x0(x) = A(x0) x + c(x0)."""
        b, k = xs.shape[:2]
        return self._pass(x0, xs.reshape(b * k, *xs.shape[2:]), k)

    def bias(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x0), c(x0)) with c = F_x0(0), the bias path."""
        f, y = self.apply(x0, torch.zeros_like(x0)[:, None])
        return f, y[:, 0]

    def transpose(self, x0: torch.Tensor, vs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f(x0), c(x0), A(x0)^T v) for K output-space vectors per item, vs of shape (B, K, n_out)."""
        b, k = vs.shape[:2]
        x1 = torch.zeros(b * k, *x0.shape[1:], dtype=x0.dtype, device=x0.device, requires_grad=True)
        with torch.enable_grad():
            f, y1 = self._pass(x0, x1, k)
            (grad,) = torch.autograd.grad((y1 * vs).sum(), x1)
        return f.detach(), y1[:, 0].detach(), grad.reshape(b, k, *x0.shape[1:])

    def rows(self, x0: torch.Tensor, outs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f, c, rows): rows[i, k] = row outs[i, k] of A(x_i).

        One forward of the items in which every unit applies its own frozen action (same values as the
        network, gradient A^T), then the K backward passes batched with vmap; c from one pass of zero copies.
        """
        b, k = outs.shape
        f, c = self.bias(x0)
        x = x0.detach().clone().requires_grad_(True)
        self.scope.items, self.scope.copies, self.scope.self_frozen = b, 0, True
        try:
            with torch.enable_grad():
                y = logits_of(self.model(x)).reshape(b, -1)
        finally:
            self.scope.self_frozen = False
        vs = torch.zeros(k, b, y.shape[1], dtype=y.dtype, device=y.device)
        vs.scatter_(2, outs.to(y.device).t()[..., None], 1.0)
        try:
            (grads,) = torch.autograd.grad(y, x, vs, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: one backward per output slot
            grads = torch.stack([torch.autograd.grad(y, x, v, retain_graph=True)[0] for v in vs])
        return f, c, grads.transpose(0, 1).contiguous()

    def columns(self, x0: torch.Tensor, positions: list[int]) -> torch.Tensor:
        """A(x0) e_p for flat input positions p: (B, P, n_out)."""
        b, n_in = x0.shape[0], x0[0].numel()
        eye = torch.zeros(len(positions) + 1, n_in, dtype=x0.dtype, device=x0.device)
        eye[torch.arange(1, len(positions) + 1), torch.as_tensor(positions, dtype=torch.long)] = 1.0
        xs = eye.reshape(1, len(positions) + 1, *x0.shape[1:]).expand(b, -1, *x0.shape[1:])
        _, y = self.apply(x0, xs.contiguous())
        return y[:, 1:] - y[:, :1]

    def full_matrix(self, x0: torch.Tensor, n_out: int) -> torch.Tensor:
        """A(x0) as (B, n_out, n_in) from the rows of every output."""
        outs = torch.arange(n_out).repeat(x0.shape[0], 1)
        return self.rows(x0, outs)[2].reshape(x0.shape[0], n_out, -1)
