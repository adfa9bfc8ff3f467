"""Architecture specs: how to build a base network, and what kind of model it is.

A spec is a JSON-able dict stored in every dnnkit checkpoint:
`{"family": "zoo", "name": "digits-cnn", ...}`, `{"family": "timm", "name": "resnet18", "kwargs": {...}}`
or `{"family": "hf", "class": "BertModel", "config": {...}}`. `--arch` accepts `zoo:NAME`,
`timm:NAME[?key=value&...]`, or a Hugging Face folder / config.json.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from dnnkit.errors import InputError

if TYPE_CHECKING:
    from torch import nn

TASKS = ("classifier", "causal-lm", "encoder", "unknown")


@dataclass
class ModelInfo:
    """What the model does and what it eats: used by eval, calibration and metrics."""

    task: str
    family: str
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    default_data: str | None = None


def _parse_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def parse_arch_option(value: str) -> dict[str, Any]:
    """Turn an `--arch` value into an architecture spec."""
    if value.startswith("py:"):
        from dnnkit.models.user_arch import parse_py_arch

        return parse_py_arch(value, _parse_value)
    if value.startswith("zoo:"):
        from dnnkit.models.schemes import scheme

        return scheme("zoo").arch(value[4:])
    if value.startswith("timm:"):
        name, _, query = value[5:].partition("?")
        return {"family": "timm", "name": name, "kwargs": {k: _parse_value(v) for k, v in parse_qsl(query)}}
    path = Path(value)
    if path.is_dir():
        path = path / "config.json"
    if path.name.endswith(".json") and path.is_file():
        return folder_arch_from_config(json.loads(path.read_text()))
    raise InputError(f"unknown --arch {value!r}",
                     hint="use zoo:NAME, timm:NAME[?num_classes=10], a HF folder, or py:FILE.py:FACTORY (your own)")


def folder_arch_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Architecture spec of a folder's config.json: a timm folder (`architecture`, `model_args`) or transformers."""
    if "model_type" not in config and isinstance(config.get("architecture"), str):
        kwargs = dict(config.get("model_args") or {})
        if "num_classes" in config:
            kwargs.setdefault("num_classes", config["num_classes"])
        return {"family": "timm", "name": config["architecture"], "kwargs": kwargs}
    return hf_arch_from_config(config)


