"""Built-in reference models that work offline (`zoo:NAME`).

Importing this package registers the `zoo` scheme with the model registry (`dnnkit.models.schemes`),
so `models` never imports the zoo: the zoo builds on the registry, not the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.home import dnnkit_home
from dnnkit.models.schemes import Scheme, register_scheme
from dnnkit.zoo.catalog import ZOO, ZooEntry, zoo_entry, zoo_status

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ZOO", "ZooEntry", "dnnkit_home", "zoo_entry", "zoo_status"]


def _resolve(name: str, progress: Any = None) -> Path:
    from dnnkit.zoo.build import ensure_zoo

    zoo_entry(name)
    return ensure_zoo(name, progress)


def _arch(name: str) -> dict[str, Any]:
    from dnnkit.errors import InputError

    entry = zoo_entry(name)
    if entry.source != "trained":
        raise InputError(f"--arch zoo:{name}: shipped zoo models are Hugging Face folders; pass the folder")
    return {"family": "zoo", "name": entry.name, **entry.info()}


def _build(spec: dict[str, Any]) -> nn.Module:
    from dnnkit.zoo.build import build_zoo_network

    return build_zoo_network(spec["name"])


register_scheme("zoo", Scheme(resolve=_resolve, arch=_arch, build=_build))
