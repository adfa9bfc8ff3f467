"""Writing checkpoints (DESIGN.md section 3): safetensors with the dnnkit record, or HF folders.

Every write is atomic (temp file in the destination folder, fsync, `os.replace`). Tensors that
share storage (tied weights) are written once and recorded as aliases, restored on load.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit import __version__
from dnnkit.models.atomic import atomic_dir, atomic_file, check_output_path

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dnnkit.models.registry import LoadedModel

WEIGHT_FILE_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "*.pth",
                        "*.gguf", "dnnkit.json", "dnnkit-source.json")


def complete_record(record: dict[str, Any], command: list[str] | None = None) -> dict[str, Any]:
    """Fill the fields every dnnkit record carries (version, created, command: `command`, else sys.argv)."""
    out = {"version": __version__, "arch": None, "recipe": [], "source": {}, "command": list(sys.argv),
           "metrics": {}}
    out.update(record)
    if command is not None:
        out["command"] = list(command)
    out["version"] = __version__
    out.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return out


def dedupe_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share storage with an earlier one; return (tensors, alias -> kept name)."""
    seen: dict[tuple, str] = {}
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype) \
            if t.device.type != "meta" else None
        if key is not None and key in seen and t.numel() > 0:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        kept[name] = t
    return kept, aliases


def write_checkpoint(path: str | Path, state: dict[str, torch.Tensor], record: dict[str, Any], *, force: bool,
                     sparse: set[str] | None = None, command: list[str] | None = None) -> dict[str, Any]:
    """Write a dnnkit safetensors checkpoint atomically; returns the completed record.

    Tensors named in `sparse` are stored in the bitmask format when that makes them smaller.
    """
    from dnnkit.models.safetensors_io import save_tensors
    from dnnkit.models.sparse_format import SPARSE_KEY, encode_sparse, sparse_metadata, sparse_pays

    path = check_output_path(path, force)
    tensors, aliases = dedupe_shared({k: v.detach().cpu().contiguous() for k, v in state.items()})
    record = complete_record({**record, "aliases": aliases} if aliases else record, command)
    metadata = {"format": "pt", "dnnkit": json.dumps(record, default=_json_default)}
    encoded: dict[str, torch.Tensor] = {}
    if sparse:
        out: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            nnz = int((t != 0).sum())
            if name in sparse and sparse_pays(t.numel(), nnz, t.element_size()):
                out.update(encode_sparse(name, t))
                encoded[name] = t
            else:
                out[name] = t
        tensors = out
        if encoded:
            metadata[SPARSE_KEY] = sparse_metadata(encoded)
    with atomic_file(path) as tmp:
        save_tensors(tmp, tensors, metadata)
    return record


