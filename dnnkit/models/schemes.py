"""Named model sources that live above `models` (the zoo): they register how to resolve a reference
(`zoo:NAME` -> file or folder), how to read `--arch zoo:NAME`, and how to build a recorded spec.

`models` never imports such a package; it imports the packages named in PLUGIN_PACKAGES on first
use of an unknown scheme (the same rule as the recipe registry), and they register themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from dnnkit.progress import ProgressReporter

PLUGIN_PACKAGES = ("dnnkit.zoo",)


@dataclass(frozen=True)
class Scheme:
    """How one source of models plugs into the registry."""

    resolve: Callable[[str, ProgressReporter | None], Path]  # NAME -> the file or folder behind it
    arch: Callable[[str], dict[str, Any]]  # `--arch scheme:NAME` -> an architecture spec
    build: Callable[[dict[str, Any]], nn.Module]  # a spec of this family -> a fresh network


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(name: str, scheme: Scheme) -> None:
    """Called by a plugin package when it is imported."""
    _SCHEMES[name] = scheme


def scheme(name: str) -> Scheme:
    """The registered scheme `name` (importing the plugin packages on first use)."""
    if name not in _SCHEMES:
        for package in PLUGIN_PACKAGES:
            importlib.import_module(package)
    if name not in _SCHEMES:  # pragma: no cover - the zoo always registers
        raise KeyError(name)
    return _SCHEMES[name]
