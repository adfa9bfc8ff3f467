"""The prunable set: which tensors a pruning run touches, in forward (or natural-name) order.

Networks: the weights of Linear, Conv and transformers Conv1D modules (heads tied to an
embedding excluded). Bare files: floating `*.weight` tensors of rank >= 2 whose names do not
look like embeddings. `--include` adds any floating tensor by glob, `--exclude` removes.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dnnkit.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from dnnkit.models.weights import WeightSource

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64", "float32", "float16", "bfloat16", "float64")
EMBED_HINTS = ("embed", "wte", "wpe", "position")


@dataclass
class PrunableLayer:
    """One prunable tensor: name, shape, size and how many of its entries are already zero."""

    name: str
    shape: tuple[int, ...]
    zeros: int = 0

    @property
    def n(self) -> int:
        return math.prod(self.shape)


def network_weight_names(model: nn.Module) -> list[str]:
    """Weights of Linear/Conv/Conv1D modules in registration (forward) order, tied heads excluded."""
    from torch import nn

    embed_ptrs = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    kinds: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    try:
        from transformers.pytorch_utils import Conv1D

        kinds = (*kinds, Conv1D)
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    names: list[str] = []
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, kinds) or weight is None:
            continue
        ptr = weight.data_ptr()
        if ptr in embed_ptrs or ptr in seen:
            continue
        seen.add(ptr)
        names.append(f"{mod_name}.weight" if mod_name else "weight")
    return names


def file_weight_names(source: WeightSource) -> list[str]:
    """Default prunable tensors of a bare weights file, in natural name order."""
    from dnnkit.models.weights import natural_key

    out = []
    for name in sorted(source.names(), key=natural_key):
        if not name.endswith(".weight") or source.dtype(name) not in FLOAT_DTYPES or len(source.shape(name)) < 2:
            continue
        if any(h in name.lower() for h in EMBED_HINTS):
            continue
        out.append(name)
    return out


def _show(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def select_layers(default: list[str], all_names: list[str], float_names: set[str], include: list[str],
                  exclude: list[str]) -> list[str]:
    """Apply --include/--exclude globs to the default set; each pattern must match some tensor."""
    chosen = list(default)
    for pattern in include:
        hits = [n for n in all_names if fnmatch.fnmatchcase(n, pattern) and n in float_names]
        if not hits:
            raise InputError(f"--include {pattern!r} matches no floating tensor",
                             hint=f"quote the pattern; tensors are named like {_show(all_names)}")
        chosen += [n for n in hits if n not in chosen]
    for pattern in exclude:
        hits = [n for n in chosen if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InputError(f"--exclude {pattern!r} matches no prunable tensor",
                             hint=f"quote the pattern; prunable tensors are named like {_show(chosen or all_names)}")
        chosen = [n for n in chosen if n not in hits]
    if include:  # keep forward / natural order
        rank = {n: i for i, n in enumerate(all_names)}
        chosen.sort(key=lambda n: rank.get(n, len(rank)))
    if not chosen:
        raise InputError("no prunable tensor: the model has no Linear or Conv weights (after --exclude)",
                         hint="name tensors with --include 'GLOB'")
    return chosen


def scan_layers(source: WeightSource, names: list[str]) -> list[PrunableLayer]:
    """Read each tensor once: shape, existing zeros; NaN/Inf is bad input.

    A finite sum proves every entry finite (NaN and Inf propagate through it), one cheap reduction;
    only a non-finite sum (a NaN or Inf, or finite values that overflow it) counts them exactly.
    """
    import torch

    layers = []
    for name in names:
        w = source.get(name)
        if w.numel() and not bool(torch.isfinite(w.sum())):
            bad = int((~torch.isfinite(w)).sum())
            if bad:
                raise InputError(f"tensor {name} holds {bad} NaN/Inf values", hint="prune a finite checkpoint")
        layers.append(PrunableLayer(name, tuple(w.shape), w.numel() - int(torch.count_nonzero(w))))
    return layers
