"""Classify the modules of a network by how they gate: piecewise linear, max-pool, smooth, norm."""

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
    """'relu' (piecewise-linear gate), 'maxpool', 'smooth', 'norm', 'unsupported', or None (affine/container)."""
    if isinstance(module, RELU_FAMILY):
        return "relu"
    if isinstance(module, MAX_POOLS):
        return "maxpool"
    if isinstance(module, SMOOTH):
        return "smooth"
    if type(module) in NORMS:  # exact types: subclasses (e.g. timm's LayerNorm2d) normalise other dims
        return "norm"
    if isinstance(module, NORMS):
        return "unsupported"
    if isinstance(module, UNSUPPORTED):
        return "unsupported"
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
