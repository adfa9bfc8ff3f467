"""Classify the modules of a network by how they gate: piecewise linear, max-pool, smooth, norm, attention."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from torch import nn

from dnnkit.errors import InputError

RELU_FAMILY: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Hardtanh)
MAX_POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                                          nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
SMOOTH: tuple[type[nn.Module], ...] = (nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Mish, nn.ELU, nn.SELU,
                                       nn.CELU, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid, nn.Softsign,
                                       nn.Tanhshrink)
NORMS: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
UNSUPPORTED: tuple[type[nn.Module], ...] = (nn.Softmax, nn.Softmax2d, nn.LogSoftmax, nn.Softmin, nn.MultiheadAttention,
                                            nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                                            nn.LocalResponseNorm, nn.Hardshrink, nn.Softshrink, nn.Threshold,
                                            nn.RReLU, nn.GLU, nn.FractionalMaxPool2d, nn.LPPool2d)
BATCH_NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def classify(module: nn.Module) -> str | None:
    """'relu' (piecewise-linear gate), 'maxpool', 'smooth', 'norm', 'attention', 'unsupported', or None
    (affine/container). `unsupported_reason` says why a module is 'unsupported'."""
    if isinstance(module, RELU_FAMILY):
        return "relu"
    if isinstance(module, MAX_POOLS):
        return "maxpool"
    if isinstance(module, SMOOTH):
        return "smooth"
    if isinstance(module, NORMS):
        return "norm" if standard_norm(module) else "unsupported"
    if is_timm_attention(module):
        return "attention" if timm_attention_problem(module) is None else "unsupported"
    if isinstance(module, UNSUPPORTED):
        return "unsupported"
    return None


def unsupported_reason(module: nn.Module) -> str:
    """Why `classify(module)` is 'unsupported', in a few words (for the error line)."""
    if isinstance(module, NORMS):
        base = _norm_base(module)
        return (f"it subclasses nn.{base.__name__} but its forward differs from nn.{base.__name__}.forward "
                "(checked on probe inputs; e.g. it normalises other dims), so the frozen-scale rule does not apply")
    if is_timm_attention(module):
        return timm_attention_problem(module) or "unsupported attention variant"
    if isinstance(module, (nn.Softmax, nn.Softmax2d, nn.LogSoftmax, nn.Softmin)):
        return "a softmax outside a supported attention module has no frozen rule"
    if isinstance(module, nn.MultiheadAttention):
        return "nn.MultiheadAttention is not supported (its softmax runs inside one fused op)"
    if isinstance(module, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm)):
        return "this normalisation has no frozen rule yet"
    return "no frozen rule for this non-linear unit"


def _norm_base(module: nn.Module) -> type[nn.Module]:
    """The supported norm class `module` is an instance of."""
    return next(cls for cls in type(module).__mro__ if cls in NORMS)


def standard_norm(module: nn.Module) -> bool:
    """True when a LayerNorm / GroupNorm / RMSNorm (or a subclass) computes what its torch base class computes.

    Exact types and subclasses that keep the base forward pass; a subclass with its own forward (e.g.
    timm's LayerNorm, which calls F.layer_norm with the same arguments) must match the base forward on
    probe inputs of two ranks. timm's LayerNorm2d (normalises the channel dim of NCHW maps) does not.
    """
    base = _norm_base(module)
    if type(module).forward is base.forward:
        return True
    return _matches_base_forward(module, base)


def _matches_base_forward(module: nn.Module, base: type[nn.Module]) -> bool:
    """The subclass's forward against the base forward on two random probes (a few hundred numbers)."""
    import torch

    params = list(module.parameters(recurse=False))
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    device = params[0].device if params else None
    if isinstance(module, nn.GroupNorm):
        shapes = [(2, module.num_channels, 3), (2, module.num_channels, 3, 2)]
    else:
        shape = tuple(module.normalized_shape)
        shapes = [(2, 3, *shape), (2, 3, 2, *shape)]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for shape in shapes:
            x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 0.5).to(dtype=dtype, device=device)
            try:
                got = type(module).forward(module, x.clone())  # forward, not __call__: no hooks run
            except Exception:  # noqa: BLE001 - a forward that rejects the probe is not the base forward
                return False
            want = base.forward(module, x.clone())
            tol = 1e-10 if dtype == torch.float64 else 1e-4
            if not isinstance(got, torch.Tensor) or got.shape != want.shape or not torch.allclose(
                    got.to(want.dtype), want, rtol=tol, atol=tol):
                return False
    return True


