"""The recipe registry: how a structurally changed model is rebuilt before its weights load.

Each surgery registers a `replay(model, step) -> model` function for its op name. Replay makes
the structural change only (swap modules, factor layers), never computes weights: the weights
come from the checkpoint afterwards through `load_state_dict(strict=True)`. `models` learns of
surgeries only through this registry; surgery packages register themselves when imported, and
`dnnkit.surgery` is imported on demand for an op not yet known.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dnnkit.errors import DnnkitError, InputError

if TYPE_CHECKING:
    from torch import nn

ReplayFn = Callable[["nn.Module", dict[str, Any]], "nn.Module"]
_REPLAYS: dict[str, ReplayFn] = {}
PLUGIN_PACKAGES = ("dnnkit.surgery",)


def register_replay(op: str) -> Callable[[ReplayFn], ReplayFn]:
    """Decorator: register the structural replay of recipe op `op`."""

    def wrap(fn: ReplayFn) -> ReplayFn:
        _REPLAYS[op] = fn
        return fn

    return wrap


def _lookup(op: str) -> ReplayFn:
    if op not in _REPLAYS:
        for package in PLUGIN_PACKAGES:
            importlib.import_module(package)
    if op not in _REPLAYS:
        raise InputError(f"checkpoint recipe uses unknown op {op!r}",
                         hint="it was written by a newer dnnkit, or the file was edited")
    return _REPLAYS[op]


def replay(model: nn.Module, recipe: list[dict[str, Any]]) -> nn.Module:
    """Apply each recipe step's structural change to a freshly built base model, in order."""
    for i, step in enumerate(recipe):
        if not isinstance(step, dict) or not isinstance(step.get("op"), str):
            raise InputError(f"checkpoint recipe step {i} is malformed (no 'op' name)")
        fn = _lookup(step["op"])
        try:
            model = fn(model, step)
        except DnnkitError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            # the step came from a file: a parameter of the wrong type or a name the network lacks is bad input
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise InputError(f"checkpoint recipe step {i} ({step['op']!r}) cannot be replayed "
                             f"({type(exc).__name__}: {first})") from exc
    return model


def known_ops() -> list[str]:
    """The op names registered so far."""
    return sorted(_REPLAYS)
