"""LinearScope: freeze every gate at x0 so the network acts on copies as the affine map A(x0) x + c(x0).

The batch fed to the model inside the scope is [x0 (B items); x1 (B*K copies)], copy (i, k) at row
B + i*K + k. The first part runs every unit normally, so f(x0) is untouched; each copy of item i
gets the action of every non-linear unit frozen from item i (ReLU slopes, max-pool switches, smooth
unit gains, normalisation scales, softmax attention probabilities of timm's `Attention`), computed
without gradient, so the copies part is exactly affine in x1. Implemented with a pre-hook (which
hands in-place units a scratch copy of their input) and a forward hook that replaces the copies part
of the output (in place for in-place units, so later users of their input see the replay too); hooks
are removed on exit.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnnkit.errors import InputError, RuntimeFailure
from dnnkit.probes.gating.units import check_eval_mode, classify, unsupported_reason

SMOOTH_RULES = ("secant", "tangent")
RULES = {
    "relu": "active linear piece at z0 (slope and intercept of the piece; z0 == 0 is off)",
    "maxpool": "z1 gathered at the argmax switches of z0 (the pool's own returned indices)",
    "smooth-secant": "gain (phi(z0) - phi(0)) / z0 (phi'(0) where |z0| < 1e-6), offset phi(0)",
    "smooth-tangent": "gain phi'(z0), offset phi(z0) - phi'(z0) z0 (A is then the Jacobian)",
    "norm": "centring live (linear), scale 1/sigma(z0) frozen, affine weight and bias kept",
    "attention": "softmax probabilities frozen from x0 (timm Attention); values and projections live",
    "batchnorm": "eval mode: running statistics, affine (unchanged)",
}


class LinearScope:
    """Context manager over `model`: inside, forward passes on [x0; copies] replay the frozen network.

    Set `scope.items` (B) and `scope.copies` (K) before each forward. Units the scope cannot freeze
    (a bare softmax, nn.MultiheadAttention, instance norm, a norm subclass with another forward, ...)
    are refused with their name, class and the reason.
    """

    def __init__(self, model: nn.Module, smooth: str = "secant") -> None:
        if smooth not in SMOOTH_RULES:
            raise InputError(f"--smooth must be secant or tangent, got {smooth!r}")
        check_eval_mode(model)
        self.model, self.smooth = model, smooth
        self.items, self.copies = 0, 0
        self.units: Counter[str] = Counter()
        self.modules: list[tuple[str, nn.Module, str]] = []
        for name, m in model.named_modules():
            kind = classify(m)
            if kind == "unsupported":
                cls = type(m)
                raise InputError(f"{name} ({cls.__module__}.{cls.__qualname__}) cannot be frozen into a linear "
                                 f"interpreter: {unsupported_reason(m)}",
                                 hint="supported: ReLU family, max-pool, smooth elementwise units, LayerNorm, "
                                      "GroupNorm, RMSNorm (and subclasses with the same forward), timm softmax "
                                      "Attention, and affine layers")
            if kind is not None:
                self.modules.append((name, m, kind))
                self.units[type(m).__name__] += 1
        self._handles: list[Any] = []
        self._saved: dict[int, torch.Tensor] = {}
        self._suspended = False
        self.self_frozen = False  # with copies == 0: units apply their own frozen action (value f, gradient A^T)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Run the plain model inside the scope (e.g. for an autograd Jacobian)."""
        old, self._suspended = self._suspended, True
        try:
            yield
        finally:
            self._suspended = old

    @property
    def kinds(self) -> set[str]:
        return {k for _, _, k in self.modules}

    @property
    def piecewise_linear(self) -> bool:
        """True when every non-linear unit is ReLU-family or max-pool (the replay is then exact near x0)."""
        return self.kinds <= {"relu", "maxpool"}

    def rules(self) -> dict[str, str]:
        """The freezing rule of every unit kind present."""
        out = {}
        for k in sorted(self.kinds):
            key = f"smooth-{self.smooth}" if k == "smooth" else k
            out[key] = RULES[key]
        if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) for m in self.model.modules()):
            out["batchnorm"] = RULES["batchnorm"]
        return out

    def __enter__(self) -> LinearScope:
        for _, m, kind in self.modules:
            if kind == "attention":
                self._handles.append(m.register_forward_pre_hook(self._attention_pre_hook, with_kwargs=True))
            else:
                self._handles.append(m.register_forward_pre_hook(self._pre_hook))
            self._handles.append(m.register_forward_hook(self._make_hook(kind)))
        return self

    def _attention_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple | None:
        """Self-attention without a mask only: a mask or causal flag would have to be frozen as well."""
        if not self._suspended:
            mask = kwargs.get("attn_mask", args[1] if len(args) > 1 else None)
            causal = kwargs.get("is_causal", args[2] if len(args) > 2 else False)
            if mask is not None or causal:
                names = {id(m): n for n, m, _ in self.modules}
                raise InputError(f"{names.get(id(module), type(module).__name__)}: attention with a mask or "
                                 "is_causal cannot be frozen into a linear interpreter yet")
        new = self._pre_hook(module, args)
        return None if new is None else (new, kwargs)

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._saved.clear()

    def _pre_hook(self, module: nn.Module, args: tuple) -> tuple | None:
        if self._suspended:
            return None
        z = args[0]
        b, k = self.items, self.copies
        if z.shape[0] != b * (1 + k):
            raise RuntimeFailure(f"{type(module).__name__} saw a batch of {z.shape[0]} rows, expected "
                                 f"{b} items + {b * k} copies; the model reshapes its batch")
        self._saved[id(module)] = z
        inplace = getattr(module, "inplace", False)
        if k == 0:
            return (z.clone(), *args[1:]) if inplace else None
        # the unit itself runs on the items only (its action on the copies is the frozen one); an in-place
        # unit gets a scratch copy and the hook writes the whole result into z
        return (z[:b].clone() if inplace else z[:b], *args[1:])

    def _make_hook(self, kind: str):  # noqa: ANN202
        act = {"relu": _relu_piece, "maxpool": _maxpool_switch, "smooth": self._smooth, "norm": _norm_frozen,
               "attention": _attention_frozen}[kind]

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if self._suspended:
                return output
            z = self._saved.pop(id(module))
            b, k = self.items, self.copies
            inplace = getattr(module, "inplace", False)
            full = output
            if k:
                zz = z.clone() if inplace else z  # z itself is overwritten below for in-place units
                full = torch.cat([output, act(module, zz[:b].detach(), zz[b:], k)], dim=0)
            elif self.self_frozen:  # same values as the unit; autograd then sees the frozen (affine) action
                zz = z.clone() if inplace else z
                full = act(module, zz.detach(), zz, 1)
            if inplace:
                z.copy_(full)  # in-place semantics: later users of the input see the result, as without the scope
                return z
            return full
        return hook

    def _smooth(self, module: nn.Module, z0: torch.Tensor, z1: torch.Tensor, k: int) -> torch.Tensor:
        with torch.no_grad():
            if self.smooth == "secant":
                phi0 = module.forward(torch.zeros(1, dtype=z0.dtype, device=z0.device))
                slope0 = _derivative(module, torch.zeros_like(z0))
                small = z0.abs() < 1e-6
                safe = torch.where(small, torch.ones_like(z0), z0)
                gain = torch.where(small, slope0, (module.forward(z0.clone()) - phi0) / safe)
                offset = phi0.expand_as(z0)
            else:
                gain = _derivative(module, z0)
                offset = module.forward(z0.clone()) - gain * z0
        return _rep(gain, k) * z1 + _rep(offset, k)


