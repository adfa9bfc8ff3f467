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
    """Replace every layer in `step["layers"]` by a LowRankLinear/LowRankConv2d of its rank.

    A transformers Conv1D (weight stored (in, out)) becomes the LowRankLinear of its transpose; its
    recorded kind must be "conv1d": factors cut from the stored (in, out) tensor as if it were a
    Linear's (out, in) weight (a bare file factored without an architecture) would compute another map.
    """
    from dnnkit.nn.lowrank import LOWRANK_TYPES, dense_shape, layer_kind, make_lowrank, set_module

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
        kind = None if factored else layer_kind(module)
        if not (factored or kind is not None) or rank < 1:
            raise InputError(f"checkpoint recipe step 'lowrank': {name!r} is not a Linear/Conv2d/Conv1D or has "
                             "rank < 1")
        recorded = spec.get("kind")
        if kind is not None and recorded is not None and (kind == "conv1d") != (recorded == "conv1d"):
            raise InputError(f"checkpoint recipe step 'lowrank': {name!r} is a {_KIND_NAMES[kind]} but the "
                             f"checkpoint factored it as a {_KIND_NAMES.get(recorded, recorded)}: the factors do "
                             "not compute this layer",
                             hint="factor the model itself (pass --arch to dnnkit lowrank for a bare file)")
        shape = spec.get("shape")
        have = dense_shape(module) if factored else list(module.weight.shape)
        if shape is not None and have != list(shape):
            raise InputError(f"checkpoint recipe step 'lowrank': {name!r} has shape {have}, the recipe says {shape}")
        set_module(model, name, make_lowrank(module, rank))
    return model


_KIND_NAMES = {"linear": "Linear (weight out x in)", "conv2d": "Conv2d",
               "conv1d": "transformers Conv1D (weight in x out)"}
