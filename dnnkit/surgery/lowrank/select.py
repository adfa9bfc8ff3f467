"""Which layers to factor: Linear, Conv2d (groups = 1) and transformers Conv1D by default, minus
embeddings and the head.

The output head is the last Linear registered in the model (a classifier's `fc`, an LM's
`lm_head`, BERT's pooler); `--factor-head` lets it in. Layers that match the patterns but cannot
be factored are reported in `skipped` with a reason: tied weights, grouped / depthwise /
transposed convs, `nn.MultiheadAttention` projections, matrices with min(m, n) < 2.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from torch import nn

from dnnkit.errors import InputError


@dataclass
class Candidate:
    """One layer to factor: W is m x n (a conv unrolled to c_out x c_in*kh*kw)."""

    name: str
    kind: str  # linear | conv2d | conv1d (transformers Conv1D: weight_shape is (in, out) = (n, m))
    m: int
    n: int
    weight_shape: tuple[int, ...]

    @property
    def full_rank(self) -> int:
        return min(self.m, self.n)

    @property
    def dense_params(self) -> int:
        return self.m * self.n


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_patterns(names: list[str], include: list[str], exclude: list[str]) -> None:
    """Every --include/--exclude pattern must match some layer name (exit 2 otherwise)."""
    for flag, patterns in (("--include", include), ("--exclude", exclude)):
        for p in patterns:
            if not any(fnmatch.fnmatchcase(n, p) for n in names):
                example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                raise InputError(f"{flag} {p!r} matches no layer", hint=f"layer names look like: {example}")


def _tied_modules(model: nn.Module) -> set[str]:
    """Names of modules whose weight is shared with another module (e.g. an LM head tied to the embedding)."""
    owners: dict[int, list[str]] = {}
    for mod_name, mod in model.named_modules(remove_duplicate=False):
        w = getattr(mod, "weight", None)
        if isinstance(w, nn.Parameter):
            owners.setdefault(id(w), []).append(mod_name)
    return {n for names in owners.values() if len(names) > 1 for n in names}


def head_name(model: nn.Module) -> str | None:
    """The output head: the last nn.Linear registered in the model."""
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = name
    return last


def select_layers(model: nn.Module, include: list[str] | None = None, exclude: list[str] | None = None,
                  factor_head: bool = False) -> tuple[list[Candidate], list[dict[str, str]]]:
    """(candidates, skipped) for a built model; raises InputError for patterns matching nothing."""
    from dnnkit.nn.lowrank import LOWRANK_TYPES, is_conv1d, layer_kind, out_features

    include, exclude = list(include or []), list(exclude or [])
    modules = dict(model.named_modules())
    layer_names = [n for n, m in modules.items() if n and (is_conv1d(m) or isinstance(
        m, (nn.Linear, nn.Conv2d, nn.Conv1d, nn.ConvTranspose2d, nn.Embedding, nn.MultiheadAttention)))]
    check_patterns(layer_names or [n for n in modules if n], include, exclude)
    tied = _tied_modules(model)
    head = head_name(model)

    factored = {f"{n}.{c}" for n, m in modules.items() if isinstance(m, LOWRANK_TYPES) for c, _ in m.named_children()}
    mha_children = {f"{n}.{c}" for n, m in modules.items() if isinstance(m, nn.MultiheadAttention)
                    for c, _ in m.named_children()}
    chosen: list[Candidate] = []
    skipped: list[dict[str, str]] = []
    for name, mod in modules.items():
        if not name:
            continue
        if include and not _matches(name, include):
            continue
        if exclude and _matches(name, exclude):
            continue
        explicit = bool(include)
        reason = None
        if isinstance(mod, nn.Embedding):
            if explicit:
                skipped.append({"name": name, "reason": "embedding"})
            continue
        if isinstance(mod, nn.MultiheadAttention):
            skipped.append({"name": name, "reason": "nn.MultiheadAttention in_proj_weight (fused q/k/v)"})
            continue
        if isinstance(mod, (nn.ConvTranspose2d, nn.Conv1d)):
            skipped.append({"name": name, "reason": f"{type(mod).__name__} is not supported"})
            continue
        kind = layer_kind(mod)
        if kind is None:
            continue
        w = mod.weight
        if name in factored:
            reason = "already factored"
        elif name in mha_children:
            reason = "projection inside nn.MultiheadAttention"
        elif name in tied:
            reason = "tied weight (shared with another module)"
        elif name == head and not factor_head:
            if explicit:
                skipped.append({"name": name, "reason": "output head (pass --factor-head)"})
            continue
        elif isinstance(mod, nn.Conv2d) and mod.groups != 1:
            reason = "grouped or depthwise conv"
        elif w.dim() < 2 or min(w.shape[0], w[0].numel()) < 2:
            reason = "min(m, n) < 2"
        if reason:
            skipped.append({"name": name, "reason": reason})
            continue
        m = out_features(mod)
        chosen.append(Candidate(name, kind, m, int(w.numel()) // m, tuple(w.shape)))
    return chosen, skipped
