"""dnnkit: analysis and surgery of trained neural networks.

The Python API (`dnnkit.prune(model, ratio=0.7, ...)`, `dnnkit.lowrank`, `dnnkit.bcosify`,
`dnnkit.swap_projection`, `dnnkit.hash_codes`, `dnnkit.load`, `dnnkit.metrics`, ...) lives in
`dnnkit.api` and is imported on first use: the package root stays light (no torch at import time),
so `dnnkit --help` is fast. See docs/python-api.md.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

API = ("load", "evaluate", "prune", "lowrank", "bcosify", "swap_projection", "hash_codes", "linear_interpret",
       "explain", "invert", "train_prior", "probe_hallucination")

__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        from dnnkit import api

        if hasattr(api, name):
            return getattr(api, name)
    raise AttributeError(f"module 'dnnkit' has no attribute {name!r}")
