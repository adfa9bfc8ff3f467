"""`run_prune`: the whole command as a library call (load, validate, prune, write, report).

Bare safetensors files (and data-free runs on dnnkit safetensors checkpoints) take the streaming
path: tensor by tensor, never the whole model in memory. Everything else loads the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.prune.run import PruneOptions, dir_bytes, summary

NEEDS_NETWORK = "needs the network: pass --arch or a dnnkit/HF checkpoint"


def _streamable(resolved: Any, arch: str | None, opts: PruneOptions) -> bool:
    if resolved.kind != "safetensors" or arch is not None:
        return False
    return not opts.needs_network() and opts.data is None


def run_prune(model_ref: str, opts: PruneOptions, *, arch: str | None = None, weights: str | None = None,
              output: str | None = None, force: bool = False, dry_run: bool = False, device: str = "cpu",
              dtype: str | None = None, argv: list[str] | None = None, progress: ProgressReporter | None = None,
              gate: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one pruning; returns the report dict (the JSON of `dnnkit prune --json`).

    `gate(result)` runs after the metrics are measured and before anything is written; it may raise
    to stop the write (the CLI's `--require`).
    """
    from dnnkit.models.atomic import check_output_path
    from dnnkit.models.reference import parse_reference
    from dnnkit.models.registry import resolve

    progress = or_null(progress)
    t_start = time.perf_counter()
    if device != "cpu":
        raise InputError("prune runs on the CPU for now", hint="drop --device")
    parsed = parse_reference(model_ref)
    if output is not None and not dry_run:  # before a zoo model is trained or a GGUF converted
        check_output_path(output, force, inputs=(parsed.target,) if parsed.is_file_based else ())
    resolved = resolve(parsed, progress)
    if weights is not None and resolved.kind != "timm":
        raise InputError(f"--weights applies to timm:NAME models, not {model_ref}",
                         hint="a checkpoint file or folder carries its own weights")
    if _streamable(resolved, arch, opts):
        result = _run_streaming(resolved, model_ref, opts, output, dry_run, argv, progress, gate)
    else:
        result = _run_network(resolved, model_ref, opts, arch, weights, output, force, dry_run, dtype, argv,
                              progress, gate)
    result["timing"]["total_s"] = time.perf_counter() - t_start
    result["dry_run"] = dry_run
    return result


def _base_result(opts: PruneOptions) -> dict[str, Any]:
    return {"metrics": {}, "additivity": None, "format": opts.format,
            "timing": {"curves_s": 0.0, "dp_s": 0.0, "finetune_s": 0.0, "naive_estimate_s": 0.0}}


def _step(opts: PruneOptions, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"op": "prune", "params": opts.params(), "layers": {r["name"]: r["sparsity"] for r in rows}}


def _run_streaming(resolved: Any, model_ref: str, opts: PruneOptions, output: str | None, dry_run: bool,
                   argv: list[str] | None, progress: ProgressReporter,
                   gate: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    from dnnkit.models.registry import files_sha256, open_weights
    from dnnkit.models.safetensors_io import read_header
    from dnnkit.surgery.prune.layers import FLOAT_DTYPES, file_weight_names, scan_layers, select_layers
    from dnnkit.surgery.prune.run import prune_weights
    from dnnkit.surgery.prune.stream import write_pruned_file

    source = open_weights(resolved)
    all_names = source.names()
    floats = {n for n in all_names if source.dtype(n) in FLOAT_DTYPES}
    input_record = read_header(resolved.path).dnnkit_record() or {}
    if input_record.get("arch"):
        from dnnkit.models.registry import load_model

        names_default = _network_names_from_record(load_model, resolved)
    else:
        names_default = file_weight_names(source)
    names = select_layers(names_default, all_names, floats, opts.include, opts.exclude)
    layers = scan_layers(source, names)
    zeros, timing = prune_weights(source, layers, opts, progress)
    result = {**_base_result(opts), **summary(layers, zeros, opts)}
    result["timing"]["allocation_s"] = timing["allocation_s"]
    result["bytes"] = {"in": resolved.path.stat().st_size, "out": None}
    result["output"] = None
    result["path"] = "streaming"
    if gate is not None:
        gate(result)
    if not dry_run:
        record = {"arch": input_record.get("arch"), "recipe": [*input_record.get("recipe", []),
                                                               _step(opts, result["layers"])],
                  "source": {"reference": model_ref, "sha256": files_sha256([resolved.path])}, "metrics": {}}
        if input_record.get("aliases"):
            record["aliases"] = input_record["aliases"]
        if argv is not None:
            record["command"] = argv
        out = Path(output)
        write_pruned_file(source, out, dict(zip(names, zeros, strict=True)), record, opts.format == "sparse")
        result["output"] = str(out)
        result["bytes"]["out"] = dir_bytes(out)
    return result


def _network_names_from_record(load_model: Any, resolved: Any) -> list[str]:
    """Forward-order prunable names of a dnnkit checkpoint with an architecture (built once)."""
    from dnnkit.surgery.prune.layers import network_weight_names

    loaded = load_model(resolved)
    return network_weight_names(loaded.model)


def _run_network(resolved: Any, model_ref: str, opts: PruneOptions, arch: str | None, weights: str | None,
                 output: str | None, force: bool, dry_run: bool, dtype: str | None, argv: list[str] | None,
                 progress: ProgressReporter, gate: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    from dnnkit.models.registry import load_model
    from dnnkit.models.save import folder_output_family, save_model
    from dnnkit.surgery.prune.network import check_data, network_layers, prune_network

    if resolved.kind == "safetensors" and arch is None:
        from dnnkit.models.safetensors_io import read_header

        if not (read_header(resolved.path).dnnkit_record() or {}).get("arch"):
            what = "--method rd" if opts.method == "rd" else ("--steps" if opts.steps > 1 else
                                                              ("--finetune-epochs" if opts.finetune_epochs else
                                                               "--data metrics"))
            raise InputError(f"{what} {NEEDS_NETWORK}", hint=f"{resolved.raw} is a bare weights file")
    loaded = load_model(resolved, arch=arch, weights=weights, dtype=dtype, progress=progress)
    if loaded.model is None:
        raise InputError(f"{model_ref}: {NEEDS_NETWORK}")
    check_data(loaded, opts)
    if output is not None and not output.endswith(".safetensors") and folder_output_family(loaded) is None:
        raise InputError(f"output {output!r} must end in .safetensors",
                         hint="a folder output is written only for Hugging Face and timm models")
    layers = network_layers(loaded.model, opts)
    report = prune_network(loaded, layers, opts, progress)
    base = _base_result(opts)
    base["timing"].update(report.pop("timing"))
    result = {**base, **summary(layers, report["zeros"], opts), **report}
    result.pop("zeros")
    result["path"] = "network"
    result["bytes"] = {"in": sum(dir_bytes(f) for f in loaded.files), "out": None}
    result["output"] = None
    if resolved.kind == "gguf":
        result["warnings"].append("a GGUF input is written as an fp32 Hugging Face model, much larger than the "
                                  "quantised input; consider --format sparse")
    if gate is not None:
        gate(result)
    if not dry_run:
        metrics = {k: v for k, v in result["metrics"].items()}
        step = _step(opts, result["layers"])
        sparse = {layer.name for layer in layers} if opts.format == "sparse" else None
        record = save_model(loaded, loaded.model, output, step, metrics, force=force, sparse=sparse)
        if argv is not None:
            record["command"] = argv
        result["output"] = str(output)
        result["bytes"]["out"] = dir_bytes(Path(output))
    return result