def write_hf_folder(out: str | Path, model: nn.Module, record: dict[str, Any], source_dir: Path | None, *,
                    force: bool, command: list[str] | None = None, max_shard_size: int | None = None,
                    base_model: str | None = None) -> dict[str, Any]:
    """Write a Hugging Face folder that plain transformers loads, with the dnnkit record beside it and a
    model card. A sharded input is written with the same max shard size unless `max_shard_size` is given."""
    from dnnkit.models.card import write_card
    from dnnkit.models.shards import input_shard_size, write_weights

    out = check_output_path(out, force)
    tensors, aliases = dedupe_shared({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    record = complete_record({**record, "aliases": aliases} if aliases else record, command)
    text = json.dumps(record, default=_json_default)
    shard_bytes = max_shard_size if max_shard_size is not None else input_shard_size(source_dir)
    with atomic_dir(out) as tmp:
        if source_dir is not None:
            _copy_non_weight_files(source_dir, tmp)
        model.config.save_pretrained(tmp)
        write_weights(tmp, tensors, {"format": "pt", "dnnkit": text}, shard_bytes)
        (tmp / "dnnkit.json").write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
        write_card(tmp, record, base_model=base_model, library_name="transformers")
    return record


def write_timm_folder(out: str | Path, model: nn.Module, record: dict[str, Any], source_dir: Path | None, *,
                      force: bool, command: list[str] | None = None, base_model: str | None = None) -> dict[str, Any]:
    """Write a timm folder (`config.json` + `model.safetensors`, as timm's `save_for_hf` does) that
    `timm.create_model("local-dir:DIR", pretrained=True)` loads, with the dnnkit record beside it and a
    model card (timm reads one weights file: never sharded)."""
    from dnnkit.models.card import write_card
    from dnnkit.models.safetensors_io import save_tensors

    out = check_output_path(out, force)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors, aliases = dedupe_shared(state)
    for alias, kept in aliases.items():  # timm reads plain state dicts: every name gets its own tensor
        tensors[alias] = tensors[kept].clone()
    tensors = {k: tensors[k] for k in state}
    record = complete_record(record, command)
    text = json.dumps(record, default=_json_default)
    with atomic_dir(out) as tmp:
        if source_dir is not None:
            _copy_non_weight_files(source_dir, tmp)
        if not (tmp / "config.json").is_file():
            from timm.models._hub import save_config_for_hf

            save_config_for_hf(model, tmp / "config.json")
        save_tensors(tmp / "model.safetensors", tensors, {"format": "pt", "dnnkit": text})
        (tmp / "dnnkit.json").write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
        write_card(tmp, record, base_model=base_model, library_name="timm")
    return record


def folder_output_family(loaded: LoadedModel) -> str | None:
    """The library whose folder format an output of `loaded` can be written in ("hf", "timm"), if any."""
    return loaded.info.family if loaded.info.family in ("hf", "timm") else None


def _copy_non_weight_files(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        if any(item.match(p) for p in WEIGHT_FILE_PATTERNS) or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        else:
            shutil.copy2(item, dst / item.name)


def check_shard_option(max_shard_size: int | None, output: str | Path | None, family: str | None = "hf") -> None:
    """`--max-shard-size` applies to Hugging Face folder outputs only (checked before heavy work)."""
    from dnnkit.errors import InputError

    if max_shard_size is None or output is None:
        return
    if str(output).endswith(".safetensors"):
        raise InputError(f"--max-shard-size applies to Hugging Face folder outputs, not -o {str(output)!r}",
                         hint="drop --max-shard-size, or name an output folder")
    if family == "timm":
        raise InputError("--max-shard-size applies to Hugging Face folder outputs; a timm folder holds one "
                         "model.safetensors (timm reads no shards)", hint="drop --max-shard-size")
    if family not in (None, "hf"):
        raise InputError("--max-shard-size applies to Hugging Face folder outputs; this output is a dnnkit "
                         ".safetensors checkpoint", hint="drop --max-shard-size")


def save_model(loaded: LoadedModel, model: nn.Module, out: str | Path, step: dict[str, Any],
               metrics: dict[str, Any] | None = None, *, force: bool = False,
               sparse: set[str] | None = None, structural: bool = False,
               command: list[str] | None = None, max_shard_size: int | None = None) -> dict[str, Any]:
    """Save a transformed model: a `.safetensors` path gets a dnnkit checkpoint; a folder path gets a
    Hugging Face or timm folder with a model card (only for architectures that are unchanged). An HF folder
    keeps a sharded input's max shard size unless `max_shard_size` (bytes) is given."""
    from dnnkit.errors import InputError

    record = {"arch": loaded.arch, "recipe": [*loaded.recipe, step], "source": loaded.source_record(),
              "metrics": metrics or {}}
    out = Path(out)
    family = folder_output_family(loaded)
    check_shard_option(max_shard_size, out, family)
    if out.suffix == ".safetensors":
        return write_checkpoint(out, model.state_dict(), record, force=force, sparse=sparse, command=command)
    base = base_model_of(loaded)
    if family == "hf" and not structural and not sparse:
        return write_hf_folder(out, model, record, loaded.hf_dir, force=force, command=command,
                               max_shard_size=max_shard_size, base_model=base)
    if family == "timm" and not structural and not sparse:
        return write_timm_folder(out, model, record, loaded.hf_dir, force=force, command=command, base_model=base)
    raise InputError(f"output {str(out)!r} must end in .safetensors",
                     hint="a folder output is written only for unchanged Hugging Face or timm architectures")


def base_model_of(loaded: LoadedModel) -> str | None:
    """The card's `base_model`: the input's hub id when known (hf:ORG/NAME, a config's `_name_or_path`),
    else its name or path as given; for an in-memory module only a hub id (else None: no base_model)."""
    from dnnkit.models.card import base_model_name, is_hub_id

    config: dict[str, Any] | None = None
    if loaded.ref.kind == "module":
        name = getattr(getattr(loaded.model, "config", None), "_name_or_path", None)
        return name if is_hub_id(name) else None
    if loaded.ref.kind == "hf-dir" and (loaded.ref.path / "config.json").is_file():
        try:
            config = json.loads((loaded.ref.path / "config.json").read_text())
        except (OSError, ValueError):
            config = None
    return base_model_name(loaded.ref.raw, config if isinstance(config, dict) else None)


def _json_default(obj: object) -> object:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
