"""Recipe replay of op "lowrank": swap each recorded layer for a factored module of the recorded rank.

Structural only (no weights): `load_state_dict(strict=True)` fills the factors afterwards. Light
at import (torch is imported inside the function) because `dnnkit.surgery` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnnkit.errors import InputError
from dnnkit.models.recipe import register_replay

if TYPE_CHECKING:
    from torch import nn


@register_replay("lowrank")
def replay_lowrank(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Replace every layer in `step["layers"]` by a LowRankLinear/LowRankConv2d of its rank."""
    from torch import nn

    from dnnkit.surgery.lowrank.modules import LOWRANK_TYPES, dense_shape, make_lowrank, set_module

    layers = step.get("layers") or {}
    if not isinstance(layers, dict):
        raise InputError("checkpoint recipe step 'lowrank' has malformed layers")
    for name, spec in layers.items():
        try:
            rank = int(spec["rank"])
            module = model.get_submodule(name)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"checkpoint recipe step 'lowrank': layer {name!r} cannot be rebuilt ({exc})") from exc
        factored = isinstance(module, LOWRANK_TYPES)  # a --truncate step re-cuts a factored layer
        if not (factored or isinstance(module, (nn.Linear, nn.Conv2d))) or rank < 1:
            raise InputError(f"checkpoint recipe step 'lowrank': {name!r} is not a Linear/Conv2d or has rank < 1")
        shape = spec.get("shape")
        have = dense_shape(module) if factored else list(module.weight.shape)
        if shape is not None and have != list(shape):
            raise InputError(f"checkpoint recipe step 'lowrank': {name!r} has shape {have}, the recipe says {shape}")
        set_module(model, name, make_lowrank(module, rank))
    return model
