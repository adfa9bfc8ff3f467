"""Recipe replay of `swap-projection`: rebuild the swapped layers (shared banks, tied prototypes) before loading."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnnkit.models.recipe import register_replay

if TYPE_CHECKING:
    from torch import nn


@register_replay("swap-projection")
def replay_swap_projection(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Install the recorded Tversky / standardised Linear layers; weights come from the checkpoint."""
    from dnnkit.surgery.tversky.plan import install

    install(model, step.get("params") or {}, step.get("layers") or {})
    return model


register_replay("swap_projection")(replay_swap_projection)  # the spelling of the spec's recipe example
