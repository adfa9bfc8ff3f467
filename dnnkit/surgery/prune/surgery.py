"""`prune` as a Surgery: `apply` prunes a built network (any allocation, metrics with data);
`apply_weights` streams a bare safetensors file tensor by tensor (data-free allocations), never
holding the whole model in memory.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.surgery.contract import Context, Result, Surgery
from dnnkit.surgery.prune.run import PruneConfig, dir_bytes, summary

NEEDS_NETWORK = "needs the network: pass --arch or a dnnkit/HF checkpoint"


def _base_report(cfg: PruneConfig) -> dict[str, Any]:
    return {"metrics": {}, "additivity": None, "format": cfg.format,
            "timing": {"curves_s": 0.0, "dp_s": 0.0, "finetune_s": 0.0, "naive_estimate_s": 0.0}}


def _step(cfg: PruneConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"op": "prune", "params": cfg.params(), "layers": {r["name"]: r["sparsity"] for r in rows}}


class PruneSurgery(Surgery):
    """Zero a fraction of the Linear/Conv weights with a per-layer allocation (uniform ... rd)."""

    name = "prune"
    Config = PruneConfig
    cpu_only = True

    def precheck(self, ref: Any, cfg: PruneConfig, arch: str | None, output: str | None) -> None:
        if cfg.format == "sparse" and output is not None and not output.endswith(".safetensors"):
            raise InputError(f"--format sparse writes a .safetensors file, got -o {output!r}",
                             hint="plain transformers/timm cannot read the sparse format; use --format dense for "
                                  "folders")
        if ref is None or ref.kind != "safetensors" or arch is not None:
            return
        if not (cfg.needs_network() or cfg.data is not None):
            return
        from dnnkit.models.safetensors_io import read_header

        if not (read_header(ref.path).dnnkit_record() or {}).get("arch"):
            what = "--method rd" if cfg.method == "rd" else ("--steps" if cfg.steps > 1 else
                                                              ("--finetune-epochs" if cfg.finetune_epochs else
                                                               "--data metrics"))
            raise InputError(f"{what} {NEEDS_NETWORK}", hint=f"{ref.raw} is a bare weights file")

    def streams(self, ref: Any, cfg: PruneConfig, arch: str | None) -> bool:
        return ref.kind == "safetensors" and arch is None and not cfg.needs_network() and cfg.data is None

    def apply_weights(self, ref: Any, cfg: PruneConfig, ctx: Context) -> Result:
        """Tensor by tensor over a safetensors file; writes `ctx.output` (unless a dry run) as it goes."""
        from dnnkit.models.registry import files_sha256, load_model, open_weights
        from dnnkit.models.safetensors_io import read_header
        from dnnkit.surgery.prune.layers import (
            FLOAT_DTYPES,
            file_weight_names,
            network_weight_names,
            scan_layers,
            select_layers,
        )
        from dnnkit.surgery.prune.run import prune_weights
        from dnnkit.surgery.prune.stream import write_pruned_file

        t0 = time.perf_counter()
        source = open_weights(ref)
        all_names = source.names()
        floats = {n for n in all_names if source.dtype(n) in FLOAT_DTYPES}
        input_record = read_header(ref.path).dnnkit_record() or {}
        if input_record.get("arch"):
            names_default = network_weight_names(load_model(ref).model)
        else:
            names_default = file_weight_names(source)
        names = select_layers(names_default, all_names, floats, cfg.include, cfg.exclude)
        layers = scan_layers(source, names)
        pattern = cfg.criterion_spec().pattern
        keep = None
        if pattern is not None:
            from dnnkit.surgery.prune.criteria.pattern import check_columns, magnitude_pattern_keep

            for layer in layers:
                check_columns(pattern, layer.name, math.prod(layer.shape[1:]))

            def keep(tensor: Any, _zeros: int) -> Any:
                return magnitude_pattern_keep(tensor, pattern)

            t_alloc = time.perf_counter()
            zeros = [int((~magnitude_pattern_keep(source.get(layer.name), pattern)).sum()) for layer in layers]
            timing = {"allocation_s": time.perf_counter() - t_alloc}
        else:
            zeros, timing = prune_weights(source, layers, cfg, ctx.progress)
        report = {**_base_report(cfg), **summary(layers, zeros, cfg)}
        report["criterion"] = {"name": "magnitude", "pattern": None if pattern is None else str(pattern),
                               "dampening": None, "block_size": None, "sequential": False}
        report["timing"]["allocation_s"] = timing["allocation_s"]
        report["bytes"] = {"in": ref.path.stat().st_size, "out": None}
        report["output"] = None
        report["path"] = "streaming"
        step = _step(cfg, report["layers"])
        if ctx.output is not None:
            record = {"arch": input_record.get("arch"), "recipe": [*input_record.get("recipe", []), step],
                      "source": {"reference": ref.raw, "sha256": files_sha256([ref.path])}, "metrics": {}}
            if input_record.get("aliases"):
                record["aliases"] = input_record["aliases"]
            if ctx.argv is not None:
                record["command"] = ctx.argv
            write_pruned_file(source, Path(ctx.output), dict(zip(names, zeros, strict=True)), record,
                              cfg.format == "sparse", keep)
            report["output"] = ctx.output
        report["timing"]["total_s"] = time.perf_counter() - t0
        return Result(None, step, report, written=ctx.output is not None)

    def apply(self, loaded: Any, cfg: PruneConfig, ctx: Context) -> Result:
        """Prune `loaded.model` in place (the runner hands in a fresh load or a copy)."""
        from dnnkit.models.save import folder_output_family
        from dnnkit.surgery.prune.network import check_data, network_layers, prune_network

        t0 = time.perf_counter()
        if loaded.model is None:
            raise InputError(f"{loaded.ref.raw}: {NEEDS_NETWORK}")
        check_data(loaded, cfg)
        if ctx.output is not None and not ctx.output.endswith(".safetensors") and folder_output_family(loaded) is None:
            raise InputError(f"output {ctx.output!r} must end in .safetensors",
                             hint="a folder output is written only for Hugging Face and timm models")
        layers = network_layers(loaded.model, cfg)
        pruned = prune_network(loaded, layers, cfg, ctx.progress)
        report = _base_report(cfg)
        report["timing"].update(pruned.pop("timing"))
        report = {**report, **summary(layers, pruned["zeros"], cfg), **pruned}
        report.pop("zeros")
        report["path"] = "network"
        report["bytes"] = {"in": sum(dir_bytes(f) for f in loaded.files), "out": None}
        report["output"] = None
        if loaded.ref.kind == "gguf":
            report["warnings"].append("a GGUF input is written as an fp32 Hugging Face model, much larger than the "
                                      "quantised input; consider --format sparse")
        report["timing"]["total_s"] = time.perf_counter() - t0
        metrics = report["metrics"]
        return Result(loaded.model, _step(cfg, report["layers"]), report, loaded,
                      before=dict(metrics.get("before") or {}), after=dict(metrics.get("after") or {}),
                      record_metrics=dict(metrics),
                      sparse={layer.name for layer in layers} if cfg.format == "sparse" else None)

    def finish(self, result: Result, output: str | None) -> None:
        if output is not None:
            result.report["bytes"]["out"] = dir_bytes(Path(output))


PRUNE = PruneSurgery()
