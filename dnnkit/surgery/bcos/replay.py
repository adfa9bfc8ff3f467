"""Recipe replay of op "bcosify": rebuild the converted modules (no weights) so a checkpoint loads strictly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnnkit.models.recipe import register_replay

if TYPE_CHECKING:
    from torch import nn


@register_replay("bcosify")
def replay_bcosify(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Apply the structural B-cos conversion recorded in `step` to a freshly built base model."""
    from dnnkit.errors import InputError
    from dnnkit.surgery.bcos.convert import BcosOptions, ConversionPlan, apply_conversion, check_supported

    p = step.get("params") or {}
    try:
        plan = ConversionPlan(stem=p["stem"], in_channels=int(p["in_channels"]), num_classes=int(p["num_classes"]),
                              classifier=p["classifier"], gap_pool=p.get("gap_pool"), units=check_supported(model))
        opts = BcosOptions(b=float(p["b"]), encoding=p["encoding"], mean=list(p["mean"]), std=list(p["std"]),
                           keep_maxpool=bool(p["keep_maxpool"]), gap_reorder=bool(p["gap_reorder"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"checkpoint recipe step 'bcosify' is malformed ({exc})") from exc
    converted, changes = apply_conversion(model, plan, opts)
    converted.logit_bias = float(p.get("logit_bias", converted.logit_bias))
    converted.logit_scale = float(p.get("logit_scale", 1.0))
    recorded = set((step.get("layers") or {}).keys())
    rebuilt = {c.name for c in changes}
    if recorded and recorded != rebuilt:
        missing = sorted(recorded ^ rebuilt)
        raise InputError(f"checkpoint recipe step 'bcosify' does not match the architecture (e.g. {missing[0]})")
    return converted
