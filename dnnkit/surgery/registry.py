"""One registry of surgeries: name -> the Surgery object (imported on first use, so listing is cheap)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dnnkit.errors import InputError

if TYPE_CHECKING:
    from dnnkit.surgery.contract import Surgery

SURGERIES: dict[str, str] = {
    "prune": "dnnkit.surgery.prune.surgery:PRUNE",
    "lowrank": "dnnkit.surgery.lowrank.surgery:LOWRANK",
    "bcosify": "dnnkit.surgery.bcos.surgery:BCOSIFY",
    "swap-projection": "dnnkit.surgery.tversky.surgery:SWAP_PROJECTION",
}


def get_surgery(name: str) -> Surgery:
    """The surgery registered as `name`."""
    if name not in SURGERIES:
        raise InputError(f"unknown surgery {name!r}", hint=f"one of {', '.join(SURGERIES)}")
    module, _, attr = SURGERIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
