"""Which Linear layers to replace, and the structural install shared by the swap and by recipe replay."""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.nn.tversky import StandardizedLinear, TverskyProjection

BANK_PREFIX = "tversky_bank_"  # root parameters holding shared feature banks: tversky_bank_<input width>
KINDS = ("tversky", "linear")


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of the nn.Linear modules, in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]


def resolve_layers(model: nn.Module, pattern: str) -> list[str]:
    """Module names matching the comma-separated globs of `pattern`; every match must be nn.Linear."""
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    if not globs:
        raise InputError("--layers is empty", hint="pass a module name or glob, e.g. --layers fc or '*.lm_head'")
    names = [n for n, _ in model.named_modules() if n and any(fnmatch.fnmatchcase(n, g) for g in globs)]
    if not names:
        linears = linear_layer_names(model)
        shown = ", ".join(linears[:12]) + (", ..." if len(linears) > 12 else "")
        raise InputError(f"--layers {pattern} matched nothing; Linear layers are: {shown or 'none'}")
    modules = dict(model.named_modules())
    for name in names:
        mod = modules[name]
        if type(mod) is not nn.Linear:
            raise InputError(f"{name} is {type(mod).__name__}, not Linear",
                             hint="--layers must match nn.Linear modules only (a narrower glob?)")
    return names


def final_linear(model: nn.Module) -> str | None:
    """The last nn.Linear in module order (the classifier head of a classifier)."""
    names = linear_layer_names(model)
    return names[-1] if names else None


def plan_layers(model: nn.Module, names: list[str], *, kind: str, features: int | None, prototypes: int | None,
                num_classes: int | None, share_features: bool, tie: str | None, task: str) -> dict[str, dict[str, Any]]:
    """Per-layer record {in, out, features, bank, tied_to}; checks the options against the model (exit 2)."""
    modules = dict(model.named_modules())
    if num_classes is not None:
        last = final_linear(model)
        if task != "classifier":
            raise InputError(f"--num-classes needs a classifier; the model is a {task}")
        if names != [last]:
            raise InputError(f"--num-classes changes the final layer only ({last}); --layers matched "
                             f"{', '.join(names[:4])}")
    tied_weight = None
    if tie is not None:
        if tie not in modules:
            raise InputError(f"--tie-prototypes {tie}: no such module")
        tied_weight = getattr(modules[tie], "weight", None)
        if not isinstance(tied_weight, torch.Tensor) or tied_weight.dim() != 2:
            raise InputError(f"--tie-prototypes {tie} is {type(modules[tie]).__name__}, which has no 2-D weight")
    plan: dict[str, dict[str, Any]] = {}
    for name in names:
        lin = modules[name]
        out = num_classes if num_classes is not None else lin.out_features
        if kind == "tversky" and prototypes is not None and prototypes != out:
            raise InputError(f"--prototypes {prototypes} must equal {name}'s out_features ({out})",
                             hint="one prototype per output unit; use --prototypes out")
        if tied_weight is not None and tuple(tied_weight.shape) != (out, lin.in_features):
            raise InputError(f"--tie-prototypes {tie} has shape {tuple(tied_weight.shape)}, but {name} needs "
                             f"({out}, {lin.in_features})")
        entry: dict[str, Any] = {"in": lin.in_features, "out": out, "bias": lin.bias is not None}
        if kind == "tversky":
            entry.update(features=features, bank=str(lin.in_features) if share_features else None, tied_to=tie)
        plan[name] = entry
    return plan


def install(model: nn.Module, params: dict[str, Any], layers: dict[str, dict[str, Any]],
            generator: torch.Generator | None = None) -> dict[str, nn.Module]:
    """Replace each planned Linear by a TverskyProjection / StandardizedLinear (fresh init); returns them by name.

    Structural only (replay loads the weights afterwards); shared banks are root parameters `tversky_bank_<d>`.
    """
    kind = params.get("kind", "tversky")
    if kind not in KINDS:
        raise InputError(f"checkpoint recipe: unknown swap-projection kind {kind!r}")
    modules = dict(model.named_modules())
    new: dict[str, nn.Module] = {}
    for name, spec in layers.items():
        old = modules.get(name)
        if old is None:
            raise InputError(f"checkpoint recipe names module {name!r}, which the architecture does not have")
        ref = old.weight if isinstance(getattr(old, "weight", None), torch.Tensor) else None
        if kind == "linear":
            module: nn.Module = StandardizedLinear(int(spec["in"]), int(spec["out"]), bias=bool(spec.get("bias", True)))
        else:
            bank = _shared_bank(model, spec, params, generator) if spec.get("bank") else None
            tied = modules[spec["tied_to"]] if spec.get("tied_to") else None
            module = TverskyProjection(
                int(spec["in"]), int(spec["out"]), int(spec["features"]), intersection=params["intersection"],
                difference=params["difference"], similarity=params["similarity"], reduction=params["reduction"],
                alpha=params.get("alpha", 0.5), beta=params.get("beta", 0.5), theta=params.get("theta", 1.0),
                init=params.get("init", "uniform"), bank=bank, tied=tied, generator=generator)
        if ref is not None:
            module.to(device=ref.device)
        _set_module(model, name, module)
        new[name] = module
    return new


def _shared_bank(model: nn.Module, spec: dict[str, Any], params: dict[str, Any],
                 generator: torch.Generator | None) -> nn.Parameter:
    from dnnkit.nn.tversky import init_tensor

    # A root parameter, not a child module: Sequential roots call every child in order.
    key = f"{BANK_PREFIX}{spec['bank']}"
    if key not in model._parameters:
        bank = nn.Parameter(torch.empty(int(spec["features"]), int(spec["in"])))
        init_tensor(bank, params.get("init", "uniform"), generator)
        model.register_parameter(key, bank)
    return model._parameters[key]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def parameter_count(model: nn.Module) -> int:
    """Unique parameters (shared/tied tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
