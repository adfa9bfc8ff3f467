"""`inspect`: what a checkpoint holds, from its header by default, with per-tensor statistics on request."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.models.reference import ModelRef
from dnnkit.models.registry import hf_weight_files, resolve
from dnnkit.models.safetensors_io import read_header
from dnnkit.models.weights import GGUFWeights, SafetensorsWeights, StateDictWeights, WeightSource, numel
from dnnkit.progress import ProgressReporter, or_null

FORMAT_NAMES = {"safetensors": "safetensors", "hf-dir": "huggingface-folder", "gguf": "gguf",
                "legacy": "pytorch-legacy", "timm": "timm", "hf-hub": "huggingface-hub"}


def describe(reference: str, *, stats: bool = False, progress: ProgressReporter | None = None) -> dict[str, Any]:
    """A JSON-able report of a checkpoint: format, architecture, sizes, dtypes, tensors, provenance."""
    progress = or_null(progress)
    ref = resolve(reference, progress)
    source, record, arch, files = _open(ref, progress)
    names = source.names()
    tensors = []
    dtype_params: Counter[str] = Counter()
    for name in names:
        shape = source.shape(name)
        entry: dict[str, Any] = {"name": name, "shape": list(shape), "dtype": source.dtype(name), "numel": numel(shape)}
        if isinstance(source, SafetensorsWeights):
            entry["bytes"] = source.stored_bytes(name)
            if name in source.sparse:
                entry["storage"] = "sparse-bitmask"
        dtype_params[entry["dtype"]] += entry["numel"]
        tensors.append(entry)
    report: dict[str, Any] = {
        "reference": reference,
        "format": FORMAT_NAMES.get(ref.kind, ref.kind),
        "files": [str(f) for f in files],
        "file_bytes": sum(f.stat().st_size for f in files if f.is_file()),
        "architecture": _arch_summary(arch),
        "num_tensors": len(names),
        "num_params": sum(t["numel"] for t in tensors),
        "dtypes": dict(dtype_params),
        "sparse_tensors": sum(1 for t in tensors if t.get("storage") == "sparse-bitmask"),
        "provenance": _provenance(record),
        "tensors": tensors,
        "warnings": [],
    }
    if isinstance(source, GGUFWeights):
        report["gguf"] = source.metadata()
    if stats:
        _add_stats(report, source, progress)
    return report


def _open(ref: ModelRef, progress: ProgressReporter) -> tuple[WeightSource, dict | None, dict | None, list[Path]]:
    if ref.kind == "safetensors":
        src = SafetensorsWeights([ref.path])
        record = src.headers[0].dnnkit_record()
        return src, record, (record or {}).get("arch"), [ref.path]
    if ref.kind == "hf-dir":
        import json

        files = hf_weight_files(ref.path)
        record = None
        if (ref.path / "dnnkit.json").is_file():
            record = json.loads((ref.path / "dnnkit.json").read_text())
        config = ref.path / "config.json"
        arch = None
        if config.is_file():
            from dnnkit.models.arch import folder_arch_from_config

            arch = folder_arch_from_config(json.loads(config.read_text()))
        if all(f.suffix == ".safetensors" for f in files):
            src = SafetensorsWeights(files)
            record = record or src.headers[0].dnnkit_record()
            return src, record, arch, files
        from dnnkit.models.registry import open_weights

        return open_weights(ref), record, arch, files
    if ref.kind == "gguf":
        src = GGUFWeights(ref.path)
        meta = src.metadata()
        arch = {"family": "gguf", "architecture": meta.get("general.architecture"), "name": meta.get("general.name")}
        return src, None, arch, [ref.path]
    if ref.kind == "legacy":
        from dnnkit.models.registry import open_weights

        return open_weights(ref), None, None, [ref.path]
    from dnnkit.models.registry import load_model

    loaded = load_model(ref, progress=progress)
    model = loaded.require_network("inspect")
    return StateDictWeights(model.state_dict()), loaded.record, loaded.arch, list(loaded.files)


def _arch_summary(arch: dict | None) -> dict | None:
    if arch is None:
        return None
    if arch.get("family") == "hf":
        from dnnkit.models.arch import hf_config_value

        cfg = arch.get("config", {})
        summary = {"family": "hf", "class": arch.get("class"), "model_type": cfg.get("model_type")}
        for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings"):
            summary[key] = hf_config_value(cfg, key)
        return summary
    return {k: v for k, v in arch.items() if k != "tokenizer_dir"}


def _provenance(record: dict | None) -> dict | None:
    if record is None:
        return None
    keys = ("version", "source", "recipe", "command", "metrics", "created")
    return {k: record.get(k) for k in keys if k in record}


def _add_stats(report: dict[str, Any], source: WeightSource, progress: ProgressReporter) -> None:
    from dnnkit.kernels.tensor_stats import tensor_stats

    task = progress.task("tensor statistics", len(report["tensors"]))
    bad = []
    for entry in report["tensors"]:
        t = source.get(entry["name"])
        st = asdict(tensor_stats(t))
        st["zero_fraction"] = st["zeros"] / st["numel"] if st["numel"] else 0.0
        entry["stats"] = st
        if st["nan"] or st["inf"]:
            bad.append(f"{entry['name']}: {st['nan']} NaN, {st['inf']} Inf")
        task.advance(1)
        del t
    report["nonfinite_tensors"] = len(bad)
    report["warnings"].extend(f"non-finite values in {b}" for b in bad)


def check_readable(reference: str) -> None:
    """Cheap validation of a file reference (header only)."""
    ref = resolve(reference)
    if ref.kind == "safetensors":
        read_header(ref.path)
    elif ref.kind == "hf-dir":
        for f in hf_weight_files(ref.path):
            if f.suffix == ".safetensors":
                read_header(f)
    elif ref.kind not in ("gguf", "legacy", "timm", "hf-hub"):
        raise InputError(f"cannot inspect {reference}")