def _rep(t: torch.Tensor, k: int) -> torch.Tensor:
    return t.repeat_interleave(k, dim=0)


def _derivative(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        zz = z.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(module.forward(zz.clone()).sum(), zz)  # forward: no hooks; clone: in-place units
    return g.detach()


def _channel_view(w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A per-channel parameter shaped to broadcast over z (channel dim 1)."""
    if w.numel() == 1 or z.dim() < 2:
        return w.reshape(())
    return w.reshape(1, -1, *([1] * (z.dim() - 2)))


def _relu_piece(module: nn.Module, z0: torch.Tensor, z1: torch.Tensor, k: int) -> torch.Tensor:
    with torch.no_grad():
        on = z0 > 0
        intercept = None
        if isinstance(module, nn.Hardtanh):  # includes ReLU6
            lo, hi = float(module.min_val), float(module.max_val)
            slope = ((z0 > lo) & (z0 < hi)).to(z0.dtype)
            intercept = torch.where(z0 <= lo, lo, torch.where(z0 >= hi, hi, 0.0)).to(z0.dtype)
        elif isinstance(module, nn.LeakyReLU):
            slope = torch.where(on, 1.0, float(module.negative_slope)).to(z0.dtype)
        elif isinstance(module, nn.PReLU):
            slope = torch.where(on, torch.ones_like(z0), _channel_view(module.weight.detach(), z0).to(z0.dtype))
        else:
            slope = on.to(z0.dtype)
    out = _rep(slope, k) * z1
    return out if intercept is None else out + _rep(intercept, k)


def _maxpool_switch(module: nn.Module, z0: torch.Tensor, z1: torch.Tensor, k: int) -> torch.Tensor:
    nd = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2,
          nn.AdaptiveMaxPool3d: 3}[type(module)]
    with torch.no_grad():
        if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
            fn = getattr(F, f"adaptive_max_pool{nd}d")
            _, idx = fn(z0, module.output_size, return_indices=True)
        else:
            fn = getattr(F, f"max_pool{nd}d")
            _, idx = fn(z0, module.kernel_size, module.stride, module.padding, module.dilation,
                        ceil_mode=module.ceil_mode, return_indices=True)
    lead = z1.shape[:-nd]
    gathered = z1.reshape(*lead, -1).gather(-1, _rep(idx, k).reshape(*lead, -1))
    return gathered.reshape(*lead, *idx.shape[-nd:])


def _norm_frozen(module: nn.Module, z0: torch.Tensor, z1: torch.Tensor, k: int) -> torch.Tensor:
    eps = module.eps if module.eps is not None else torch.finfo(z0.dtype).eps
    if isinstance(module, nn.GroupNorm):
        g = module.num_groups
        with torch.no_grad():
            inv0 = torch.rsqrt(z0.reshape(z0.shape[0], g, -1).var(-1, unbiased=False, keepdim=True) + eps)
        v1 = z1.reshape(z1.shape[0], g, -1)
        y1 = ((v1 - v1.mean(-1, keepdim=True)) * _rep(inv0, k)).reshape(z1.shape)
        if module.affine:
            y1 = y1 * _channel_view(module.weight, z1) + _channel_view(module.bias, z1)
        return y1
    dims = tuple(range(-len(module.normalized_shape), 0))
    if isinstance(module, nn.LayerNorm):
        with torch.no_grad():
            inv0 = torch.rsqrt(z0.var(dims, unbiased=False, keepdim=True) + eps)
        y1 = (z1 - z1.mean(dims, keepdim=True)) * _rep(inv0, k)
    else:  # RMSNorm: no centring
        with torch.no_grad():
            inv0 = torch.rsqrt(z0.pow(2).mean(dims, keepdim=True) + eps)
        y1 = z1 * _rep(inv0, k)
    if getattr(module, "weight", None) is not None:
        y1 = y1 * module.weight
    if getattr(module, "bias", None) is not None:
        y1 = y1 + module.bias
    return y1


def _attention_frozen(module: nn.Module, z0: torch.Tensor, z1: torch.Tensor, k: int) -> torch.Tensor:
    """timm `Attention` on copies: softmax(q0 k0^T * scale) from the item, values v(z1) and projections live."""
    b, n, _ = z0.shape
    h, d = module.num_heads, module.head_dim
    with torch.no_grad():
        qkv0 = module.qkv(z0).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        scale = float(getattr(module, "scale", d ** -0.5))
        probs = ((qkv0[0] * scale) @ qkv0[1].transpose(-2, -1)).softmax(dim=-1)  # (b, h, n, n)
    v1 = module.qkv(z1).reshape(z1.shape[0], n, 3, h, d).permute(2, 0, 3, 1, 4)[2]  # (b k, h, n, d)
    y1 = (_rep(probs, k) @ v1).transpose(1, 2).reshape(z1.shape[0], n, h * d)
    y1 = module.proj(y1)
    drop = getattr(module, "proj_drop", None)
    return drop(y1) if drop is not None else y1