def is_timm_attention(module: nn.Module) -> bool:
    """timm's multi-head self-attention (`timm.layers.Attention`, ViT / DeiT blocks)."""
    cls = type(module)
    return cls.__name__ == "Attention" and cls.__module__.startswith("timm.") and hasattr(module, "qkv")


def timm_attention_problem(module: nn.Module) -> str | None:
    """None when the scope can freeze this timm Attention (probabilities from x0, values live), else why not."""
    missing = [a for a in ("qkv", "num_heads", "head_dim", "proj") if not hasattr(module, a)]
    if missing:
        return f"timm Attention without {', '.join(missing)} (another timm version): its layout is unknown"
    extra = [a for a in ("q_norm", "k_norm", "norm") if not isinstance(getattr(module, a, nn.Identity()), nn.Identity)]
    if extra:
        return (f"timm Attention with {', '.join(extra)} (qk_norm / scale_norm) is not supported: only plain "
                "softmax attention is frozen")
    if getattr(module, "gate", None) is not None:
        return "gated timm Attention is not supported: only plain softmax attention is frozen"
    if getattr(module, "attn_dim", module.num_heads * module.head_dim) != module.num_heads * module.head_dim:
        return "timm Attention with attn_dim != num_heads * head_dim has an unknown layout"
    return None


@dataclass(frozen=True)
class GateInfo:
    """One gating module: its qualified name, the module, and its kind ('relu' or 'smooth')."""

    name: str
    module: nn.Module
    kind: str


def check_eval_mode(model: nn.Module) -> None:
    """Refuse a model with BatchNorm in training mode (it would mix examples of one batch)."""
    for name, m in model.named_modules():
        if isinstance(m, BATCH_NORMS) and m.training:
            raise InputError(f"{name or type(m).__name__} is in training mode; gates must be read in eval mode",
                             hint="call model.eval() first")


def find_gates(model: nn.Module, patterns: list[str] | None = None) -> list[GateInfo]:
    """Gate modules in registration order: every ReLU-family module, or those matching `patterns`.

    Patterns are shell globs on qualified module names; they may also pick smooth units (their bit
    is then the sign of their input, flagged kind 'smooth'). Patterns that match no gate are an error.
    """
    named = [(n, m) for n, m in model.named_modules() if n]
    if not patterns:
        gates = [GateInfo(n, m, "relu") for n, m in named if classify(m) == "relu"]
        if not gates:
            raise InputError("no ReLU-family module found; activations applied functionally cannot be read",
                             hint="--layers NAME picks modules by name (e.g. smooth units such as GELU)")
        return gates
    gates, seen = [], set()
    for pat in patterns:
        hits = [(n, m) for n, m in named if fnmatch.fnmatchcase(n, pat) and classify(m) in ("relu", "smooth")]
        if not hits:
            other = [n for n, _ in named if fnmatch.fnmatchcase(n, pat)]
            detail = f" (it matches {', '.join(other[:3])}, which are not activation units)" if other else ""
            raise InputError(f"--layers {pat!r} matches no ReLU-family or smooth unit{detail}",
                             hint="module names are listed by `dnnkit inspect MODEL`")
        for n, m in hits:
            if n not in seen:
                seen.add(n)
                gates.append(GateInfo(n, m, classify(m) or "relu"))
    order = {n: i for i, (n, _) in enumerate(named)}
    return sorted(gates, key=lambda g: order[g.name])
