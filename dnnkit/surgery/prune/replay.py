"""Recipe replay for op "prune": pruning zeroes weights and changes no structure."""

from __future__ import annotations

from typing import Any

from dnnkit.models.recipe import register_replay


@register_replay("prune")
def replay_prune(model: Any, step: dict[str, Any]) -> Any:
    """Nothing to rebuild: the zeros come back with the weights."""
    return model