def hf_arch_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Architecture spec of a Hugging Face config dict."""
    archs = config.get("architectures") or []
    return {"family": "hf", "class": archs[0] if archs else "AutoModel", "config": config}


# Standard transformers attribute names and the names many configs store them under instead (GPT-2,
# CTRL `n_*`; T5, XLNet, MPT `d_model` / `num_layers`; DistilBERT `dim` / `n_layers`): the common
# entries of `PretrainedConfig.attribute_map`, so that most config.json files are read without
# importing transformers (inspect stays header-only and fast); the rest fall back to the map itself.
HF_CONFIG_ALIASES: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("n_layer", "n_layers", "num_layers"),
    "hidden_size": ("n_embd", "d_model", "dim"),
    "num_attention_heads": ("n_head", "n_heads", "num_heads"),
    "max_position_embeddings": ("n_positions", "max_seq_len"),
}
_NESTED_CONFIGS = ("text_config", "llm_config", "language_config")


@functools.lru_cache(maxsize=64)
def _transformers_attribute_map(model_type: str) -> dict[str, str]:
    """`attribute_map` of the transformers config class of `model_type` ({} when unknown or unavailable)."""
    try:
        from transformers import CONFIG_MAPPING

        return dict(getattr(CONFIG_MAPPING[model_type], "attribute_map", {}) or {})
    except Exception:  # noqa: BLE001 - unknown model_type, old transformers, import failure: no map
        return {}


def hf_config_value(config: dict[str, Any], key: str) -> Any:
    """A standard attribute (`num_hidden_layers`, `hidden_size`, ...) of a HF config dict, under any alias.

    Order: the key itself; the known aliases; the nested text config of a multimodal model; last,
    the `attribute_map` of the transformers config class (imported only when the cheap rules miss).
    """
    for nested in (config, *(config.get(n) for n in _NESTED_CONFIGS)):
        if not isinstance(nested, dict):
            continue
        for name in (key, *HF_CONFIG_ALIASES.get(key, ())):
            if nested.get(name) is not None:
                return nested[name]
    model_type = config.get("model_type")
    mapped = _transformers_attribute_map(model_type).get(key) if isinstance(model_type, str) else None
    return config.get(mapped) if mapped else None


def build_arch(arch: dict[str, Any], *, allow_code: bool = False) -> nn.Module:
    """Build a freshly initialised base network from an architecture spec (no weights).

    `allow_code` is True only for a spec the user gave (`--arch py:...`, or the Python API's `arch=`):
    a `py` spec read from a checkpoint is refused, never imported.
    """
    family = arch.get("family")
    if family == "py":
        from dnnkit.models.user_arch import build_py_arch, needs_user_flag

        if not allow_code:
            raise needs_user_flag(arch)
        return build_py_arch(arch)
    if family == "zoo":
        from dnnkit.models.schemes import scheme

        return scheme("zoo").build(arch)
    if family == "timm":
        import timm

        try:
            return timm.create_model(arch["name"], pretrained=False, **arch.get("kwargs", {}))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InputError(f"cannot build timm model {arch['name']!r}: {exc}") from exc
    if family == "hf":
        return _build_hf(arch)
    raise InputError(f"unknown architecture family {family!r} in checkpoint")


def hf_model_class(name: str) -> type:
    """A transformers model class by name; only PreTrainedModel subclasses are accepted."""
    import transformers

    if name == "AutoModel":
        return transformers.AutoModel
    cls = getattr(transformers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise InputError(f"{name!r} is not a transformers model class")
    return cls


def _build_hf(arch: dict[str, Any]) -> nn.Module:
    import transformers

    config_dict = dict(arch["config"])
    model_type = config_dict.pop("model_type", None)
    if model_type is None:
        raise InputError("Hugging Face config has no model_type")
    from dnnkit.models.hf_quiet import quiet_transformers

    with quiet_transformers():
        config = transformers.AutoConfig.for_model(model_type, **config_dict)
        cls = hf_model_class(arch.get("class", "AutoModel"))
        if cls is transformers.AutoModel:
            return transformers.AutoModel.from_config(config)
        return cls(config)


def info_from_arch(arch: dict[str, Any] | None, model: nn.Module | None = None) -> ModelInfo:
    """The task and input facts of a model given its spec (and the built module when available)."""
    if arch is None:
        return ModelInfo(task="unknown", family="none")
    family = arch.get("family", "none")
    if family == "zoo":
        shape = arch.get("input_shape")
        return ModelInfo("classifier" if arch.get("task") is None else arch["task"], family,
                         tuple(shape) if shape else None, arch.get("num_classes"), arch.get("data"))
    if family == "timm":
        size = None
        num_classes = None
        if model is not None:
            cfg = getattr(model, "pretrained_cfg", None) or {}
            size = cfg.get("input_size")
            num_classes = getattr(model, "num_classes", None)
            in_chans = arch.get("kwargs", {}).get("in_chans")
            if size and in_chans:
                size = (in_chans, *size[1:])
            img = arch.get("kwargs", {}).get("img_size")
            if size and img:
                size = (size[0], img, img) if isinstance(img, int) else (size[0], *img)
        return ModelInfo("classifier", family, tuple(size) if size else None, num_classes)
    if family == "py":
        info = arch.get("info") or {}
        shape = info.get("input_shape")
        return ModelInfo(str(info.get("task", "classifier")), family, tuple(shape) if shape else None,
                         info.get("num_classes"), info.get("data"))
    if family == "hf":
        cls = arch.get("class", "")
        if cls.endswith("ForCausalLM") or cls.endswith("LMHeadModel"):
            task = "causal-lm"
        elif cls.endswith("ForSequenceClassification") or cls.endswith("ForImageClassification"):
            task = "classifier"
        elif cls.endswith("Model"):
            task = "encoder"
        else:
            task = "unknown"
        nl = arch.get("config", {}).get("num_labels") if task == "classifier" else None
        return ModelInfo(task, family, None, nl, "wiki" if task in ("causal-lm", "encoder") else None)
    return ModelInfo("unknown", family)
