"""An `nn.Module` in memory as a LoadedModel (the Python API's `model=` argument).

The architecture is recognised where it can be rebuilt from a name (a timm model, a transformers
model) or given by the caller (`arch=`); otherwise it is unknown, and a checkpoint written from the
module holds its weights and recipe but needs `--arch` (e.g. `py:FILE.py:FACTORY`) to be rebuilt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnnkit.models.arch import ModelInfo, build_arch, hf_arch_from_config, info_from_arch, parse_arch_option
from dnnkit.models.reference import ModelRef

if TYPE_CHECKING:
    from torch import nn

    from dnnkit.models.registry import LoadedModel


def loaded_from_module(module: nn.Module, *, arch: str | dict[str, Any] | None = None,
                       task: str | None = None) -> LoadedModel:
    """Wrap `module` (used as is: the caller copies it first when the original must stay untouched)."""
    from dnnkit.models.registry import LoadedModel

    spec = parse_arch_option(arch) if isinstance(arch, str) else (dict(arch) if arch else None)
    if spec is None:
        spec = recognise_arch(module)
    info = info_from_arch(spec, module) if spec is not None else _guess_info(module)
    if task is not None:
        info.task = task
    ref = ModelRef("module", f"<{type(module).__name__}>", f"<in-memory {type(module).__name__}>")
    tokenizer_dir = None
    name_or_path = getattr(getattr(module, "config", None), "_name_or_path", "")
    if name_or_path:
        from pathlib import Path

        from dnnkit.models.registry import TOKENIZER_FILES

        folder = Path(name_or_path)
        if folder.is_dir() and any((folder / n).exists() for n in TOKENIZER_FILES):
            tokenizer_dir = folder
    return LoadedModel(ref, module.eval(), spec, info, None, [], tokenizer_dir=tokenizer_dir)


def recognise_arch(module: nn.Module) -> dict[str, Any] | None:
    """An architecture spec that rebuilds `module`'s structure (timm, transformers), checked by shapes."""
    spec = _hf_spec(module) or _timm_spec(module)
    if spec is None:
        return None
    try:
        rebuilt = build_arch(spec)
    except Exception:  # noqa: BLE001 - a spec that cannot be built is no spec
        return None
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    return spec if mine == theirs else None


def _hf_spec(module: nn.Module) -> dict[str, Any] | None:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(module, PreTrainedModel):
        return None
    config = module.config.to_dict()
    config["architectures"] = [type(module).__name__]
    return hf_arch_from_config(config)


def _timm_spec(module: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(module, "pretrained_cfg", None)
    name = (cfg or {}).get("architecture")
    if not name or not type(module).__module__.startswith("timm."):
        return None
    kwargs: dict[str, Any] = {}
    if getattr(module, "num_classes", None) is not None:
        kwargs["num_classes"] = int(module.num_classes)
    patch = getattr(module, "patch_embed", None)
    if patch is not None and getattr(patch, "img_size", None):
        kwargs["img_size"] = tuple(patch.img_size)
        if getattr(patch, "patch_size", None):
            kwargs["patch_size"] = tuple(patch.patch_size)
    return {"family": "timm", "name": name, "kwargs": kwargs}


def _guess_info(module: nn.Module) -> ModelInfo:
    """A module of unknown architecture: an image classifier unless told otherwise (`task=`)."""
    from torch import nn

    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return ModelInfo("classifier", "module", None, last[-1].out_features if last else None, None)
