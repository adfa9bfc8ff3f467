"""A folder's `config.json` (Hugging Face or timm), read as untrusted input.

`read_hf_config` gives a dict whose structural fields have sane types, or an InputError with one
line. Whether the sizes it names fit the folder's weights is checked on the meta device
(`models.guard`) before transformers or timm allocates anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnkit.errors import CorruptCheckpointError

MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_SIZE = 2**31  # no structural size of a real model (vocab, width, layers, positions) reaches this

# Sizes that decide how much a model allocates: integers when present (transformers and timm names).
SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "intermediate_size", "max_position_embeddings", "head_dim", "n_embd", "n_layer", "n_head", "n_inner",
             "n_positions", "n_ctx", "d_model", "d_ff", "num_layers", "num_heads", "dim", "hidden_dim", "n_layers",
             "n_heads", "num_labels", "type_vocab_size", "num_classes", "embed_dim", "depth", "num_experts",
             "image_size", "patch_size", "num_channels")
_NESTED = ("text_config", "vision_config", "llm_config", "language_config", "model_args")


def read_hf_config(path: Path) -> dict[str, Any]:
    """The checked contents of `path` (a config.json)."""
    from dnnkit.models.safetensors_io import parse_json

    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CorruptCheckpointError(f"{where} is {size} bytes, too large for a model config")
        raw = path.read_bytes()
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read {where}: {exc.strerror}") from exc
    config = parse_json(raw, where, "the config")
    check_hf_config(config, where)
    return config


def check_hf_config(config: Any, where: str) -> None:
    """Raise CorruptCheckpointError unless `config` is an object with well-typed structural fields."""
    if not isinstance(config, dict):
        raise CorruptCheckpointError(f"{where}: the config is not a JSON object")
    _check_sizes(config, where)
    for key in _NESTED:
        nested = config.get(key)
        if nested is not None:
            if not isinstance(nested, dict):
                raise CorruptCheckpointError(f"{where}: {key} is not an object")
            _check_sizes(nested, f"{where} ({key})")
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise CorruptCheckpointError(f"{where}: model_type is not a string")
    archs = config.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise CorruptCheckpointError(f"{where}: architectures is not a list of class names")
    arch = config.get("architecture")
    if arch is not None and not isinstance(arch, str):
        raise CorruptCheckpointError(f"{where}: architecture is not a string")


def _check_sizes(config: dict[str, Any], where: str) -> None:
    for key in SIZE_KEYS:
        value = config.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) and key in ("image_size", "patch_size") else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_SIZE:
                raise CorruptCheckpointError(f"{where}: {key} must be a size (an integer from 0 to {MAX_SIZE - 1}), "
                                             f"got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
