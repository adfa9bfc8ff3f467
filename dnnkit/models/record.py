"""The `dnnkit` record a checkpoint carries (DESIGN.md section 3), checked before anything reads it.

A record comes from a file and so is untrusted: `parse_record` turns the JSON text into a dict
whose fields the loader relies on have the right types (`arch` a spec object, `recipe` a list of
`{"op": str, "params": {...}, "layers": {...}}` steps, `aliases` names to names). Anything else is
a CorruptCheckpointError with one line. Whether the recipe *fits* the file's tensors is checked
later, on the meta device (`models.guard`), before any real module is built.
"""

from __future__ import annotations

from typing import Any

from dnnkit.errors import CorruptCheckpointError

_OPTIONAL_DICTS = ("source", "metrics", "aliases")


def parse_record(raw: str | bytes, where: str) -> dict[str, Any]:
    """The validated record of the JSON text `raw` (the `dnnkit` metadata value or a `dnnkit.json`)."""
    from dnnkit.models.safetensors_io import parse_json

    record = parse_json(raw, where, "the dnnkit metadata")
    return validate_record(record, where)


def validate_record(record: Any, where: str) -> dict[str, Any]:
    """`record` itself when its structure is sound; a missing or null recipe becomes []."""
    if not isinstance(record, dict):
        raise CorruptCheckpointError(f"{where}: the dnnkit metadata is not a JSON object")
    arch = record.get("arch")
    if arch is not None:
        _check_arch(arch, where)
    recipe = record.get("recipe")
    if recipe is None:
        record["recipe"] = []
    elif not isinstance(recipe, list):
        raise CorruptCheckpointError(f"{where}: the dnnkit recipe is not a list of steps")
    else:
        for i, step in enumerate(recipe):
            _check_step(step, i, where)
    for key in _OPTIONAL_DICTS:
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise CorruptCheckpointError(f"{where}: the dnnkit record's {key!r} is not an object")
    aliases = record.get("aliases") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise CorruptCheckpointError(f"{where}: the dnnkit record's aliases must map tensor names to names")
    return record


def _check_arch(arch: Any, where: str) -> None:
    if not isinstance(arch, dict) or not isinstance(arch.get("family"), str):
        raise CorruptCheckpointError(f"{where}: the dnnkit record's arch is not a spec with a family")
    family = arch["family"]
    if family in ("zoo", "timm") and not isinstance(arch.get("name"), str):
        raise CorruptCheckpointError(f"{where}: the {family} arch in the dnnkit record has no name")
    if family == "timm" and not isinstance(arch.get("kwargs", {}), dict):
        raise CorruptCheckpointError(f"{where}: the timm arch in the dnnkit record has malformed kwargs")
    if family == "hf":
        if not isinstance(arch.get("config"), dict) or not isinstance(arch.get("class", "AutoModel"), str):
            raise CorruptCheckpointError(f"{where}: the hf arch in the dnnkit record needs a config object "
                                         "and a class name")
        from dnnkit.models.hf_config import check_hf_config

        check_hf_config(arch["config"], f"{where} (dnnkit record)")
    for key in ("tokenizer_dir", "input_shape", "num_classes", "task", "data"):
        if arch.get(key) is not None and not isinstance(arch[key], _ARCH_TYPES[key]):
            raise CorruptCheckpointError(f"{where}: the dnnkit record's arch.{key} has the wrong type")
    shape = arch.get("input_shape")
    if shape is not None and not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d < 2**31
                                     for d in shape):
        raise CorruptCheckpointError(f"{where}: the dnnkit record's arch.input_shape is not a list of sizes")


_ARCH_TYPES: dict[str, type | tuple[type, ...]] = {"tokenizer_dir": str, "input_shape": list, "num_classes": int,
                                                    "task": str, "data": str}


def _check_step(step: Any, index: int, where: str) -> None:
    if not isinstance(step, dict) or not isinstance(step.get("op"), str):
        raise CorruptCheckpointError(f"{where}: dnnkit recipe step {index} is malformed (no 'op' name)")
    for key in ("params", "layers"):
        if step.get(key) is not None and not isinstance(step[key], dict):
            raise CorruptCheckpointError(f"{where}: dnnkit recipe step {index} ({step['op']!r}) has malformed "
                                         f"{key}")
